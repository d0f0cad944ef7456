import {
  Alert,
  Button,
  Card,
  Checkbox,
  Group,
  Loader,
  NumberInput,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { useEffect, useState } from "react";
import { api } from "../api/client.ts";
import type { Environment, EnvironmentExpiryPolicy, ExpiryPolicyDoc } from "../api/types.ts";
import { errorFor, FormError } from "../components/errors.tsx";
import { EnvBadge } from "../components/KeysTable.tsx";
import { TotpInput } from "../components/TotpInput.tsx";
import { formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { can } from "../lib/roles.ts";
import { useSession } from "../lib/session.tsx";

const ISSUES: Record<string, string> = {
  no_expiry: "Never expires",
  lifetime_too_long: "Lives longer than the maximum",
};

/** What the form holds for one environment: numbers as typed, "" for none. */
interface Draft {
  max_lifetime_days: number | "";
  must_expire: boolean;
  revoke_unused_after_days: number | "";
}

const draftOf = (p: EnvironmentExpiryPolicy): Draft => ({
  max_lifetime_days: p.max_lifetime_days ?? "",
  must_expire: p.must_expire,
  revoke_unused_after_days: p.revoke_unused_after_days ?? "",
});
const policyOf = (d: Draft): EnvironmentExpiryPolicy => ({
  max_lifetime_days: d.max_lifetime_days === "" ? null : d.max_lifetime_days,
  must_expire: d.must_expire,
  revoke_unused_after_days: d.revoke_unused_after_days === "" ? null : d.revoke_unused_after_days,
});

/**
 * Settings › Expiry policy: the company's rules for new keys and unused ones, per environment, and the
 * keys that fall short of them. Owners change it (with a 2FA code); everyone else reads it.
 */
export function ExpiryPolicy() {
  const { me, env } = useSession();
  const doc = useLoad(() => api.getExpiryPolicy(), [env]);
  const editable = can.setExpiryPolicy(me.role);
  // A console switched to Test sees and changes the test policy only.
  const shown: Environment[] = env === "test" ? ["test"] : ["live", "test"];

  return (
    <Stack>
      <Title order={1} size="h2">
        Expiry policy
      </Title>
      <Text size="sm" c="dimmed">
        A policy applies to keys made from now on; existing keys are never changed, and those that do not
        comply are listed below. Notices go out 7 days and 1 day before a key expires, and at least{" "}
        {doc.data?.unused_notice_days ?? 7} days before an unused key is revoked.
      </Text>
      {!editable ? (
        <Alert variant="light" color="blue">
          Only an owner can change the expiry policy.
        </Alert>
      ) : null}
      <FormError error={doc.error} />
      {doc.loading && !doc.data ? <Loader aria-label="Loading the expiry policy" /> : null}
      {doc.data ? (
        <>
          <PolicyForm doc={doc.data} shown={shown} editable={editable} onSaved={() => void doc.reload()} />
          <Noncompliant doc={doc.data} />
        </>
      ) : null}
    </Stack>
  );
}

function PolicyForm({
  doc,
  shown,
  editable,
  onSaved,
}: {
  doc: ExpiryPolicyDoc;
  shown: Environment[];
  editable: boolean;
  onSaved: () => void;
}) {
  const initial = () =>
    Object.fromEntries(shown.map((e) => [e, draftOf(doc[e] ?? doc.test)])) as Record<Environment, Draft>;
  const [drafts, setDrafts] = useState<Record<Environment, Draft>>(initial);
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);
  // biome-ignore lint/correctness/useExhaustiveDependencies: a fresh document resets the form
  useEffect(() => setDrafts(initial()), [doc]);

  const set = (e: Environment, patch: Partial<Draft>) => {
    setSaved(false);
    setDrafts((d) => ({ ...d, [e]: { ...d[e], ...patch } }));
  };

  const save = async () => {
    setSaving(true);
    setError(null);
    try {
      await api.updateExpiryPolicy(Object.fromEntries(shown.map((e) => [e, policyOf(drafts[e])])), code);
      setCode("");
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  };

  return (
    <form
      onSubmit={(ev) => {
        ev.preventDefault();
        void save();
      }}
    >
      <Stack>
        <SimpleGrid cols={{ base: 1, md: shown.length }}>
          {shown.map((e) => {
            const d = drafts[e];
            const meta = doc[e];
            return (
              <Card key={e} withBorder padding="md" data-testid={`expiry-policy-${e}`}>
                <Group gap="xs" mb="sm">
                  <Title order={2} size="h4">
                    {e === "live" ? "Live keys" : "Test keys"}
                  </Title>
                  <EnvBadge env={e} />
                </Group>
                <Stack gap="sm">
                  <NumberInput
                    label="Maximum lifetime (days)"
                    description="New keys expire at most this long after they are made; a key asked without an expiry gets this one. Empty: no maximum."
                    min={1}
                    max={3650}
                    allowDecimal={false}
                    value={d.max_lifetime_days}
                    onChange={(v) => set(e, { max_lifetime_days: typeof v === "number" ? v : "" })}
                    disabled={!editable}
                    error={errorFor(error, `${e}.max_lifetime_days`)}
                    name={`${e}-max-lifetime`}
                  />
                  <Checkbox
                    label="New keys must expire"
                    description="A key asked without an expiry is refused (unless a maximum lifetime gives it one)."
                    checked={d.must_expire}
                    onChange={(ev) => set(e, { must_expire: ev.currentTarget.checked })}
                    disabled={!editable}
                    name={`${e}-must-expire`}
                  />
                  <NumberInput
                    label="Revoke keys unused for (days)"
                    description="Active keys not used this long are revoked, after a notice at least 7 days before. 14 or more; empty: never."
                    min={14}
                    max={3650}
                    allowDecimal={false}
                    value={d.revoke_unused_after_days}
                    onChange={(v) => set(e, { revoke_unused_after_days: typeof v === "number" ? v : "" })}
                    disabled={!editable}
                    error={errorFor(error, `${e}.revoke_unused_after_days`)}
                    name={`${e}-revoke-unused`}
                  />
                  <Text size="xs" c="dimmed">
                    {meta?.updated_at ? `Changed ${formatDate(meta.updated_at)}` : "Never changed"}
                  </Text>
                </Stack>
              </Card>
            );
          })}
        </SimpleGrid>
        {editable ? (
          <Group align="end">
            <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} />
            <Button type="submit" loading={saving}>
              Save expiry policy
            </Button>
            {saved ? (
              <Text size="sm" role="status">
                Saved.
              </Text>
            ) : null}
          </Group>
        ) : null}
        <FormError error={error} fields={["totp_code", "live", "test"]} />
      </Stack>
    </form>
  );
}

function Noncompliant({ doc }: { doc: ExpiryPolicyDoc }) {
  return (
    <Card withBorder padding="md">
      <Title order={2} size="h4" mb="sm">
        Keys that do not comply ({doc.noncompliant_count})
      </Title>
      {doc.noncompliant_keys.length === 0 ? (
        <Text size="sm">Every active key complies with the policy.</Text>
      ) : (
        <Table.ScrollContainer minWidth={480}>
          <Table data-testid="noncompliant-keys">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Env</Table.Th>
                <Table.Th>Prefix</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Why</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {doc.noncompliant_keys.map((k) => (
                <Table.Tr key={k.id}>
                  <Table.Td>{k.name}</Table.Td>
                  <Table.Td>
                    <EnvBadge env={k.environment} />
                  </Table.Td>
                  <Table.Td className="mono">{k.prefix}…</Table.Td>
                  <Table.Td>{k.expires_at ? formatDate(k.expires_at) : "never"}</Table.Td>
                  <Table.Td>{k.issues.map((i) => ISSUES[i] ?? i).join(", ")}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Card>
  );
}
