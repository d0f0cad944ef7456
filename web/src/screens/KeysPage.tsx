import { Alert, Button, Group, Loader, Select, Stack, Text, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { api } from "../api/client.ts";
import { CreateKeyModal } from "../components/CreateKeyModal.tsx";
import { FormError } from "../components/errors.tsx";
import { EnvBadge, KeysTable } from "../components/KeysTable.tsx";
import { useLoad } from "../lib/hooks.ts";
import { can } from "../lib/roles.ts";
import { useSession } from "../lib/session.tsx";

/** Every key of the company in the environment the Live / Test switch selects. */
export function KeysPage() {
  const { me, env } = useSession();
  const [status, setStatus] = useState<string>("all");
  const [credentialId, setCredentialId] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [creating, setCreating] = useState(false);
  const keys = useLoad(() => api.listKeys({ environment: env }), [env]);
  // A key belongs to its API user's environment: the API users of this one.
  const creds = useLoad(() => api.listCredentials({ environment: env }), [env]);

  const all = keys.data ?? [];
  const counts = {
    all: all.length,
    active: all.filter((k) => k.status === "active").length,
    expired: all.filter((k) => k.status === "expired").length,
    revoked: all.filter((k) => k.status === "revoked").length,
  };
  const q = search.trim().toLowerCase();
  const shown = (keys.data ?? []).filter(
    (k) =>
      (status === "all" || k.status === status) &&
      (!credentialId || k.credential_id === credentialId) &&
      (!q || k.name.toLowerCase().includes(q) || k.prefix.toLowerCase().includes(q)),
  );

  return (
    <Stack>
      <Group justify="space-between">
        <Group gap="xs">
          <Title order={1} size="h2">
            API keys
          </Title>
          <EnvBadge env={env} />
        </Group>
        {can.writeAnyKey(me.role) ? (
          <Button
            onClick={() => setCreating(true)}
            disabled={!creds.data?.some((c) => c.status === "active" && can.writeKey(me.role, c.environment))}
          >
            Create API key
          </Button>
        ) : null}
      </Group>
      {me.role === "developer" && env === "live" ? (
        <Alert variant="light" color="blue">
          Developers can see live keys but create, rotate and revoke test keys only.
        </Alert>
      ) : null}
      <Group gap="sm" align="end">
        <TextInput
          label="Search"
          placeholder="Name or prefix"
          type="search"
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          w={{ base: "100%", sm: 220 }}
        />
        <Select
          label="Status"
          value={status}
          onChange={(v) => setStatus(v ?? "all")}
          allowDeselect={false}
          // Each status says how many keys it holds, so "Revoked (3)" is known before it is chosen.
          data={[
            { value: "all", label: `All (${counts.all})` },
            { value: "active", label: `Active (${counts.active})` },
            { value: "expired", label: `Expired (${counts.expired})` },
            { value: "revoked", label: `Revoked (${counts.revoked})` },
          ]}
          w={{ base: "100%", sm: 160 }}
        />
        <Select
          label="API user"
          placeholder="All API users"
          clearable
          value={credentialId}
          onChange={setCredentialId}
          data={(creds.data ?? []).map((c) => ({ value: c.id, label: c.name }))}
          w={{ base: "100%", sm: 220 }}
        />
      </Group>
      <FormError error={keys.error ?? creds.error} />
      {keys.loading && !keys.data ? (
        <Loader aria-label="Loading keys" />
      ) : (
        <>
          <Text size="sm" c="dimmed" aria-live="polite">
            {shown.length} {env} {shown.length === 1 ? "key" : "keys"}
          </Text>
          <KeysTable
            keys={shown}
            credentials={creds.data ?? []}
            onChanged={() => void keys.reload()}
            emptyText={`No ${env} keys match.`}
          />
        </>
      )}
      <CreateKeyModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={() => void keys.reload()}
        credentials={creds.data ?? []}
      />
    </Stack>
  );
}
