import { Button, Group, Modal, Select, Stack, Switch, Text, Textarea, TextInput } from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { useEffect, useMemo, useRef, useState } from "react";
import { MANAGEMENT_PERMISSIONS } from "../../../src/core/catalog.ts";
import { api } from "../api/client.ts";
import type { CreatedKey, CredentialView, RateLimit } from "../api/types.ts";
import { can } from "../lib/roles.ts";
import { useSession } from "../lib/session.tsx";
import {
  CreditsFields,
  type CreditsValue,
  creditsBody,
  creditsProblems,
  NO_CREDITS,
} from "./CreditsEditor.tsx";
import { DateTimeField, dateTimeIso, dateTimeProblem } from "./DateTimeField.tsx";
import { errorFor, FormError } from "./errors.tsx";
import { IpEditor, useIpList } from "./IpEditor.tsx";
import { KeySnippets } from "./KeySnippets.tsx";
import { EnvBadge } from "./KeysTable.tsx";
import { NO_PERMISSION_CHOSEN, PermissionsField } from "./PermissionMatrix.tsx";
import { limitsProblem, RateLimitEditor } from "./RateLimitEditor.tsx";
import { ShowOnceModal } from "./ShowOnce.tsx";
import { TotpInput } from "./TotpInput.tsx";
import { Username } from "./Username.tsx";

const FIELDS = [
  "name",
  "description",
  "credential_id",
  "permissions",
  "allowed_ips",
  "expires_at",
  "rate_limits",
  "remaining",
  "refill",
  "meta",
  "external_id",
  "totp_code",
];

/** "203.0.113.0/24", "a, b and c", or "a, b and 3 more": an allowlist named in a sentence. */
function entriesText(entries: readonly string[]): string {
  if (entries.length <= 3) return entries.join(", ").replace(/, ([^,]*)$/, " and $1");
  return `${entries.slice(0, 2).join(", ")} and ${entries.length - 2} more`;
}

/**
 * What the key's allowlist means together with its API user's, which applies to every key of it: the
 * text under the key's IP editor, empty list or not.
 */
function ipScope(credential: CredentialView | null): { emptyText: string; note?: string } {
  const inherited = credential?.allowed_ips ?? [];
  if (!credential || inherited.length === 0)
    return {
      emptyText: "No restriction: requests from any address are accepted (the API user has no list either).",
    };
  const theirs = `API user “${credential.name}” has ${inherited.length === 1 ? "an allowed IP list" : `${inherited.length} allowed IP entries`} (${entriesText(inherited)})`;
  return {
    emptyText: `No list of its own, but ${theirs}, which still applies: requests from any other address are refused.`,
    note: `${theirs}, which applies as well: a request must come from an address on both lists.`,
  };
}

/**
 * "Create API key": the key belongs to its API user's environment (there is no other choice to get
 * wrong), may hold at most what its API user holds (and, for a developer, nothing of Latchkey's own
 * management group), and starts with nothing: what it may do is chosen, never inherited by default.
 * `credentials` are the API users it may be for; only those the person may issue keys for are offered.
 * The result opens the show-once modal.
 */
export function CreateKeyModal({
  opened,
  onClose,
  onCreated,
  credentials,
  fixedCredential,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: () => void;
  credentials: CredentialView[];
  fixedCredential?: CredentialView;
}) {
  const { me, catalog } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const active = credentials.filter((c) => c.status === "active" && can.writeKey(me.role, c.environment));
  const [credentialId, setCredentialId] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [permissions, setPermissions] = useState<string[]>([]);
  const ips = useIpList();
  const [expires, setExpires] = useState("");
  const [withSecret, setWithSecret] = useState(false);
  const [limits, setLimits] = useState<RateLimit[]>([]);
  const [credits, setCredits] = useState<CreditsValue>(NO_CREDITS);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  // Set by a submit refused for want of a permission; the reason shows until one is chosen.
  const [triedEmpty, setTriedEmpty] = useState(false);
  const permissionsRef = useRef<HTMLFieldSetElement>(null);

  const credential = fixedCredential ?? active.find((c) => c.id === credentialId) ?? null;
  const allowed = useMemo(() => {
    // What the API user holds: its roles' permissions and its single ones.
    const held = new Set(credential?.granted_permissions ?? []);
    if (me.role === "developer") for (const p of MANAGEMENT_PERMISSIONS) held.delete(p);
    return held;
  }, [credential, me.role]);

  // A fresh form each time it opens.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset only when the dialog opens
  useEffect(() => {
    if (!opened) return;
    setCredentialId(fixedCredential?.id ?? active[0]?.id ?? null);
    setName("");
    setDescription("");
    setPermissions([]);
    setTriedEmpty(false);
    ips.reset([]);
    setExpires("");
    setWithSecret(false);
    setLimits([]);
    setCredits(NO_CREDITS);
    setCode("");
    setError(null);
  }, [opened]);
  // Another API user: keep only what it holds.
  useEffect(() => {
    setPermissions((chosen) => chosen.filter((p) => allowed.has(p)));
  }, [allowed]);

  const scope = ipScope(credential);
  const permissionsProblem = triedEmpty && permissions.length === 0 ? NO_PERMISSION_CHOSEN : undefined;

  const submit = async () => {
    if (!credential) return;
    // Both checks run, so each says what is wrong; the focus goes to the first, in the form's order.
    const allowedIps = ips.commit();
    if (permissions.length === 0) {
      setTriedEmpty(true);
      permissionsRef.current?.focus();
      return;
    }
    if (allowedIps === null) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api.createKey(
        {
          name: name.trim(),
          environment: credential.environment,
          credential_id: credential.id,
          ...(description.trim() ? { description: description.trim() } : {}),
          permissions,
          ...(allowedIps.length > 0 ? { allowed_ips: allowedIps } : {}),
          ...(dateTimeIso(expires) ? { expires_at: dateTimeIso(expires) } : {}),
          ...(withSecret ? { with_secret: true } : {}),
          ...(limits.length > 0 ? { rate_limits: limits } : {}),
          ...creditsBody(credits),
        },
        code,
      );
      setCreated(result);
    } catch (err) {
      setError(err);
    } finally {
      setCode("");
      setBusy(false);
    }
  };

  return (
    <>
      <Modal
        opened={opened && created === null}
        onClose={onClose}
        title="Create API key"
        size="xl"
        fullScreen={narrow}
        closeOnClickOutside={false}
      >
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <Stack>
            {fixedCredential ? (
              <Text size="sm">
                For API user <strong>{fixedCredential.name}</strong> (
                <Username value={fixedCredential.username} />)
              </Text>
            ) : (
              <Select
                label="API user"
                data={active.map((c) => ({ value: c.id, label: `${c.name} (${c.username})` }))}
                value={credentialId}
                onChange={setCredentialId}
                allowDeselect={false}
                required
                error={errorFor(error, "credential_id")}
              />
            )}
            <TextInput
              label="Name"
              required
              maxLength={200}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={errorFor(error, "name")}
              data-autofocus
            />
            <Textarea
              label="Description"
              maxLength={1000}
              autosize
              minRows={1}
              value={description}
              onChange={(e) => setDescription(e.currentTarget.value)}
              error={errorFor(error, "description")}
            />
            {credential ? (
              <Group gap="xs" wrap="nowrap" align="start" data-testid="key-environment">
                <EnvBadge env={credential.environment} />
                <Text size="sm">
                  {`A ${credential.environment} key: a key belongs to its API user's environment, and “${credential.name}” is a ${credential.environment} API user.`}
                  {me.role === "developer" ? " Developers create test keys only." : ""}
                </Text>
              </Group>
            ) : null}
            <PermissionsField
              ref={permissionsRef}
              hint="A new key starts with none: choose what it needs, never more than the API user holds. Permissions are fixed once the key is created."
              groups={catalog.groups}
              value={permissions}
              onChange={setPermissions}
              allowed={allowed}
              error={permissionsProblem ?? errorFor(error, "permissions")}
            />
            <IpEditor
              list={ips}
              label="Allowed IPs for this key"
              error={errorFor(error, "allowed_ips")}
              emptyText={scope.emptyText}
              note={scope.note}
            />
            <DateTimeField
              label="Expires (optional)"
              description="Leave empty for a key that does not expire"
              value={expires}
              onChange={setExpires}
              error={errorFor(error, "expires_at")}
            />
            <RateLimitEditor
              value={limits}
              onChange={setLimits}
              label="Rate limits for this key (optional)"
              description={
                credential && credential.rate_limits.length > 0
                  ? "Counted for this key alone. The API user's own limits apply as well."
                  : "Counted for this key alone, in sliding windows."
              }
              error={errorFor(error, "rate_limits")}
            />
            <CreditsFields value={credits} onChange={setCredits} error={error} />
            <Switch
              label="Key + secret pair (x-api-key and x-api-secret)"
              checked={withSecret}
              onChange={(e) => setWithSecret(e.currentTarget.checked)}
            />
            <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} />
            <FormError error={error} fields={FIELDS} />
            <Group justify="end">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button
                type="submit"
                loading={busy}
                disabled={
                  !credential ||
                  dateTimeProblem(expires) !== null ||
                  limitsProblem(limits) !== null ||
                  Object.keys(creditsProblems(credits)).length > 0
                }
              >
                Create key
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
      <ShowOnceModal
        opened={created !== null}
        title={`API key “${created?.name ?? ""}” created`}
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
          onCreated();
          onClose();
        }}
      >
        {created ? <KeySnippets created={created} /> : null}
      </ShowOnceModal>
    </>
  );
}
