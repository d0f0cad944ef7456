import { Alert, Anchor, Button, Group, Modal, Stack, Text } from "@mantine/core";
import { useState } from "react";
import { api } from "../api/client.ts";
import type { CreatedKey, KeyView } from "../api/types.ts";
import { formatDate } from "../lib/format.ts";
import { errorFor, FormError } from "./errors.tsx";
import { ShowOnceModal } from "./ShowOnce.tsx";
import { TotpInput } from "./TotpInput.tsx";

const REPORTERS: Record<NonNullable<KeyView["leak"]>["reporter"], string> = {
  github: "GitHub secret scanning",
  public: "a public report",
};

const DONE: Record<NonNullable<KeyView["leak"]>["action"], string> = {
  revoked: "It was revoked at once.",
  notified: "It still works: your leak policy only notifies. Replace it, then revoke it.",
  already_revoked: "It was already revoked.",
};

/** Only web links are shown as links: a reporter's URL is untrusted text. */
const isWebLink = (url: string) => /^https?:\/\//i.test(url);

/**
 * What a leaked key's people must know: where it was found, by whom, what was done, and the way to a
 * replacement. Shown on the key's row and in its dialogs.
 */
export function LeakBanner({ k, onReplace }: { k: KeyView; onReplace?: (() => void) | undefined }) {
  const leak = k.leak;
  if (!leak) return null;
  return (
    <Alert color="red" variant="light" title="This key was found in public" data-testid="leak-banner" p="xs">
      <Stack gap={4}>
        <Text size="sm">
          Reported by {REPORTERS[leak.reporter]} on {formatDate(leak.reported_at)}
          {leak.reports > 1 ? ` (${leak.reports} reports since ${formatDate(leak.first_reported_at)})` : ""}
          {leak.url ? (
            <>
              {" "}
              at{" "}
              {isWebLink(leak.url) ? (
                <Anchor href={leak.url} target="_blank" rel="noopener noreferrer nofollow" size="sm">
                  {leak.url}
                </Anchor>
              ) : (
                <span className="mono">{leak.url}</span>
              )}
            </>
          ) : null}
          {leak.source ? ` (${leak.source})` : ""}.
        </Text>
        <Text size="sm" fw={600}>
          {DONE[leak.action]}
        </Text>
        {onReplace ? (
          <Group>
            <Button size="compact-sm" color="red" onClick={onReplace} aria-label={`Replace ${k.name}`}>
              Replace
            </Button>
          </Group>
        ) : null}
      </Stack>
    </Alert>
  );
}

/**
 * A new key with the revoked key's settings (API user, name, description, permissions, allowed IPs,
 * rate limits, key + secret or not): what Rotate does for a key that still works.
 */
export function ReplaceDialog({
  keyView,
  onClose,
  onDone,
}: {
  keyView: KeyView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const close = () => {
    setError(null);
    setCode("");
    onClose();
  };
  return (
    <>
      <Modal
        opened={keyView !== null && created === null}
        onClose={close}
        title={`Replace “${keyView?.name ?? ""}”`}
      >
        {keyView ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (!keyView.credential_id) return;
              setBusy(true);
              setError(null);
              api
                .createKey(
                  {
                    name: keyView.name,
                    environment: keyView.environment,
                    credential_id: keyView.credential_id,
                    description: keyView.description,
                    permissions: keyView.permissions,
                    allowed_ips: keyView.allowed_ips,
                    rate_limits: keyView.rate_limits,
                    with_secret: keyView.has_secret,
                  },
                  code,
                )
                .then(setCreated, setError)
                .finally(() => {
                  setBusy(false);
                  setCode("");
                });
            }}
          >
            <Stack>
              <LeakBanner k={keyView} />
              <Text>
                A new key takes the place of <strong>{keyView.name}</strong>, with the same API user,
                permissions, allowed IPs and rate limits. Put it into your integration in place of the old
                one.
              </Text>
              <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} autoFocus />
              <FormError error={error} fields={["totp_code"]} />
              <Group justify="end">
                <Button variant="default" onClick={close}>
                  Cancel
                </Button>
                <Button type="submit" loading={busy}>
                  Create replacement
                </Button>
              </Group>
            </Stack>
          </form>
        ) : null}
      </Modal>
      <ShowOnceModal
        opened={created !== null}
        title="Your replacement API key"
        fields={
          created
            ? [
                { label: "API key", value: created.key },
                ...(created.secret ? [{ label: "API secret", value: created.secret }] : []),
              ]
            : []
        }
        onClose={() => {
          setCreated(null);
          onDone();
          close();
        }}
      />
    </>
  );
}
