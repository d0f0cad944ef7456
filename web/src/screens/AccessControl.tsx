import {
  Badge,
  Button,
  Card,
  Group,
  Loader,
  Modal,
  Radio,
  Select,
  Stack,
  Table,
  Tabs,
  Text,
  Textarea,
  TextInput,
  Title,
} from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { useRef, useState } from "react";
import { api, type Invitation } from "../api/client.ts";
import type { CredentialView, RateLimit, Role, UserView } from "../api/types.ts";
import { errorFor, FormError } from "../components/errors.tsx";
import { IpEditor, useIpList } from "../components/IpEditor.tsx";
import { EnvBadge, permissionSummary } from "../components/KeysTable.tsx";
import { PermissionsField } from "../components/PermissionMatrix.tsx";
import { CodeConfirmDialog } from "../components/PersonDialogs.tsx";
import { limitsProblem, RateLimitEditor } from "../components/RateLimitEditor.tsx";
import { NO_GRANT_CHOSEN, RolesField } from "../components/RolesField.tsx";
import { ShowOnceModal } from "../components/ShowOnce.tsx";
import { TotpInput } from "../components/TotpInput.tsx";
import { Username } from "../components/Username.tsx";
import { ACTIVE_COLOR, formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { can, companyLevel, ROLE_LABELS } from "../lib/roles.ts";
import { useRouter } from "../lib/router.tsx";
import { useSession } from "../lib/session.tsx";

/** Settings > Access control: the company's people and its API users, in separate lists. */
export function AccessControl({ tab }: { tab: "people" | "api-users" }) {
  const { me } = useSession();
  const { navigate } = useRouter();
  // People are managed by the company as a whole, not from within one merchant account.
  const showPeople = can.managePeople(me.role) && companyLevel(me);
  const current = showPeople ? tab : "api-users";
  return (
    <Stack>
      <Title order={1} size="h2">
        Access control
      </Title>
      <Tabs
        value={current}
        onChange={(v) => navigate(`/settings/access/${v ?? "api-users"}`)}
        keepMounted={false}
      >
        <Tabs.List>
          <Tabs.Tab value="api-users">API users</Tabs.Tab>
          {showPeople ? <Tabs.Tab value="people">People</Tabs.Tab> : null}
        </Tabs.List>
        <Tabs.Panel value="api-users" pt="md">
          <ApiUsers />
        </Tabs.Panel>
        {showPeople ? (
          <Tabs.Panel value="people" pt="md">
            <People />
          </Tabs.Panel>
        ) : null}
      </Tabs>
    </Stack>
  );
}

function UserStatus({ status }: { status: string }) {
  return (
    <Badge color={status === "active" ? ACTIVE_COLOR : "gray.8"} variant="outline">
      {status}
    </Badge>
  );
}

/** The select's value for a membership of the whole company (the API's null). */
const WHOLE_COMPANY = "whole-company";

function People() {
  const { me } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const users = useLoad(() => api.listUsers().then((r) => r.users), []);
  const accounts = useLoad(() => api.listMerchantAccounts(), []);
  const [merchantAccount, setMerchantAccount] = useState<string>(WHOLE_COMPANY);
  const accountOptions = [
    { value: WHOLE_COMPANY, label: "Whole company" },
    ...(accounts.data ?? [])
      .filter((m) => m.status === "active")
      .map((m) => ({ value: m.id, label: `${m.name} (${m.code})` })),
  ];
  const accountName = (id: string | null) =>
    id === null ? "Whole company" : (accounts.data?.find((m) => m.id === id)?.name ?? id);
  const [inviting, setInviting] = useState(false);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("developer");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [invited, setInvited] = useState<Invitation | null>(null);
  const [reinviting, setReinviting] = useState<UserView | null>(null);
  const [resettingTotp, setResettingTotp] = useState<UserView | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [rowError, setRowError] = useState<{ id: string; error: unknown } | null>(null);
  const [disabling, setDisabling] = useState<UserView | null>(null);
  const roles = (["owner", "moderator", "developer", "viewer"] as Role[]).filter((r) =>
    can.assignRole(me.role, r),
  );

  const change = async (
    u: UserView,
    body: { role?: Role; status?: "active" | "disabled"; merchant_account_id?: string | null },
  ) => {
    setRowError(null);
    try {
      await api.updateUser(u.id, body);
      await users.reload();
    } catch (err) {
      setRowError({ id: u.id, error: err });
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Text c="dimmed" size="sm">
          People sign in to this console. Owners and moderators manage API users and keys; developers manage
          test keys; viewers only read.
        </Text>
        <Button onClick={() => setInviting(true)}>Invite person</Button>
      </Group>
      <FormError error={users.error} />
      {users.loading && !users.data ? <Loader aria-label="Loading people" /> : null}
      <Table.ScrollContainer minWidth={narrow ? 0 : 640}>
        <Table
          data-testid="people-list"
          verticalSpacing="xs"
          className={narrow ? "stacked-table" : undefined}
        >
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Email</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Merchant account</Table.Th>
              <Table.Th>2FA</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Added</Table.Th>
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(users.data ?? []).map((u) => {
              const self = u.id === me.user.id;
              const editable = !self && can.assignRole(me.role, u.role);
              return (
                <Table.Tr key={u.id}>
                  <Table.Td data-label="Email">
                    <Text size="sm">{u.email}</Text>
                    {rowError?.id === u.id ? <FormError error={rowError.error} /> : null}
                  </Table.Td>
                  <Table.Td data-label="Role">
                    {editable ? (
                      <Select
                        aria-label={`Role of ${u.email}`}
                        size="xs"
                        w={140}
                        value={u.role}
                        allowDeselect={false}
                        data={roles.map((r) => ({ value: r, label: ROLE_LABELS[r] }))}
                        onChange={(v) => v && v !== u.role && void change(u, { role: v as Role })}
                      />
                    ) : (
                      <Text size="sm">{ROLE_LABELS[u.role]}</Text>
                    )}
                  </Table.Td>
                  <Table.Td data-label="Merchant account">
                    {editable ? (
                      <Select
                        aria-label={`Merchant account of ${u.email}`}
                        size="xs"
                        w={180}
                        value={u.merchant_account_id ?? WHOLE_COMPANY}
                        allowDeselect={false}
                        data={
                          u.merchant_account_id === null ||
                          accountOptions.some((o) => o.value === u.merchant_account_id)
                            ? accountOptions
                            : [
                                ...accountOptions,
                                { value: u.merchant_account_id, label: accountName(u.merchant_account_id) },
                              ]
                        }
                        onChange={(v) => {
                          const next = v === WHOLE_COMPANY ? null : v;
                          if (v && next !== u.merchant_account_id)
                            void change(u, { merchant_account_id: next });
                        }}
                      />
                    ) : (
                      <Text size="sm">{accountName(u.merchant_account_id)}</Text>
                    )}
                  </Table.Td>
                  <Table.Td data-label="2FA">
                    <Text size="sm">{u.totp_enrolled ? "On" : "Not set up"}</Text>
                  </Table.Td>
                  <Table.Td data-label="Status">
                    <UserStatus status={u.status} />
                  </Table.Td>
                  <Table.Td data-label="Added">
                    <Text size="sm">{formatDate(u.created_at)}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Group gap="xs" wrap="wrap">
                      {editable && u.status === "active" && u.password_change_required ? (
                        <Button size="compact-sm" variant="light" onClick={() => setReinviting(u)}>
                          Reissue invitation
                        </Button>
                      ) : null}
                      {!self && me.role === "owner" && u.totp_enrolled ? (
                        <Button
                          size="compact-sm"
                          variant="light"
                          color="red"
                          onClick={() => setResettingTotp(u)}
                        >
                          Reset 2FA
                        </Button>
                      ) : null}
                      {editable ? (
                        u.status === "active" ? (
                          <Button
                            size="compact-sm"
                            variant="light"
                            color="red"
                            onClick={() => setDisabling(u)}
                          >
                            Disable
                          </Button>
                        ) : (
                          <Button
                            size="compact-sm"
                            variant="light"
                            onClick={() => void change(u, { status: "active" })}
                          >
                            Enable
                          </Button>
                        )
                      ) : null}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>

      <Modal
        opened={disabling !== null}
        onClose={() => setDisabling(null)}
        title={`Disable ${disabling?.email ?? ""}?`}
      >
        <Stack>
          <Text>
            They are signed out everywhere and cannot sign in until enabled again. Their keys are not
            affected.
          </Text>
          <Group justify="end">
            <Button variant="default" onClick={() => setDisabling(null)}>
              Cancel
            </Button>
            <Button
              color="red"
              data-autofocus
              onClick={() => {
                if (disabling) void change(disabling, { status: "disabled" });
                setDisabling(null);
              }}
            >
              Disable
            </Button>
          </Group>
        </Stack>
      </Modal>

      <Modal opened={inviting} onClose={() => setInviting(false)} title="Invite a person">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            api
              .inviteUser(email.trim(), role, merchantAccount === WHOLE_COMPANY ? null : merchantAccount)
              .then((r) => {
                setInviting(false);
                setEmail("");
                setMerchantAccount(WHOLE_COMPANY);
                setInvited(r);
                void users.reload();
              })
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            <TextInput
              label="Email"
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              error={errorFor(error, "email")}
              data-autofocus
            />
            <Select
              label="Role"
              value={role}
              allowDeselect={false}
              onChange={(v) => setRole((v as Role) ?? "developer")}
              data={roles.map((r) => ({ value: r, label: ROLE_LABELS[r] }))}
              error={errorFor(error, "role")}
              comboboxProps={{ withinPortal: true }}
            />
            <Select
              label="Merchant account"
              description="Limited to one account, they see and manage only its API users and keys"
              value={merchantAccount}
              allowDeselect={false}
              onChange={(v) => setMerchantAccount(v ?? WHOLE_COMPANY)}
              data={accountOptions}
              error={errorFor(error, "merchant_account_id")}
              comboboxProps={{ withinPortal: true }}
            />
            <FormError error={error} fields={["email", "role", "merchant_account_id"]} />
            <Group justify="end">
              <Button variant="default" onClick={() => setInviting(false)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Invite
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
      <ShowOnceModal
        opened={invited !== null && !invited.invitation_sent}
        title={`Invitation for ${invited?.email ?? ""}`}
        fields={
          invited?.temporary_password
            ? [{ label: "Temporary password", value: invited.temporary_password }]
            : []
        }
        note="Give it to them privately; they choose their own password at first sign-in."
        onClose={() => setInvited(null)}
      />
      <Modal
        opened={notice !== null || invited?.invitation_sent === true}
        onClose={() => {
          setNotice(null);
          setInvited(null);
        }}
        title="Done"
      >
        <Stack>
          <Text role="status">
            {notice ??
              `An invitation was emailed to ${invited?.email ?? ""}. Its link works once, for 7 days.`}
          </Text>
          <Group justify="end">
            <Button
              data-autofocus
              onClick={() => {
                setNotice(null);
                setInvited(null);
              }}
            >
              OK
            </Button>
          </Group>
        </Stack>
      </Modal>
      <CodeConfirmDialog
        opened={reinviting !== null}
        title={`Reissue the invitation of ${reinviting?.email ?? ""}?`}
        confirmLabel="Reissue invitation"
        action={async (code) => {
          if (!reinviting) return;
          const r = await api.reinviteUser(reinviting.id, code);
          setInvited(r);
        }}
        onClose={() => setReinviting(null)}
      >
        <Text>Their current invitation stops working and a new one is made.</Text>
      </CodeConfirmDialog>
      <CodeConfirmDialog
        opened={resettingTotp !== null}
        title={`Reset the 2FA of ${resettingTotp?.email ?? ""}?`}
        confirmLabel="Reset 2FA"
        color="red"
        action={async (code) => {
          if (!resettingTotp) return;
          await api.resetUserTotp(resettingTotp.id, code);
          setNotice(
            `The 2FA of ${resettingTotp.email} was reset. They were signed out, told by email, and set up their authenticator again at their next sign-in.`,
          );
          await users.reload();
        }}
        onClose={() => setResettingTotp(null)}
      >
        <Text>
          Their authenticator and recovery codes stop working and they are signed out everywhere. Do this only
          when you are sure it is them asking, for example when they lost their phone.
        </Text>
      </CodeConfirmDialog>
    </Stack>
  );
}

function ApiUsers() {
  const { me, catalog, env } = useSession();
  const { navigate } = useRouter();
  const narrow = useMediaQuery("(max-width: 48em)");
  const creds = useLoad(() => api.listCredentials({ environment: env }), [env]);
  // Which merchant account each API user acts within (company-wide, so loaded once).
  const accounts = useLoad(() => api.listMerchantAccounts(), []);
  const accountName = (id: string | null) =>
    id === null ? "Company" : (accounts.data?.find((m) => m.id === id)?.name ?? id);
  const [creating, setCreating] = useState(false);
  const groupNames = new Map(catalog.groups.map((g) => [g.id, g.name]));
  const open = (c: CredentialView) => navigate(`/api-users/${c.id}`);

  return (
    <Stack>
      <Group justify="space-between">
        <Group gap="xs" wrap="nowrap" align="start">
          <EnvBadge env={env} />
          <Text c="dimmed" size="sm">
            API users are dedicated credentials for integrations. They never sign in; their keys do the work.
            Each belongs to live or test for good; this list shows the {env} ones.
          </Text>
        </Group>
        {can.manageApiUsers(me.role) ? (
          <Button onClick={() => setCreating(true)}>Create API user</Button>
        ) : null}
      </Group>
      <FormError error={creds.error} />
      {creds.loading && !creds.data ? <Loader aria-label="Loading API users" /> : null}
      {narrow ? (
        <Stack gap="sm" data-testid="api-users-list">
          {(creds.data ?? []).map((c) => (
            <Card key={c.id} withBorder padding="sm">
              <Group justify="space-between" wrap="nowrap">
                <Button variant="subtle" px={0} onClick={() => open(c)}>
                  {c.name}
                </Button>
                <Group gap={6} wrap="nowrap">
                  <EnvBadge env={c.environment} />
                  <UserStatus status={c.status} />
                </Group>
              </Group>
              <Text size="xs">
                <Username value={c.username} />
              </Text>
              <Text size="sm">Merchant account: {accountName(c.merchant_account_id)}</Text>
              <Text size="sm">{permissionSummary(c.permission_summary, groupNames)}</Text>
            </Card>
          ))}
        </Stack>
      ) : (
        <Table.ScrollContainer minWidth={760}>
          <Table data-testid="api-users-list" highlightOnHover verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Env</Table.Th>
                <Table.Th>Merchant account</Table.Th>
                <Table.Th>Username</Table.Th>
                <Table.Th>Permissions</Table.Th>
                <Table.Th>Allowed IPs</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Created</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(creds.data ?? []).map((c) => (
                <Table.Tr key={c.id} className="clickable-row" onClick={() => open(c)}>
                  <Table.Td>
                    <a
                      href={`/api-users/${c.id}`}
                      onClick={(e) => {
                        e.preventDefault();
                        open(c);
                      }}
                    >
                      {c.name}
                    </a>
                    {c.is_default ? (
                      <Badge size="xs" ml={6} variant="light">
                        default
                      </Badge>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    <EnvBadge env={c.environment} />
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{accountName(c.merchant_account_id)}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs">
                      <Username value={c.username} />
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{permissionSummary(c.permission_summary, groupNames)}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{c.allowed_ips.length === 0 ? "any" : c.allowed_ips.join(", ")}</Text>
                  </Table.Td>
                  <Table.Td>
                    <UserStatus status={c.status} />
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{formatDate(c.created_at)}</Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <CreateApiUserModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(c) => {
          setCreating(false);
          navigate(`/api-users/${c.id}`);
        }}
      />
    </Stack>
  );
}

/** `merchantAccount`: the account the API user is made in, for good; absent: company-level. */
export function CreateApiUserModal({
  opened,
  onClose,
  onCreated,
  merchantAccount,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (c: CredentialView) => void;
  merchantAccount?: { id: string; name: string };
}) {
  const { catalog, env } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [email, setEmail] = useState("");
  const [permissions, setPermissions] = useState<string[]>([]);
  const [roles, setRoles] = useState<string[]>([]);
  const [format, setFormat] = useState<"web_service" | "legal_entity_management">("web_service");
  const ips = useIpList();
  const [limits, setLimits] = useState<RateLimit[]>([]);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // Set by a submit refused for want of a role or permission; the reason shows until one is chosen.
  const [triedEmpty, setTriedEmpty] = useState(false);
  const rolesRef = useRef<HTMLFieldSetElement>(null);
  const empty = permissions.length === 0 && roles.length === 0;
  const grantProblem = triedEmpty && empty ? NO_GRANT_CHOSEN : undefined;
  // Adding an allowlist needs a second factor; an address typed but not yet added counts.
  const needsCode = ips.pending.length > 0;

  const submit = () => {
    // Both checks run, so each says what is wrong; the focus goes to the first, in the form's order.
    const allowedIps = ips.commit();
    if (empty) {
      setTriedEmpty(true);
      rolesRef.current?.focus();
      return;
    }
    if (allowedIps === null) return;
    setBusy(true);
    setError(null);
    api
      .createCredential(
        {
          name: name.trim(),
          environment: env,
          ...(merchantAccount ? { merchant_account_id: merchantAccount.id } : {}),
          ...(description.trim() ? { description: description.trim() } : {}),
          ...(email.trim() ? { email: email.trim() } : {}),
          username_format: format,
          roles,
          permissions,
          ...(allowedIps.length > 0 ? { allowed_ips: allowedIps } : {}),
          ...(limits.length > 0 ? { rate_limits: limits } : {}),
        },
        allowedIps.length > 0 ? code : undefined,
      )
      .then((c) => {
        setName("");
        setDescription("");
        setEmail("");
        setPermissions([]);
        setRoles([]);
        setFormat("web_service");
        setTriedEmpty(false);
        ips.reset([]);
        setLimits([]);
        onCreated(c);
      })
      .catch(setError)
      .finally(() => {
        setCode("");
        setBusy(false);
      });
  };

  return (
    <Modal
      opened={opened}
      onClose={onClose}
      title="Create API user"
      size="xl"
      fullScreen={narrow}
      closeOnClickOutside={false}
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <Stack>
          <Group gap="xs" wrap="nowrap" align="start" data-testid="api-user-environment">
            <EnvBadge env={env} />
            <Text size="sm">
              {env === "test"
                ? "A test API user, because the console is switched to Test: its keys are test keys."
                : "A live API user, because the console is switched to Live: its keys are live keys."}{" "}
              This is fixed once it is created.
            </Text>
          </Group>
          {merchantAccount ? (
            <Text size="sm" data-testid="api-user-merchant-account">
              In the merchant account <b>{merchantAccount.name}</b>: it and its keys act within that account
              only.
            </Text>
          ) : null}
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
          <TextInput
            label="Email for notices"
            description="Optional: its keys' leak and expiry notices go here too. Not a sign-in; it may be shared."
            type="email"
            maxLength={254}
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
            error={errorFor(error, "email")}
          />
          <Radio.Group
            label="Kind of API user"
            description="Sets the shape of its username, for good."
            value={format}
            onChange={(v) => setFormat(v as typeof format)}
            data-testid="username-format"
          >
            <Stack gap={6} mt={6}>
              <Radio value="web_service" label="Web service: ws_123456@Company.YourCompany" />
              <Radio
                value="legal_entity_management"
                label="Legal entity management: ws_123456@Scope.Company_YourCompany"
              />
            </Stack>
          </Radio.Group>
          <RolesField
            ref={rolesRef}
            roles={catalog.roles}
            value={roles}
            onChange={setRoles}
            error={grantProblem ?? errorFor(error, "roles")}
          />
          <PermissionsField
            groups={catalog.groups}
            value={permissions}
            onChange={setPermissions}
            hint="Single permissions, beside its roles."
            error={grantProblem ?? errorFor(error, "permissions")}
          />
          <IpEditor
            list={ips}
            error={errorFor(error, "allowed_ips")}
            emptyText="No restriction: its keys are accepted from any address, unless a key has a list of its own."
          />
          <RateLimitEditor
            value={limits}
            onChange={setLimits}
            label="Rate limits (optional)"
            description="Shared by all keys of this API user, in sliding windows."
            error={errorFor(error, "rate_limits")}
          />
          {needsCode ? (
            <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} />
          ) : null}
          <FormError
            error={error}
            fields={[
              "name",
              "description",
              "roles",
              "permissions",
              "allowed_ips",
              "rate_limits",
              "totp_code",
            ]}
          />
          <Group justify="end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} disabled={limitsProblem(limits) !== null}>
              Create API user
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
