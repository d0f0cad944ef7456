import { Alert, Button, Card, Group, Loader, Radio, Stack, Text, Title } from "@mantine/core";
import { useEffect, useState } from "react";
import { api } from "../api/client.ts";
import type { LeakPolicyView } from "../api/types.ts";
import { errorFor, FormError } from "../components/errors.tsx";
import { EnvBadge } from "../components/KeysTable.tsx";
import { TotpInput } from "../components/TotpInput.tsx";
import { formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { useSession } from "../lib/session.tsx";

const CHOICES = [
  { value: "revoke", label: "Revoke it at once", hint: "Its integration stops until you replace the key." },
  {
    value: "notify",
    label: "Notify only",
    hint: "The key keeps working; its banner asks you to replace it.",
  },
] as const;

function PolicyCard({ policy, onSaved }: { policy: LeakPolicyView; onSaved: () => void }) {
  const { me } = useSession();
  const owner = me.role === "owner";
  const [action, setAction] = useState<string>(policy.action);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setAction(policy.action), [policy.action]);
  const changed = action !== policy.action;
  return (
    <Card withBorder padding="md" data-testid={`leak-policy-${policy.environment}`}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          api
            .setLeakPolicy(policy.environment, action as LeakPolicyView["action"], code)
            .then(onSaved, setError)
            .finally(() => {
              setBusy(false);
              setCode("");
            });
        }}
      >
        <Stack gap="sm">
          <Group gap="xs">
            <Text fw={600}>When a {policy.environment} key leaks</Text>
            <EnvBadge env={policy.environment} />
          </Group>
          <Radio.Group
            value={action}
            onChange={setAction}
            name={`leak-policy-${policy.environment}`}
            label="Action"
          >
            <Stack gap={6} mt={4}>
              {CHOICES.map((c) => (
                <Radio key={c.value} value={c.value} label={c.label} description={c.hint} disabled={!owner} />
              ))}
            </Stack>
          </Radio.Group>
          <Text size="xs" c="dimmed">
            {policy.is_default
              ? "The default for this environment."
              : `Set ${formatDate(policy.updated_at)}.`}
          </Text>
          {owner && changed ? (
            <>
              <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} />
              <FormError error={error} fields={["totp_code"]} />
              <Group justify="end">
                <Button type="submit" loading={busy}>
                  Save
                </Button>
              </Group>
            </>
          ) : null}
        </Stack>
      </form>
    </Card>
  );
}

/** Settings › Leaked keys: what happens to a key found in public, per environment. Owners change it. */
export function LeakPolicy() {
  const { me } = useSession();
  const policies = useLoad(() => api.leakPolicies(), []);
  return (
    <Stack maw={640}>
      <Title order={1} size="h2">
        Leaked keys
      </Title>
      <Text size="sm">
        When GitHub's secret scanning or anyone reports one of your keys found in public, Latchkey records
        where, tells your webhooks (<span className="mono">key.leaked</span>), shows a banner on the key and
        does what you choose here.
      </Text>
      {me.role !== "owner" ? (
        <Alert variant="light" color="blue">
          Only owners can change what happens to leaked keys.
        </Alert>
      ) : null}
      {policies.loading && !policies.data ? <Loader aria-label="Loading" /> : null}
      <FormError error={policies.error} />
      {(policies.data?.policies ?? []).map((p) => (
        <PolicyCard key={p.environment} policy={p} onSaved={() => void policies.reload()} />
      ))}
    </Stack>
  );
}
