import { Alert, Button, Group, Modal, Select, Stack, Text } from "@mantine/core";
import { useEffect, useState } from "react";
import { api } from "../api/client.ts";
import type { KeyView, RateLimit, RotatedKey } from "../api/types.ts";
import { formatDate } from "../lib/format.ts";
import { errorFor, FormError } from "./errors.tsx";
import { LeakBanner } from "./LeakBanner.tsx";
import { limitsProblem, RateLimitEditor } from "./RateLimitEditor.tsx";
import { ShowOnceModal } from "./ShowOnce.tsx";
import { TotpInput } from "./TotpInput.tsx";

/** Runs one step-up action: the 2FA code, a pending state and the error of the last try. */
function useStepUp() {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (fn: (code: string) => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn(code);
      setCode("");
    } catch (err) {
      setError(err);
      setCode("");
    } finally {
      setBusy(false);
    }
  };
  return { code, setCode, busy, error, setError, run };
}

export function RevokeDialog({
  keyView,
  onClose,
  onDone,
}: {
  keyView: KeyView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const s = useStepUp();
  const close = () => {
    s.setError(null);
    onClose();
  };
  return (
    <Modal opened={keyView !== null} onClose={close} title={`Revoke “${keyView?.name ?? ""}”?`}>
      {keyView ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void s.run(async (code) => {
              await api.revokeKey(keyView.id, code);
              onDone();
              onClose();
            });
          }}
        >
          <Stack>
            <Text>
              The key <strong>{keyView.name}</strong> (<span className="mono">{keyView.prefix}…</span>,{" "}
              {keyView.environment}) stops working on its next request. This cannot be undone.
            </Text>
            <TotpInput value={s.code} onChange={s.setCode} error={errorFor(s.error, "totp_code")} autoFocus />
            <FormError error={s.error} fields={["totp_code"]} />
            <Group justify="end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" color="red" loading={s.busy}>
                Revoke {keyView.name}
              </Button>
            </Group>
          </Stack>
        </form>
      ) : null}
    </Modal>
  );
}

const GRACE_OPTIONS = [
  { value: "0", label: "No overlap: the old key stops now" },
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "24 hours (default)" },
  { value: "259200", label: "3 days" },
  { value: "604800", label: "7 days" },
];

export function RotateDialog({
  keyView,
  onClose,
  onDone,
}: {
  keyView: KeyView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const s = useStepUp();
  const [grace, setGrace] = useState("86400");
  const [rotated, setRotated] = useState<RotatedKey | null>(null);
  // A leaked key is in strangers' hands: by default its replacement ends it at once, with no overlap.
  useEffect(() => {
    if (keyView) setGrace(keyView.leak ? "0" : "86400");
  }, [keyView]);
  const close = () => {
    s.setError(null);
    setGrace("86400");
    onClose();
  };
  return (
    <>
      <Modal
        opened={keyView !== null && rotated === null}
        onClose={close}
        title={`Rotate “${keyView?.name ?? ""}”`}
      >
        {keyView ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void s.run(async (code) => {
                const result = await api.rotateKey(keyView.id, Number(grace), code);
                setRotated(result);
              });
            }}
          >
            <Stack>
              <LeakBanner k={keyView} />
              <Text>
                A new key replaces <strong>{keyView.name}</strong> with the same permissions and IP list. The
                old key keeps working for the grace period, so you can switch your integration over without
                downtime.
              </Text>
              <Select
                label="Grace period for the old key"
                data={GRACE_OPTIONS}
                value={grace}
                onChange={(v) => setGrace(v ?? "86400")}
                allowDeselect={false}
                data-testid="grace-select"
                comboboxProps={{ withinPortal: true }}
              />
              <TotpInput
                value={s.code}
                onChange={s.setCode}
                error={errorFor(s.error, "totp_code")}
                autoFocus
              />
              <FormError error={s.error} fields={["totp_code"]} />
              <Group justify="end">
                <Button variant="default" onClick={close}>
                  Cancel
                </Button>
                <Button type="submit" loading={s.busy}>
                  Rotate key
                </Button>
              </Group>
            </Stack>
          </form>
        ) : null}
      </Modal>
      <ShowOnceModal
        opened={rotated !== null}
        title="Your new API key"
        fields={
          rotated
            ? [
                { label: "API key", value: rotated.key },
                ...(rotated.secret ? [{ label: "API secret", value: rotated.secret }] : []),
              ]
            : []
        }
        note={rotated ? `The old key works until ${formatDate(rotated.previous_key.expires_at)}.` : undefined}
        onClose={() => {
          setRotated(null);
          onDone();
          close();
        }}
      />
    </>
  );
}

export function ExpiryDialog({
  target,
  onClose,
  onDone,
}: {
  target: { key: KeyView; action: "reset" | "now" } | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const s = useStepUp();
  const close = () => {
    s.setError(null);
    onClose();
  };
  const now = target?.action === "now";
  return (
    <Modal
      opened={target !== null}
      onClose={close}
      title={
        now ? `Expire “${target?.key.name ?? ""}” now?` : `Give “${target?.key.name ?? ""}” 24 more hours?`
      }
    >
      {target ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void s.run(async (code) => {
              await api.changeExpiry(target.key.id, target.action, code);
              onDone();
              onClose();
            });
          }}
        >
          <Stack>
            {now ? (
              <Alert color="red" variant="light">
                The old key (<span className="mono">{target.key.prefix}…</span>) stops working at once. Make
                sure nothing still uses it.
              </Alert>
            ) : (
              <Text>The old key will keep working until 24 hours from now.</Text>
            )}
            <TotpInput value={s.code} onChange={s.setCode} error={errorFor(s.error, "totp_code")} autoFocus />
            <FormError error={s.error} fields={["totp_code"]} />
            <Group justify="end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" color={now ? "red" : undefined} loading={s.busy}>
                {now ? "Expire now" : "Reset to 24 h"}
              </Button>
            </Group>
          </Stack>
        </form>
      ) : null}
    </Modal>
  );
}

/** A key's own rate limits, changed in place (no 2FA: they only ever narrow what the key may do). */
export function RateLimitsDialog({
  keyView,
  onClose,
  onDone,
}: {
  keyView: KeyView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const [value, setValue] = useState<RateLimit[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setValue(keyView?.rate_limits ?? []);
    setError(null);
  }, [keyView]);
  return (
    <Modal opened={keyView !== null} onClose={onClose} title={`Rate limits of “${keyView?.name ?? ""}”`}>
      {keyView ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            api
              .updateKey(keyView.id, { rate_limits: value })
              .then(() => {
                onDone();
                onClose();
              })
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            <RateLimitEditor
              value={value}
              onChange={setValue}
              label="Limits for this key"
              description="Counted for this key alone, in sliding windows; its API user's limits apply as well."
              error={errorFor(error, "rate_limits")}
            />
            <FormError error={error} fields={["rate_limits"]} />
            <Group justify="end">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} disabled={limitsProblem(value) !== null}>
                Save rate limits
              </Button>
            </Group>
          </Stack>
        </form>
      ) : null}
    </Modal>
  );
}
