import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Loader,
  Modal,
  Stack,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useEffect, useState } from "react";
import { ApiError, api } from "../api/client.ts";
import type { CredentialView } from "../api/types.ts";
import { CreateKeyModal } from "../components/CreateKeyModal.tsx";
import { errorFor, FormError } from "../components/errors.tsx";
import { IpEditor, useIpList } from "../components/IpEditor.tsx";
import { EnvBadge, KeysTable } from "../components/KeysTable.tsx";
import { PermissionMatrix } from "../components/PermissionMatrix.tsx";
import { limitsProblem, RateLimitEditor } from "../components/RateLimitEditor.tsx";
import { NO_GRANT_CHOSEN, RolesField } from "../components/RolesField.tsx";
import { SecretLine, ShowOnceModal } from "../components/ShowOnce.tsx";
import { TotpInput } from "../components/TotpInput.tsx";
import { ACTIVE_COLOR, formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { can } from "../lib/roles.ts";
import { useRouter } from "../lib/router.tsx";
import { useSession } from "../lib/session.tsx";

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x) => b.includes(x));

/** One API user: username, status, permissions, allowed IPs, Basic auth password and keys. */
export function ApiUserDetail({ id }: { id: string }) {
  const { me, env } = useSession();
  const { navigate } = useRouter();
  const cred = useLoad(() => api.getCredential(id), [id]);
  // Its keys are all of its own environment.
  const keys = useLoad(() => api.listKeys({ credential_id: id }), [id]);
  const manager = can.manageApiUsers(me.role);
  const [creatingKey, setCreatingKey] = useState(false);
  // The status the confirmation would set, fixed when it opens so its text does not flip while it closes.
  const [statusTarget, setStatusTarget] = useState<"active" | "inactive">("inactive");
  const [statusOpen, setStatusOpen] = useState(false);
  const [statusError, setStatusError] = useState<unknown>(null);

  const c = cred.data;
  if (!c) {
    return cred.error ? (
      <Stack>
        <FormError error={cred.error} />
        {env === "test" && cred.error instanceof ApiError && cred.error.code === "NOT_FOUND" ? (
          <Text size="sm" data-testid="other-environment-hint">
            The console is switched to Test, where live API users are not shown. Switch to Live if this is a
            live API user.
          </Text>
        ) : null}
        <Anchor onClick={() => navigate("/settings/access")}>Back to API users</Anchor>
      </Stack>
    ) : (
      <Loader aria-label="Loading API user" />
    );
  }
  const activeKeys = (keys.data ?? []).filter((k) => k.status === "active").length;
  const isActive = c.status === "active";
  const deactivating = statusTarget === "inactive";

  return (
    <Stack>
      <Anchor
        href="/settings/access"
        size="sm"
        onClick={(e) => {
          e.preventDefault();
          navigate("/settings/access");
        }}
      >
        ‹ Access control
      </Anchor>
      <Group justify="space-between" align="start">
        <div>
          <Group gap="xs">
            <Title order={1} size="h2">
              {c.name}
            </Title>
            <EnvBadge env={c.environment} />
            <Badge
              color={c.status === "active" ? ACTIVE_COLOR : "gray.8"}
              variant="outline"
              data-testid="credential-status"
            >
              {c.status}
            </Badge>
          </Group>
          {c.description ? <Text c="dimmed">{c.description}</Text> : null}
        </div>
        {manager ? (
          <Button
            variant="light"
            color={isActive ? "red" : "teal"}
            onClick={() => {
              setStatusError(null);
              setStatusTarget(isActive ? "inactive" : "active");
              setStatusOpen(true);
            }}
          >
            {isActive ? "Deactivate" : "Reactivate"}
          </Button>
        ) : null}
      </Group>
      <Card withBorder>
        <SecretLine label="Username" value={c.username} />
        <Text size="xs" c="dimmed" mt={4} data-testid="username-format">
          {c.username_format === "legal_entity_management"
            ? "Legal entity management API user"
            : "Web service API user"}
        </Text>
        <Text size="xs" c="dimmed" mt={4}>
          Created {formatDate(c.created_at)} · last changed {formatDate(c.updated_at)}
        </Text>
        <Text size="sm" mt={4} data-testid="credential-merchant-account">
          {c.merchant_account_id === null ? (
            "Company-level: not in a merchant account."
          ) : (
            <>
              Merchant account:{" "}
              <Anchor
                href={`/merchant-accounts/${c.merchant_account_id}`}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/merchant-accounts/${c.merchant_account_id}`);
                }}
              >
                {c.merchant_account_id}
              </Anchor>
            </>
          )}
        </Text>
      </Card>

      <Modal
        opened={statusOpen}
        onClose={() => setStatusOpen(false)}
        title={deactivating ? `Deactivate ${c.name}?` : `Reactivate ${c.name}?`}
      >
        <Stack>
          {deactivating ? (
            <Alert color="red" variant="light">
              Every key of this API user
              {activeKeys > 0
                ? ` (${activeKeys} active ${c.environment} key${activeKeys === 1 ? "" : "s"})`
                : ""}
              {c.has_password ? " and its Basic auth password" : ""} stop working at once: requests fail with
              DISABLED until you reactivate it. Nothing is deleted.
            </Alert>
          ) : (
            <Text>
              Its keys that are not revoked or expired{c.has_password ? ", and its Basic auth password," : ""}{" "}
              work again at once.
            </Text>
          )}
          <FormError error={statusError} />
          <Group justify="end">
            <Button variant="default" onClick={() => setStatusOpen(false)}>
              Cancel
            </Button>
            <Button
              color={deactivating ? "red" : "teal"}
              data-autofocus
              onClick={() => {
                api
                  .updateCredential(c.id, { status: statusTarget })
                  .then(() => {
                    setStatusOpen(false);
                    void cred.reload();
                  })
                  .catch(setStatusError);
              }}
            >
              {deactivating ? "Deactivate" : "Reactivate"}
            </Button>
          </Group>
        </Stack>
      </Modal>

      <PermissionsCard credential={c} editable={manager} onSaved={() => void cred.reload()} />
      <IpCard credential={c} editable={manager} onSaved={() => void cred.reload()} />
      <NoticeEmailCard credential={c} editable={manager} onSaved={() => void cred.reload()} />
      <RateLimitsCard credential={c} editable={manager} onSaved={() => void cred.reload()} />
      <PasswordCard credential={c} editable={manager} onSaved={() => void cred.reload()} />

      <Card withBorder>
        <Group justify="space-between" mb="sm">
          <Group gap="xs">
            <Title order={2} size="h4">
              Keys
            </Title>
            <EnvBadge env={c.environment} />
          </Group>
          {can.writeKey(me.role, c.environment) && c.status === "active" ? (
            <Button onClick={() => setCreatingKey(true)}>Create API key</Button>
          ) : null}
        </Group>
        <FormError error={keys.error} />
        <KeysTable
          keys={keys.data ?? []}
          onChanged={() => void keys.reload()}
          emptyText="This API user has no keys yet."
        />
      </Card>
      <CreateKeyModal
        opened={creatingKey}
        onClose={() => setCreatingKey(false)}
        onCreated={() => void keys.reload()}
        credentials={[c]}
        fixedCredential={c}
      />
    </Stack>
  );
}

function PermissionsCard({
  credential,
  editable,
  onSaved,
}: {
  credential: CredentialView;
  editable: boolean;
  onSaved: () => void;
}) {
  const { catalog } = useSession();
  const [value, setValue] = useState(credential.permissions);
  const [roles, setRoles] = useState(credential.roles);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setValue(credential.permissions), [credential.permissions]);
  useEffect(() => setRoles(credential.roles), [credential.roles]);
  const dirty = !sameSet(value, credential.permissions) || !sameSet(roles, credential.roles);
  // An unknown role grants nothing, so it does not count toward the at-least-one rule.
  const empty = value.length === 0 && roles.every((r) => credential.unknown_roles.includes(r));
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4">
          Permissions
        </Title>
        {editable ? (
          <Group gap="xs">
            {saved && !dirty ? (
              <Text size="sm" c="teal.9" role="status">
                Saved
              </Text>
            ) : null}
            <Button
              variant="default"
              disabled={!dirty}
              onClick={() => {
                setValue(credential.permissions);
                setRoles(credential.roles);
              }}
            >
              Undo
            </Button>
            <Button
              disabled={!dirty || empty}
              loading={busy}
              onClick={() => {
                setBusy(true);
                setError(null);
                api
                  .updateCredential(credential.id, { roles, permissions: value })
                  .then(() => {
                    setSaved(true);
                    onSaved();
                  })
                  .catch(setError)
                  .finally(() => setBusy(false));
              }}
            >
              Save permissions
            </Button>
          </Group>
        ) : null}
      </Group>
      <Text size="xs" c="dimmed" mb="xs">
        Keys keep the permissions they were created with; its roles and single permissions bound what new keys
        may hold, and what its keys can do now.
      </Text>
      {editable && empty ? (
        <Text c="red.8" size="sm" role="alert" mb="xs" data-testid="grant-empty">
          {NO_GRANT_CHOSEN}
        </Text>
      ) : null}
      <RolesField
        roles={catalog.roles}
        value={roles}
        unknown={credential.unknown_roles}
        onChange={(v) => {
          setSaved(false);
          setRoles(v);
        }}
        readOnly={!editable}
        error={errorFor(error, "roles")}
      />
      <Text size="sm" fw={500} mt="md" mb="xs">
        Single permissions
      </Text>
      <PermissionMatrix
        groups={catalog.groups}
        value={value}
        onChange={(v) => {
          setSaved(false);
          setValue(v);
        }}
        readOnly={!editable}
        error={errorFor(error, "permissions")}
      />
      <FormError error={error} fields={["roles", "permissions"]} />
    </Card>
  );
}

function IpCard({
  credential,
  editable,
  onSaved,
}: {
  credential: CredentialView;
  editable: boolean;
  onSaved: () => void;
}) {
  const ips = useIpList(credential.allowed_ips);
  const { reset } = ips;
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  // Only a change of the saved list resets the editor: saving another card reloads the API user, and
  // must not take away an address typed here.
  const savedIps = credential.allowed_ips.join("\n");
  // biome-ignore lint/correctness/useExhaustiveDependencies: `savedIps` stands for the saved list
  useEffect(() => reset(credential.allowed_ips), [savedIps, reset]);
  // Something typed but not added counts as a change: Save keeps it (or says why it cannot).
  const dirty = !sameSet(ips.entries, credential.allowed_ips) || ips.draft.trim() !== "";
  return (
    <Card withBorder data-testid="ip-card">
      <Title order={2} size="h4" mb="sm">
        Allowed IPs
      </Title>
      {credential.is_default ? (
        <Alert variant="light" color="yellow" mb="sm">
          This is the default API user: the company's management key belongs to it, so its requests must come
          from these addresses too.
        </Alert>
      ) : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const allowed_ips = ips.commit();
          if (allowed_ips === null) return;
          setBusy(true);
          setError(null);
          api
            .updateCredential(credential.id, { allowed_ips }, code)
            .then(() => {
              setSaved(true);
              onSaved();
            })
            .catch(setError)
            .finally(() => {
              setCode("");
              setBusy(false);
            });
        }}
      >
        <Stack>
          <IpEditor
            list={ips}
            onChange={() => setSaved(false)}
            label="Add an address or range"
            error={errorFor(error, "allowed_ips")}
            disabled={!editable}
          />
          {editable && dirty ? (
            <>
              <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} />
              <FormError error={error} fields={["allowed_ips", "totp_code"]} />
              <Group justify="end">
                <Button variant="default" onClick={() => reset(credential.allowed_ips)}>
                  Undo
                </Button>
                <Button type="submit" loading={busy}>
                  Save allowed IPs
                </Button>
              </Group>
            </>
          ) : null}
          {saved && !dirty ? (
            <Text size="sm" c="teal.9" role="status">
              Allowed IPs saved.
            </Text>
          ) : null}
        </Stack>
      </form>
    </Card>
  );
}

/** Where its keys' leak and expiry notices also go; empty: the owners only. */
function NoticeEmailCard({
  credential,
  editable,
  onSaved,
}: {
  credential: CredentialView;
  editable: boolean;
  onSaved: () => void;
}) {
  const stored = credential.email ?? "";
  const [value, setValue] = useState(stored);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setValue(stored), [stored]);
  const dirty = value.trim() !== stored;
  return (
    <Card withBorder data-testid="notice-email-card">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          api
            .updateCredential(credential.id, { email: value.trim() === "" ? null : value.trim() })
            .then(() => {
              setSaved(true);
              onSaved();
            })
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          <TextInput
            label="Email for notices"
            description="Its keys' leak and expiry notices go here as well as to the owners. Not a sign-in; it may be shared."
            type="email"
            maxLength={254}
            value={value}
            readOnly={!editable}
            onChange={(e) => {
              setSaved(false);
              setValue(e.currentTarget.value);
            }}
            error={errorFor(error, "email")}
          />
          {editable && dirty ? (
            <>
              <FormError error={error} fields={["email"]} />
              <Group justify="end">
                <Button variant="default" onClick={() => setValue(stored)}>
                  Undo
                </Button>
                <Button type="submit" loading={busy}>
                  Save email
                </Button>
              </Group>
            </>
          ) : null}
          {saved && !dirty ? (
            <Text size="sm" c="teal.9" role="status">
              Email for notices updated.
            </Text>
          ) : null}
        </Stack>
      </form>
    </Card>
  );
}

function RateLimitsCard({
  credential,
  editable,
  onSaved,
}: {
  credential: CredentialView;
  editable: boolean;
  onSaved: () => void;
}) {
  const [value, setValue] = useState(credential.rate_limits);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setValue(credential.rate_limits), [credential.rate_limits]);
  const dirty = JSON.stringify(value) !== JSON.stringify(credential.rate_limits);
  return (
    <Card withBorder data-testid="rate-limits-card">
      <Title order={2} size="h4" mb="sm">
        Rate limits
      </Title>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          api
            .updateCredential(credential.id, { rate_limits: value })
            .then(() => {
              setSaved(true);
              onSaved();
            })
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          <RateLimitEditor
            value={value}
            onChange={(v) => {
              setSaved(false);
              setValue(v);
            }}
            disabled={!editable}
            label="Limits shared by all keys of this API user"
            description="Counted over every key of this API user together, in sliding windows; each key may also have limits of its own."
            error={errorFor(error, "rate_limits")}
          />
          {editable && dirty ? (
            <>
              <FormError error={error} fields={["rate_limits"]} />
              <Group justify="end">
                <Button variant="default" onClick={() => setValue(credential.rate_limits)}>
                  Undo
                </Button>
                <Button type="submit" loading={busy} disabled={limitsProblem(value) !== null}>
                  Save rate limits
                </Button>
              </Group>
            </>
          ) : null}
          {saved && !dirty ? (
            <Text size="sm" c="teal.9" role="status">
              Rate limits saved.
            </Text>
          ) : null}
        </Stack>
      </form>
    </Card>
  );
}

function PasswordCard({
  credential,
  editable,
  onSaved,
}: {
  credential: CredentialView;
  editable: boolean;
  onSaved: () => void;
}) {
  const [open, setOpen] = useState(false);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [generated, setGenerated] = useState<{ username: string; password: string } | null>(null);
  return (
    <Card withBorder>
      <Group justify="space-between">
        <div>
          <Title order={2} size="h4">
            Basic auth password
          </Title>
          <Text size="sm" c="dimmed">
            {credential.has_password
              ? `Set ${formatDate(credential.password_created_at)}. Generating a new one stops the old one at once.`
              : "None yet. Integrations that cannot send a key can use the username and a password."}
          </Text>
        </div>
        {editable && credential.status === "active" ? (
          <Button variant="light" onClick={() => setOpen(true)}>
            {credential.has_password ? "Generate new password" : "Generate password"}
          </Button>
        ) : null}
      </Group>
      <Modal
        opened={open && generated === null}
        onClose={() => setOpen(false)}
        title="Generate a Basic auth password"
      >
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            api
              .generatePassword(credential.id, code)
              .then(setGenerated)
              .catch(setError)
              .finally(() => {
                setCode("");
                setBusy(false);
              });
          }}
        >
          <Stack>
            {credential.has_password ? (
              <Alert color="red" variant="light">
                The current password stops working as soon as the new one is generated.
              </Alert>
            ) : null}
            <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} autoFocus />
            <FormError error={error} fields={["totp_code"]} />
            <Group justify="end">
              <Button variant="default" onClick={() => setOpen(false)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Generate
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
      <ShowOnceModal
        opened={generated !== null}
        title="Basic auth password"
        fields={
          generated
            ? [
                { label: "Username", value: generated.username },
                { label: "Password", value: generated.password },
              ]
            : []
        }
        onClose={() => {
          setGenerated(null);
          setOpen(false);
          onSaved();
        }}
      />
    </Card>
  );
}
