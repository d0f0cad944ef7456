import {
  Button,
  Group,
  Modal,
  SegmentedControl,
  Select,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
} from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { useEffect, useMemo, useState } from "react";
import { MANAGEMENT_PERMISSIONS } from "../../../src/core/catalog.ts";
import { api } from "../api/client.ts";
import type { CreatedKey, CredentialView, Environment, RateLimit } from "../api/types.ts";
import { can } from "../lib/roles.ts";
import { useSession } from "../lib/session.tsx";
import { errorFor, FormError } from "./errors.tsx";
import { IpEditor } from "./IpEditor.tsx";
import { PermissionMatrix } from "./PermissionMatrix.tsx";
import { limitsProblem, RateLimitEditor } from "./RateLimitEditor.tsx";
import { ShowOnceModal } from "./ShowOnce.tsx";
import { TotpInput } from "./TotpInput.tsx";

const FIELDS = [
  "name",
  "description",
  "credential_id",
  "permissions",
  "allowed_ips",
  "expires_at",
  "rate_limits",
  "totp_code",
];

/**
 * "Create API key": the key may hold at most what its API user holds (and, for a developer, nothing
 * of Latchkey's own management group). The result opens the show-once modal.
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
  const { me, catalog, env: switchEnv } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const active = credentials.filter((c) => c.status === "active");
  const [credentialId, setCredentialId] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [env, setEnv] = useState<Environment>(switchEnv);
  const [permissions, setPermissions] = useState<string[]>([]);
  const [ips, setIps] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [withSecret, setWithSecret] = useState(false);
  const [limits, setLimits] = useState<RateLimit[]>([]);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<CreatedKey | null>(null);

  const credential = fixedCredential ?? active.find((c) => c.id === credentialId) ?? null;
  const allowed = useMemo(() => {
    const held = new Set(credential?.permissions ?? []);
    if (me.role === "developer") for (const p of MANAGEMENT_PERMISSIONS) held.delete(p);
    return held;
  }, [credential, me.role]);

  // A fresh form each time it opens, following the Live / Test switch and the chosen API user.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset only when the dialog opens
  useEffect(() => {
    if (!opened) return;
    setCredentialId(fixedCredential?.id ?? active[0]?.id ?? null);
    setName("");
    setDescription("");
    setEnv(can.writeKey(me.role, switchEnv) ? switchEnv : "test");
    setIps([]);
    setExpires("");
    setWithSecret(false);
    setLimits([]);
    setCode("");
    setError(null);
  }, [opened]);
  useEffect(() => {
    setPermissions([...allowed]);
  }, [allowed]);

  const submit = async () => {
    if (!credential) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api.createKey(
        {
          name: name.trim(),
          environment: env,
          credential_id: credential.id,
          ...(description.trim() ? { description: description.trim() } : {}),
          permissions,
          ...(ips.length > 0 ? { allowed_ips: ips } : {}),
          ...(expires ? { expires_at: new Date(expires).toISOString() } : {}),
          ...(withSecret ? { with_secret: true } : {}),
          ...(limits.length > 0 ? { rate_limits: limits } : {}),
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
                <span className="mono">{fixedCredential.username}</span>)
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
            <div>
              <Text size="sm" fw={500} id="key-env-label" mb={4}>
                Environment
              </Text>
              <SegmentedControl
                aria-labelledby="key-env-label"
                value={env}
                onChange={(v) => setEnv(v as Environment)}
                data={[
                  { value: "live", label: "Live", disabled: !can.writeKey(me.role, "live") },
                  { value: "test", label: "Test" },
                ]}
              />
              {me.role === "developer" ? (
                <Text size="xs" c="dimmed">
                  Developers create test keys only.
                </Text>
              ) : null}
            </div>
            <div>
              <Text size="sm" fw={500} mb={4}>
                Permissions
              </Text>
              <Text size="xs" c="dimmed" mb="xs">
                Never more than the API user holds; permissions are fixed once the key is created.
              </Text>
              <PermissionMatrix
                groups={catalog.groups}
                value={permissions}
                onChange={setPermissions}
                allowed={allowed}
                error={errorFor(error, "permissions")}
              />
            </div>
            <IpEditor
              value={ips}
              onChange={setIps}
              label="Allowed IPs for this key"
              error={errorFor(error, "allowed_ips")}
            />
            <TextInput
              type="datetime-local"
              label="Expires (optional)"
              description="Leave empty for a key that does not expire"
              value={expires}
              onChange={(e) => setExpires(e.currentTarget.value)}
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
                disabled={!credential || permissions.length === 0 || limitsProblem(limits) !== null}
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
      />
    </>
  );
}
