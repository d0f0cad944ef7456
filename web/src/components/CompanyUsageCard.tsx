import { BarChart } from "@mantine/charts";
import { Card, Group, Loader, SegmentedControl, SimpleGrid, Text, Title } from "@mantine/core";
import { useState } from "react";
import { api } from "../api/client.ts";
import type { Environment } from "../api/types.ts";
import { formatDay } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { FormError } from "./errors.tsx";

/** The company's requests per day over all its keys of the environment shown, beside a key's own. */
export function CompanyUsageCard({ env }: { env: Environment }) {
  const [days, setDays] = useState("30");
  const usage = useLoad(() => api.companyUsage(Number(days)), [days, env]);
  const u = usage.data;
  return (
    <Card withBorder data-testid="company-usage">
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4">
          All {env} keys
        </Title>
        <SegmentedControl
          aria-label="Period for all keys"
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
      <FormError error={usage.error} />
      {u ? (
        <>
          <SimpleGrid cols={{ base: 1, sm: 3 }} mb="md">
            <div>
              <Text size="xs" c="dimmed">
                Allowed in {days} days
              </Text>
              <Text fw={600} data-testid="company-usage-total">
                {u.total_requests.toLocaleString()}
              </Text>
            </div>
            <div>
              <Text size="xs" c="dimmed">
                Denied
              </Text>
              <Text fw={600} data-testid="company-usage-denied">
                {u.total_denied.toLocaleString()}
              </Text>
            </div>
            <div>
              <Text size="xs" c="dimmed">
                Keys used
              </Text>
              <Text fw={600} data-testid="company-usage-keys">
                {u.keys_used}
              </Text>
            </div>
          </SimpleGrid>
          <figure style={{ margin: 0 }} aria-label={`Requests per day for all ${env} keys`}>
            <BarChart
              h={200}
              data={u.days.map((d) => ({ day: d.day.slice(5), requests: d.requests, denied: d.denied }))}
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
              {u.days
                .map((d) => `${formatDay(`${d.day}T00:00:00Z`)}: ${d.requests} allowed, ${d.denied} denied`)
                .join("; ")}
            </figcaption>
          </figure>
        </>
      ) : usage.loading ? (
        <Loader aria-label="Loading usage of all keys" />
      ) : null}
    </Card>
  );
}
