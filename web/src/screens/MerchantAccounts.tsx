import {
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Loader,
  Modal,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  UnstyledButton,
} from "@mantine/core";
import { useState } from "react";
import { api } from "../api/client.ts";
import type { CredentialView, MerchantAccountView } from "../api/types.ts";
import { CreateKeyModal } from "../components/CreateKeyModal.tsx";
import { errorFor, FormError } from "../components/errors.tsx";
import { EnvBadge } from "../components/KeysTable.tsx";
import { ACTIVE_COLOR, formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { can, companyLevel } from "../lib/roles.ts";
import { useRouter } from "../lib/router.tsx";
import { useSession } from "../lib/session.tsx";
import { CreateApiUserModal } from "./AccessControl.tsx";

function AccountStatus({ status }: { status: MerchantAccountView["status"] }) {
  return (
    <Badge color={status === "active" ? ACTIVE_COLOR : "gray.8"} variant="outline">
      {status}
    </Badge>
  );
}

/**
 * The company's merchant accounts as a grid of cards, as the merchant platform doc shows them: each
 * opens its API users. Merchant accounts are company-wide, so the Live / Test switch does not change
 * this list (it does change which of an account's API users are shown).
 */
export function MerchantAccounts() {
  const { me } = useSession();
  const { navigate } = useRouter();
  const accounts = useLoad(() => api.listMerchantAccounts(), []);
  const [creating, setCreating] = useState(false);
  const manager = can.manageApiUsers(me.role);
  // Setting accounts up is the whole company's: a person limited to one account only reads it.
  const setsUp = manager && companyLevel(me);

  return (
    <Stack>
      <Group justify="space-between">
        <div>
          <Title order={1} size="h2">
            Merchant accounts
          </Title>
          <Text c="dimmed" size="sm">
            Each merchant account has API users of its own, live and test. Their keys act within the account
            only.
          </Text>
        </div>
        {setsUp ? <Button onClick={() => setCreating(true)}>Create merchant account</Button> : null}
      </Group>
      <FormError error={accounts.error} />
      {accounts.loading && !accounts.data ? <Loader aria-label="Loading merchant accounts" /> : null}
      {accounts.data?.length === 0 ? <Text>No merchant accounts yet.</Text> : null}
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }} data-testid="merchant-accounts-grid">
        {(accounts.data ?? []).map((m) => (
          <Card key={m.id} withBorder padding="md" data-testid="merchant-account-card">
            <UnstyledButton
              onClick={() => navigate(`/merchant-accounts/${m.id}`)}
              aria-label={`Open merchant account ${m.name}`}
            >
              <Group justify="space-between" wrap="nowrap">
                <Text fw={700}>{m.name}</Text>
                <AccountStatus status={m.status} />
              </Group>
              <Text size="xs" className="mono" c="dimmed">
                {m.code}
              </Text>
              <Text size="sm" mt="xs">
                {m.api_user_count} API {m.api_user_count === 1 ? "user" : "users"} · {m.key_count}{" "}
                {m.key_count === 1 ? "key" : "keys"}
              </Text>
            </UnstyledButton>
          </Card>
        ))}
      </SimpleGrid>
      <CreateMerchantAccountModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(m) => {
          setCreating(false);
          navigate(`/merchant-accounts/${m.id}`);
        }}
      />
    </Stack>
  );
}

function CreateMerchantAccountModal({
  opened,
  onClose,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (m: MerchantAccountView) => void;
}) {
  const [name, setName] = useState("");
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = () => {
    setBusy(true);
    setError(null);
    api
      .createMerchantAccount({ name: name.trim(), code: code.trim() })
      .then((m) => {
        setName("");
        setCode("");
        onCreated(m);
      })
      .catch(setError)
      .finally(() => setBusy(false));
  };
  return (
    <Modal opened={opened} onClose={onClose} title="Create merchant account">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <Stack>
          <TextInput
            label="Name"
            required
            maxLength={200}
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            error={errorFor(error, "name")}
            data-autofocus
          />
          <TextInput
            label="Code"
            description="Letters, digits, - and _; unique in the company, and fixed once created."
            required
            maxLength={64}
            value={code}
            onChange={(e) => setCode(e.currentTarget.value)}
            error={errorFor(error, "code")}
          />
          <FormError error={error} fields={["name", "code"]} />
          <Group justify="end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              Create merchant account
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** One merchant account: its API users (in the environment the console is switched to) and their keys. */
export function MerchantAccountDetail({ id }: { id: string }) {
  const { me, env } = useSession();
  const { navigate } = useRouter();
  const account = useLoad(() => api.getMerchantAccount(id), [id]);
  const users = useLoad(() => api.listCredentials({ environment: env, merchant_account_id: id }), [id, env]);
  const [creatingUser, setCreatingUser] = useState(false);
  const [keyFor, setKeyFor] = useState<CredentialView | null>(null);
  // Fixed when a dialog opens, so it does not change its mind while it closes over the new state.
  const [editing, setEditing] = useState<"rename" | "deactivate" | "reactivate" | null>(null);
  const manager = can.manageApiUsers(me.role);
  // Setting accounts up is the whole company's: a person limited to one account only reads it.
  const setsUp = manager && companyLevel(me);
  const m = account.data;

  return (
    <Stack>
      <Anchor
        href="/merchant-accounts"
        size="sm"
        onClick={(e) => {
          e.preventDefault();
          navigate("/merchant-accounts");
        }}
      >
        ‹ Merchant accounts
      </Anchor>
      <FormError error={account.error} />
      {!m ? (
        <Loader aria-label="Loading merchant account" />
      ) : (
        <>
          <Group justify="space-between" align="start">
            <div>
              <Group gap="xs">
                <Title order={1} size="h2">
                  {m.name}
                </Title>
                <AccountStatus status={m.status} />
              </Group>
              <Text size="xs" className="mono" c="dimmed">
                {m.code} · {m.id} · created {formatDate(m.created_at)}
              </Text>
            </div>
            {setsUp ? (
              <Group gap="xs">
                <Button variant="default" onClick={() => setEditing("rename")}>
                  Rename
                </Button>
                <Button
                  variant="light"
                  color={m.status === "active" ? "red" : "teal"}
                  onClick={() => setEditing(m.status === "active" ? "deactivate" : "reactivate")}
                >
                  {m.status === "active" ? "Deactivate" : "Reactivate"}
                </Button>
              </Group>
            ) : null}
          </Group>
          <Group justify="space-between">
            <Group gap="xs" wrap="nowrap">
              <EnvBadge env={env} />
              <Text c="dimmed" size="sm">
                Its {env} API users. Their keys act within this merchant account only.
              </Text>
            </Group>
            {manager && m.status === "active" ? (
              <Button onClick={() => setCreatingUser(true)}>Add API user</Button>
            ) : null}
          </Group>
          <FormError error={users.error} />
          <Table.ScrollContainer minWidth={560}>
            <Table data-testid="merchant-api-users" verticalSpacing="xs">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Username</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Keys</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {(users.data ?? []).map((c) => (
                  <Table.Tr key={c.id}>
                    <Table.Td>
                      <Anchor
                        href={`/api-users/${c.id}`}
                        onClick={(e) => {
                          e.preventDefault();
                          navigate(`/api-users/${c.id}`);
                        }}
                      >
                        {c.name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Text size="xs" className="mono">
                        {c.username}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{c.status}</Text>
                    </Table.Td>
                    <Table.Td>
                      {can.writeKey(me.role, c.environment) &&
                      c.status === "active" &&
                      m.status === "active" ? (
                        <Button size="compact-sm" variant="light" onClick={() => setKeyFor(c)}>
                          Add API key
                        </Button>
                      ) : null}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {users.data?.length === 0 ? <Text size="sm">No {env} API users in this account yet.</Text> : null}
          <CreateApiUserModal
            opened={creatingUser}
            onClose={() => setCreatingUser(false)}
            merchantAccount={{ id: m.id, name: m.name }}
            onCreated={() => {
              setCreatingUser(false);
              void users.reload();
              void account.reload();
            }}
          />
          {keyFor ? (
            <CreateKeyModal
              opened
              onClose={() => setKeyFor(null)}
              onCreated={() => void account.reload()}
              credentials={[keyFor]}
              fixedCredential={keyFor}
            />
          ) : null}
          <EditMerchantAccountModal
            account={m}
            mode={editing}
            onClose={() => setEditing(null)}
            onSaved={() => {
              setEditing(null);
              void account.reload();
            }}
          />
        </>
      )}
    </Stack>
  );
}

function EditMerchantAccountModal({
  account,
  mode,
  onClose,
  onSaved,
}: {
  account: MerchantAccountView;
  mode: "rename" | "deactivate" | "reactivate" | null;
  onClose: () => void;
  onSaved: () => void;
}) {
  const [name, setName] = useState(account.name);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const deactivating = mode === "deactivate";
  const save = (body: { name?: string; status?: "active" | "inactive" }) => {
    setBusy(true);
    setError(null);
    api
      .updateMerchantAccount(account.id, body)
      .then(onSaved)
      .catch(setError)
      .finally(() => setBusy(false));
  };
  return (
    <Modal
      opened={mode !== null}
      onClose={onClose}
      title={
        mode === "rename"
          ? "Rename merchant account"
          : deactivating
            ? "Deactivate merchant account"
            : "Reactivate merchant account"
      }
    >
      {mode === "rename" ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save({ name: name.trim() });
          }}
        >
          <Stack>
            <TextInput
              label="Name"
              required
              maxLength={200}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={errorFor(error, "name")}
              data-autofocus
            />
            <FormError error={error} fields={["name"]} />
            <Group justify="end">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Save
              </Button>
            </Group>
          </Stack>
        </form>
      ) : (
        <Stack>
          <Text size="sm">
            {deactivating
              ? "Every key and password of its API users stops working at once, live and test, until it is reactivated."
              : "Its API users' keys and passwords work again (those not revoked or deactivated on their own)."}
          </Text>
          <FormError error={error} />
          <Group justify="end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button
              color={deactivating ? "red" : "teal"}
              loading={busy}
              onClick={() => save({ status: deactivating ? "inactive" : "active" })}
            >
              {deactivating ? "Deactivate" : "Reactivate"}
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}
