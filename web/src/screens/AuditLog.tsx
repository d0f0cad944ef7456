import {
  Autocomplete,
  Badge,
  Button,
  Card,
  Code,
  Drawer,
  Group,
  Loader,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { useState } from "react";
import { api } from "../api/client.ts";
import type { AuditEvent } from "../api/types.ts";
import { AuditTarget } from "../components/AuditTarget.tsx";
import { AuditTools } from "../components/AuditTools.tsx";
import { DateTimeField, dateTimeIso, dateTimeProblem } from "../components/DateTimeField.tsx";
import { FormError } from "../components/errors.tsx";
import { EnvBadge } from "../components/KeysTable.tsx";
import { formatDate } from "../lib/format.ts";
import { useLoad } from "../lib/hooks.ts";
import { useSession } from "../lib/session.tsx";

const ACTIONS = [
  "key.*",
  "key.created",
  "key.rotated",
  "key.expired_now",
  "key.expiry_reset",
  "key.revoked",
  "key.updated",
  "allowed_ips.changed",
  "credential.*",
  "credential.created",
  "credential.password_generated",
  "user.*",
  "user.login",
  "user.login_failed",
  "user.created",
  "user.role_changed",
  "user.disabled",
  "user.totp_enrolled",
];

interface Filters {
  actor: string;
  action: string;
  since: string;
  until: string;
}

const EMPTY: Filters = { actor: "", action: "", since: "", until: "" };

function Changes({ changes }: { changes: unknown }) {
  const c = (changes ?? {}) as { before?: unknown; after?: unknown };
  const show = (v: unknown) => (v === undefined ? "—" : JSON.stringify(v, null, 2));
  if (c.before === undefined && c.after === undefined) {
    return (
      <Code block className="wrapped-code">
        {JSON.stringify(changes, null, 2) ?? "—"}
      </Code>
    );
  }
  return (
    <SimpleGrid cols={{ base: 1, lg: 2 }}>
      <div style={{ minWidth: 0 }}>
        <Text fw={600} size="sm" mb={4}>
          Before
        </Text>
        <Code block className="wrapped-code" data-testid="audit-before">
          {show(c.before)}
        </Code>
      </div>
      <div style={{ minWidth: 0 }}>
        <Text fw={600} size="sm" mb={4}>
          After
        </Text>
        <Code block className="wrapped-code" data-testid="audit-after">
          {show(c.after)}
        </Code>
      </div>
    </SimpleGrid>
  );
}

/** The audit trail with filters, newest first; an event opens in a drawer with its before/after. */
export function AuditLog() {
  const { env } = useSession();
  const narrow = useMediaQuery("(max-width: 48em)");
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [more, setMore] = useState<AuditEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [selected, setSelected] = useState<AuditEvent | null>(null);
  const query = {
    ...(filters.actor.trim() ? { actor: filters.actor.trim() } : {}),
    ...(filters.action.trim() ? { action: filters.action.trim() } : {}),
    ...(dateTimeIso(filters.since) ? { since: dateTimeIso(filters.since) } : {}),
    ...(dateTimeIso(filters.until) ? { until: dateTimeIso(filters.until) } : {}),
  };
  const page = useLoad(async () => {
    const r = await api.listAudit(query);
    setMore([]);
    setCursor(r.next_cursor);
    return r.events;
  }, [filters]);
  const events = [...(page.data ?? []), ...more];

  return (
    <Stack>
      <Group justify="space-between" align="start">
        <Group gap="xs">
          <Title order={1} size="h2">
            Audit log
          </Title>
          {env === "test" ? <EnvBadge env="test" /> : null}
        </Group>
        <AuditTools filters={query} env={env} />
      </Group>
      {env === "test" ? (
        <Text size="sm" c="dimmed" data-testid="audit-environment">
          Switched to Test, the log shows events about test API users and keys only. Sign-ins, people and
          everything live are in Live.
        </Text>
      ) : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        <Group align="end" gap="sm">
          <TextInput
            label="Actor"
            placeholder="Email, key prefix or id"
            value={draft.actor}
            onChange={(e) => setDraft({ ...draft, actor: e.currentTarget.value })}
            w={{ base: "100%", sm: 220 }}
          />
          <Autocomplete
            label="Action"
            placeholder="e.g. key.*"
            data={ACTIONS}
            value={draft.action}
            onChange={(v) => setDraft({ ...draft, action: v })}
            w={{ base: "100%", sm: 200 }}
          />
          <DateTimeField
            label="From"
            value={draft.since}
            onChange={(v) => setDraft({ ...draft, since: v })}
            w={{ base: "100%", sm: 210 }}
          />
          <DateTimeField
            label="To"
            value={draft.until}
            onChange={(v) => setDraft({ ...draft, until: v })}
            w={{ base: "100%", sm: 210 }}
          />
          <Button
            type="submit"
            disabled={dateTimeProblem(draft.since) !== null || dateTimeProblem(draft.until) !== null}
          >
            Apply filters
          </Button>
          <Button
            variant="default"
            onClick={() => {
              setDraft(EMPTY);
              setFilters(EMPTY);
            }}
          >
            Clear
          </Button>
        </Group>
      </form>
      <FormError error={page.error} />
      {page.loading && !page.data ? <Loader aria-label="Loading audit events" /> : null}
      {page.data && events.length === 0 ? <Text c="dimmed">No events match.</Text> : null}
      {events.length > 0 && narrow ? (
        // On a phone each event is a block led by its action, so nothing important scrolls out of view.
        <Stack gap="xs" data-testid="audit-list">
          {events.map((ev) => (
            <Card key={ev.id} withBorder padding="sm" data-testid="audit-row" data-action={ev.action}>
              <Group justify="space-between" wrap="nowrap" align="start">
                <div style={{ minWidth: 0 }}>
                  <Text size="sm" fw={600} className="mono">
                    {ev.action}
                  </Text>
                  <Text size="sm">{ev.actor.label ?? ev.actor.id ?? ev.actor.type}</Text>
                  {ev.target ? <AuditTarget target={ev.target} /> : null}
                  <Text size="xs" c="dimmed">
                    {formatDate(ev.at)}
                    {ev.totp_used ? " · with 2FA" : ""}
                  </Text>
                </div>
                <Button
                  size="compact-sm"
                  variant="default"
                  onClick={() => setSelected(ev)}
                  aria-label={`Details of ${ev.action} at ${formatDate(ev.at)}`}
                >
                  Details
                </Button>
              </Group>
            </Card>
          ))}
        </Stack>
      ) : null}
      {events.length > 0 && !narrow ? (
        <Table.ScrollContainer minWidth={760}>
          <Table highlightOnHover data-testid="audit-list" verticalSpacing="xs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Actor</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Target</Table.Th>
                <Table.Th>2FA</Table.Th>
                <Table.Th>
                  <span className="visually-hidden">Details</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {events.map((ev) => (
                <Table.Tr key={ev.id} data-testid="audit-row" data-action={ev.action}>
                  <Table.Td>
                    <Text size="sm">{formatDate(ev.at)}</Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">{ev.actor.label ?? ev.actor.id ?? ev.actor.type}</Text>
                    <Text size="xs" c="dimmed">
                      {ev.actor.type}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" className="mono">
                      {ev.action}
                    </Text>
                  </Table.Td>
                  <Table.Td maw={280}>
                    <AuditTarget target={ev.target} />
                  </Table.Td>
                  <Table.Td>{ev.totp_used ? <Badge variant="light">2FA</Badge> : null}</Table.Td>
                  <Table.Td>
                    <Button size="compact-sm" variant="default" onClick={() => setSelected(ev)}>
                      Details
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : null}
      {cursor ? (
        <Button
          variant="default"
          onClick={() => {
            void api.listAudit({ ...query, cursor }).then((r) => {
              setMore((m) => [...m, ...r.events]);
              setCursor(r.next_cursor);
            });
          }}
        >
          Load older events
        </Button>
      ) : null}
      <Drawer
        opened={selected !== null}
        onClose={() => setSelected(null)}
        position={narrow ? "bottom" : "right"}
        // Wide enough for before and after side by side at 1280 px; the JSON wraps rather than scrolls.
        size={narrow ? "90%" : "xl"}
        title={selected ? selected.action : ""}
      >
        {selected ? (
          <Stack data-testid="audit-drawer" style={{ minWidth: 0 }}>
            <Table variant="vertical" withTableBorder layout="fixed" className="wrap-token">
              <Table.Tbody>
                <Table.Tr>
                  <Table.Th w={120}>When</Table.Th>
                  <Table.Td>{formatDate(selected.at)}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th>Actor</Table.Th>
                  <Table.Td>
                    {selected.actor.label ?? "—"} ({selected.actor.type}
                    {selected.actor.id ? `, ${selected.actor.id}` : ""})
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th>Target</Table.Th>
                  <Table.Td>
                    <AuditTarget target={selected.target} onOpen={() => setSelected(null)} />
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th>From</Table.Th>
                  <Table.Td>
                    {selected.ip ?? "—"}
                    <Text size="xs" c="dimmed">
                      {selected.user_agent ?? ""}
                    </Text>
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th>2FA used</Table.Th>
                  <Table.Td>{selected.totp_used ? "yes" : "no"}</Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Th>Event</Table.Th>
                  <Table.Td className="mono">
                    #{selected.seq} {selected.id}
                  </Table.Td>
                </Table.Tr>
              </Table.Tbody>
            </Table>
            <Changes changes={selected.changes} />
          </Stack>
        ) : null}
      </Drawer>
    </Stack>
  );
}
