import { BarChart } from "@mantine/charts";
import {
  Alert,
  Button,
  Card,
  Group,
  Loader,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { useState } from "react";
import { ApiError, api } from "../api/client.ts";
import type { KeyView } from "../api/types.ts";
import { CompanyUsageCard } from "../components/CompanyUsageCard.tsx";
import { FormError } from "../components/errors.tsx";
import { RevokeDialog } from "../components/KeyDialogs.tsx";
import { EnvBadge, StatusBadge } from "../components/KeysTable.tsx";
import { formatDate, relativeTime } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { can, companyLevel } from "../lib/roles.ts";
import { useRouter } from "../lib/router.tsx";
import { useSession } from "../lib/session.tsx";

const DAY = 86_400_000;

/** Keys with no use in `days` days; a key never used counts from its creation. */
export function unusedKeys(keys: KeyView[], days: number, now = Date.now()): KeyView[] {
  const cutoff = now - days * DAY;
  return keys.filter(
    (k) => k.status === "active" && new Date(k.last_used_at ?? k.created_at).getTime() < cutoff,
  );
}

function KeyUsage({ keyView }: { keyView: KeyView }) {
  const [days, setDays] = useState("30");
  const usage = useLoad(() => api.keyUsage(keyView.id, Number(days)), [keyView.id, days]);
  const missing = usage.error instanceof ApiError && usage.error.code === "ROUTE_NOT_FOUND";
  const total = usage.data?.total_requests ?? (usage.data?.days ?? []).reduce((n, d) => n + d.requests, 0);
  const denied = (usage.data?.days ?? []).reduce((n, d) => n + (d.denied ?? 0), 0);
  const lastAt = usage.data?.last_used_at ?? keyView.last_used_at;
  const lastIp = usage.data?.last_used_ip ?? keyView.last_used_ip;
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm">
        <Group gap="xs">
          <Title order={2} size="h4">
            {keyView.name}
          </Title>
          <EnvBadge env={keyView.environment} />
          <StatusBadge status={keyView.status} />
        </Group>
        <SegmentedControl
          aria-label="Period"
          size="xs"
          value={days}
          onChange={setDays}
          data={[
            { value: "7", label: "7 days" },
            { value: "30", label: "30 days" },
            { value: "90", label: "90 days" },
          ]}
        />
      </Group>
      <SimpleGrid cols={{ base: 1, sm: 3 }} mb="md">
        <div>
          <Text size="xs" c="dimmed">
            Last used
          </Text>
          <Text fw={600} data-testid="usage-last-used" title={lastAt ? formatDate(lastAt) : undefined}>
            {relativeTime(lastAt)}
          </Text>
        </div>
        <div>
          <Text size="xs" c="dimmed">
            From
          </Text>
          <Text fw={600} className="mono" data-testid="usage-last-ip">
            {lastIp ?? "—"}
          </Text>
        </div>
        <div>
          <Text size="xs" c="dimmed">
            Requests in {days} days
          </Text>
          <Text fw={600}>
            {usage.data ? (
              <>
                <span data-testid="usage-total">{total.toLocaleString("en")}</span> allowed ·{" "}
                <span data-testid="usage-denied">{denied.toLocaleString("en")}</span> denied
              </>
            ) : (
              "—"
            )}
          </Text>
        </div>
      </SimpleGrid>
      {missing ? (
        <Alert variant="light" color="gray">
          Per-day request counts are not available on this server yet.
        </Alert>
      ) : usage.error ? (
        <FormError error={usage.error} />
      ) : usage.data ? (
        <figure style={{ margin: 0 }} aria-label={`Requests per day for ${keyView.name}`}>
          <BarChart
            h={240}
            data={usage.data.days.map((d) => ({
              day: d.day.slice(5),
              requests: d.requests,
              denied: d.denied ?? 0,
            }))}
            dataKey="day"
            type="stacked"
            withLegend
            series={[
              { name: "requests", label: "Allowed", color: "indigo.7" },
              { name: "denied", label: "Denied", color: "red.7" },
            ]}
            tickLine="y"
            gridAxis="y"
          />
          <figcaption className="visually-hidden">
            {usage.data.days
              .map((d) => `${d.day}: ${d.requests} allowed, ${d.denied ?? 0} denied`)
              .join("; ")}
          </figcaption>
        </figure>
      ) : (
        <Loader aria-label="Loading usage" />
      )}
    </Card>
  );
}

/** Per-key requests per day, and keys nobody has used for a month or more, ready to revoke. */
export function UsagePage({ keyId }: { keyId: string | null }) {
  const { me, env } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const { navigate } = useRouter();
  const keys = useLoad(() => api.listKeys({ environment: env }), [env]);
  const [period, setPeriod] = useState("30");
  const [revoking, setRevoking] = useState<KeyView | null>(null);
  const all = keys.data ?? [];
  const active = all.filter((k) => k.status === "active");
  const selected = all.find((k) => k.id === keyId) ?? active[0] ?? all[0] ?? null;
  const stale = unusedKeys(all, Number(period));

  return (
    <Stack>
      <Group gap="xs">
        <Title order={1} size="h2">
          Usage
        </Title>
        <EnvBadge env={env} />
      </Group>
      <FormError error={keys.error} />
      {/* The company's totals are the whole company's; a person limited to one account reads its keys. */}
      {companyLevel(me) ? <CompanyUsageCard env={env} /> : null}
      {keys.loading && !keys.data ? <Loader aria-label="Loading keys" /> : null}
      {keys.data && all.length === 0 ? <Text c="dimmed">No {env} keys yet.</Text> : null}
      {all.length > 0 ? (
        <Select
          label="Key"
          value={selected?.id ?? null}
          onChange={(v) => v && navigate(`/usage/${v}`)}
          allowDeselect={false}
          searchable
          data={all.map((k) => ({
            value: k.id,
            label: `${k.name} (${k.prefix}…)${k.status === "active" ? "" : ` — ${k.status}`}`,
          }))}
          maw={480}
        />
      ) : null}
      {selected ? <KeyUsage keyView={selected} /> : null}

      <Card withBorder>
        <Group justify="space-between" mb="sm">
          <Title order={2} size="h4">
            Unused keys
          </Title>
          <SegmentedControl
            aria-label="Unused for"
            data-testid="unused-period"
            size="xs"
            value={period}
            onChange={setPeriod}
            data={[
              { value: "30", label: "30 days" },
              { value: "60", label: "60 days" },
              { value: "90", label: "90 days" },
            ]}
          />
        </Group>
        <Text size="sm" c="dimmed" mb="sm">
          Active {env} keys with no request in the last {period} days. A key nobody uses is a risk with no
          benefit.
        </Text>
        {stale.length === 0 ? (
          <Text size="sm" data-testid="unused-empty">
            Every active {env} key was used in the last {period} days.
          </Text>
        ) : (
          <Table.ScrollContainer minWidth={narrow ? 0 : 560}>
            <Table
              data-testid="unused-list"
              verticalSpacing="xs"
              className={narrow ? "stacked-table" : undefined}
            >
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Prefix</Table.Th>
                  <Table.Th>Last used</Table.Th>
                  <Table.Th>Created</Table.Th>
                  <Table.Th>
                    <span className="visually-hidden">Actions</span>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {stale.map((k) => (
                  <Table.Tr key={k.id} data-testid="unused-row" data-key-id={k.id}>
                    <Table.Td data-label="Name" fw={600}>
                      {k.name}
                    </Table.Td>
                    <Table.Td data-label="Prefix" className="mono">
                      {k.prefix}…
                    </Table.Td>
                    <Table.Td data-label="Last used">{relativeTime(k.last_used_at)}</Table.Td>
                    <Table.Td data-label="Created">{formatDate(k.created_at)}</Table.Td>
                    <Table.Td>
                      {can.writeKey(me.role, k.environment) ? (
                        <Button
                          size="compact-sm"
                          color="red"
                          variant="light"
                          onClick={() => setRevoking(k)}
                          aria-label={`Revoke ${k.name}`}
                        >
                          Revoke
                        </Button>
                      ) : null}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Card>
      <RevokeDialog keyView={revoking} onClose={() => setRevoking(null)} onDone={() => void keys.reload()} />
    </Stack>
  );
}
