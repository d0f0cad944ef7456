import {
  Alert,
  Badge,
  Button,
  Card,
  Checkbox,
  Group,
  Loader,
  Menu,
  Modal,
  MultiSelect,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useEffect, useState } from "react";
import { EVENT_TYPES } from "../../../src/core/events.ts";
import { api } from "../api/client.ts";
import type { WebhookDeliveryView, WebhookView, WebhookWithSecret } from "../api/types.ts";
import { errorFor, FormError } from "../components/errors.tsx";
import { EnvBadge } from "../components/KeysTable.tsx";
import { ShowOnceModal } from "../components/ShowOnce.tsx";
import { TotpInput } from "../components/TotpInput.tsx";
import { formatDate, relativeTime } from "../lib/format.ts";
import { useLoad, useNow } from "../lib/hooks.ts";
import { can } from "../lib/roles.ts";
import { useSession } from "../lib/session.tsx";

const EVENT_OPTIONS = EVENT_TYPES.map((t) => ({ value: t, label: t }));

function eventsText(events: string[] | null): string {
  return events === null ? "All events" : events.join(", ");
}

function WebhookStatus({ status }: { status: WebhookView["status"] }) {
  return (
    <Badge color={status === "enabled" ? "#0b6b4f" : "red.9"} variant="outline">
      {status === "enabled" ? "Enabled" : "Disabled"}
    </Badge>
  );
}

const DELIVERY_COLORS: Record<WebhookDeliveryView["status"], string> = {
  pending: "#8a5300",
  delivered: "#0b6b4f",
  failed: "red.9",
};

/** The company's webhook endpoints in the environment the Live / Test switch selects. */
export function WebhooksPage() {
  const { me, env } = useSession();
  const hooks = useLoad(() => api.listWebhooks({ environment: env }), [env]);
  const [creating, setCreating] = useState(false);
  const [shown, setShown] = useState<{ title: string; secret: string } | null>(null);
  const [editing, setEditing] = useState<WebhookView | null>(null);
  const [rotating, setRotating] = useState<WebhookView | null>(null);
  const [deleting, setDeleting] = useState<WebhookView | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const manage = can.manageWebhooks(me.role);
  const list = hooks.data ?? [];
  const disabled = list.filter((w) => w.status === "disabled");

  const act = async (work: () => Promise<unknown>) => {
    setActionError(null);
    try {
      await work();
      await hooks.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Group gap="xs">
          <Title order={1} size="h2">
            Webhooks
          </Title>
          <EnvBadge env={env} />
        </Group>
        {manage ? <Button onClick={() => setCreating(true)}>Add endpoint</Button> : null}
      </Group>
      <Text size="sm" c="dimmed">
        Latchkey POSTs each {env} event to these endpoints, signed in the Standard Webhooks format.
      </Text>
      {disabled.map((w) => (
        <Alert
          key={w.id}
          color="red"
          variant="light"
          title="An endpoint was disabled"
          role="alert"
          data-testid="webhook-disabled-notice"
        >
          <Text size="sm" className="mono" style={{ wordBreak: "break-all" }}>
            {w.url}
          </Text>
          <Text size="sm">
            {w.disabled_reason ?? "Disabled."} {w.disabled_at ? `(${formatDate(w.disabled_at)})` : ""} Nothing
            is sent to it until it is enabled again; what waits is then sent in order.
          </Text>
          {manage ? (
            <Button
              mt="xs"
              size="compact-sm"
              color="red.9"
              onClick={() => void act(() => api.updateWebhook(w.id, { status: "enabled" }))}
            >
              Enable again
            </Button>
          ) : null}
        </Alert>
      ))}
      <FormError error={hooks.error ?? actionError} />
      {hooks.loading && !hooks.data ? (
        <Loader aria-label="Loading webhooks" />
      ) : list.length === 0 ? (
        <Text c="dimmed" py="md">
          No {env} webhook endpoints yet.
        </Text>
      ) : (
        <Stack gap="sm" data-testid="webhooks-list">
          {list.map((w) => (
            <Card key={w.id} withBorder padding="sm" data-testid="webhook-row" data-webhook-id={w.id}>
              <Group justify="space-between" wrap="nowrap" align="start">
                <div style={{ minWidth: 0 }}>
                  <Text fw={600} className="mono" style={{ wordBreak: "break-all" }}>
                    {w.url}
                  </Text>
                  {w.description ? <Text size="sm">{w.description}</Text> : null}
                  <Text size="sm" c="dimmed">
                    {eventsText(w.events)} · created {formatDate(w.created_at)}
                    {w.previous_secret_expires_at && new Date(w.previous_secret_expires_at) > new Date()
                      ? ` · old secret signs until ${formatDate(w.previous_secret_expires_at)}`
                      : ""}
                  </Text>
                </div>
                <Group gap="xs" wrap="nowrap">
                  <WebhookStatus status={w.status} />
                  {manage ? (
                    <Menu position="bottom-end" withinPortal>
                      <Menu.Target>
                        <Button size="compact-sm" variant="default" aria-label={`Actions for ${w.url}`}>
                          Actions
                        </Button>
                      </Menu.Target>
                      <Menu.Dropdown>
                        <Menu.Item onClick={() => setOpen(open === w.id ? null : w.id)}>
                          {open === w.id ? "Hide deliveries" : "Deliveries"}
                        </Menu.Item>
                        <Menu.Item onClick={() => setEditing(w)}>Edit events…</Menu.Item>
                        {w.status === "enabled" ? (
                          <Menu.Item onClick={() => void act(() => api.sendWebhookTest(w.id))}>
                            Send test event
                          </Menu.Item>
                        ) : null}
                        <Menu.Item onClick={() => setRotating(w)}>Rotate secret…</Menu.Item>
                        <Menu.Item
                          onClick={() =>
                            void act(() =>
                              api.updateWebhook(w.id, {
                                status: w.status === "enabled" ? "disabled" : "enabled",
                              }),
                            )
                          }
                        >
                          {w.status === "enabled" ? "Disable" : "Enable"}
                        </Menu.Item>
                        <Menu.Item color="red.9" onClick={() => setDeleting(w)}>
                          Delete…
                        </Menu.Item>
                      </Menu.Dropdown>
                    </Menu>
                  ) : null}
                </Group>
              </Group>
              {open === w.id ? <Deliveries webhook={w} /> : null}
            </Card>
          ))}
        </Stack>
      )}
      <CreateWebhookModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(w) => {
          setCreating(false);
          setShown({ title: "Webhook endpoint added", secret: w.secret });
          void hooks.reload();
        }}
      />
      <EditEventsModal
        webhook={editing}
        onClose={() => setEditing(null)}
        onDone={() => void hooks.reload()}
      />
      <RotateSecretModal
        webhook={rotating}
        onClose={() => setRotating(null)}
        onRotated={(w) => {
          setRotating(null);
          setShown({ title: "New signing secret", secret: w.secret });
          void hooks.reload();
        }}
      />
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete this endpoint?">
        <Stack>
          <Text size="sm">
            Nothing more is sent to <span className="mono">{deleting?.url}</span>, and its delivery log goes
            with it.
          </Text>
          <Group justify="end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button
              color="red.9"
              onClick={() => {
                const target = deleting;
                setDeleting(null);
                if (target) void act(() => api.deleteWebhook(target.id));
              }}
            >
              Delete endpoint
            </Button>
          </Group>
        </Stack>
      </Modal>
      <ShowOnceModal
        opened={shown !== null}
        title={shown?.title ?? ""}
        fields={shown ? [{ label: "Signing secret", value: shown.secret }] : []}
        kept="Latchkey keeps it encrypted, for signing only"
        note="Receivers verify each delivery with it (webhook-signature)."
        onClose={() => setShown(null)}
      />
    </Stack>
  );
}

/** An endpoint's deliveries, newest first, with what each attempt got and a retry button. */
function Deliveries({ webhook }: { webhook: WebhookView }) {
  const now = useNow(5000);
  const deliveries = useLoad(() => api.listWebhookDeliveries(webhook.id), [webhook.id]);
  const [error, setError] = useState<unknown>(null);
  const rows = deliveries.data?.deliveries ?? [];
  const waiting = rows.some((d) => d.status === "pending");
  // While something waits to go out, the list follows it on its own.
  useEffect(() => {
    if (!waiting) return;
    const t = setInterval(() => void deliveries.reload(), 3000);
    return () => clearInterval(t);
  }, [waiting, deliveries.reload]);
  const retry = async (d: WebhookDeliveryView) => {
    setError(null);
    try {
      await api.retryWebhookDelivery(webhook.id, d.id);
      await deliveries.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Stack gap="xs" mt="sm" data-testid="webhook-deliveries">
      <Group justify="space-between">
        <Text fw={600} size="sm">
          Deliveries
        </Text>
        <Button size="compact-xs" variant="subtle" onClick={() => void deliveries.reload()}>
          Refresh
        </Button>
      </Group>
      <FormError error={deliveries.error ?? error} />
      {rows.length === 0 ? (
        <Text size="sm" c="dimmed">
          Nothing sent yet.
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Event</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Attempts</Table.Th>
                <Table.Th>Last answer</Table.Th>
                <Table.Th>Next / done</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((d) => (
                <Table.Tr key={d.id} data-testid="delivery-row">
                  <Table.Td>
                    <Text size="sm">{d.event_type}</Text>
                    <Text size="xs" c="dimmed" className="mono">
                      {d.event_id}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge variant="outline" color={DELIVERY_COLORS[d.status]}>
                      {d.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{d.attempts}</Table.Td>
                  <Table.Td>
                    <Text size="sm">
                      {d.last_error ?? (d.last_status_code ? `HTTP ${d.last_status_code}` : "—")}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm">
                      {d.status === "delivered"
                        ? relativeTime(d.delivered_at, now)
                        : d.status === "pending"
                          ? d.next_attempt_at
                            ? `next ${formatDate(d.next_attempt_at)}`
                            : "—"
                          : "given up"}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {d.status !== "pending" ? (
                      <Button
                        size="compact-xs"
                        variant="light"
                        onClick={() => void retry(d)}
                        aria-label={`Retry ${d.event_type} ${d.event_id}`}
                      >
                        Retry
                      </Button>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

function EventsField({
  all,
  setAll,
  events,
  setEvents,
  error,
}: {
  all: boolean;
  setAll: (v: boolean) => void;
  events: string[];
  setEvents: (v: string[]) => void;
  error?: string | undefined;
}) {
  return (
    <Stack gap="xs">
      <Checkbox
        label="All events, including types added later"
        checked={all}
        onChange={(e) => setAll(e.currentTarget.checked)}
      />
      {all ? null : (
        <MultiSelect
          label="Events"
          placeholder="Pick at least one"
          data={EVENT_OPTIONS}
          value={events}
          onChange={setEvents}
          searchable
          error={error}
        />
      )}
    </Stack>
  );
}

function CreateWebhookModal({
  opened,
  onClose,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (w: WebhookWithSecret) => void;
}) {
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [all, setAll] = useState(true);
  const [events, setEvents] = useState<string[]>([]);
  const [totp, setTotp] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const created = await api.createWebhook(
        { url: url.trim(), ...(description ? { description } : {}), ...(all ? {} : { events }) },
        totp,
      );
      setUrl("");
      setDescription("");
      setTotp("");
      setAll(true);
      setEvents([]);
      onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={opened} onClose={onClose} title="Add a webhook endpoint" size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Stack>
          <TextInput
            label="URL"
            description="https (or http) address that receives the events"
            placeholder="https://hooks.example.com/latchkey"
            value={url}
            onChange={(e) => setUrl(e.currentTarget.value)}
            required
            error={errorFor(error, "url")}
            data-autofocus
          />
          <TextInput
            label="Description"
            value={description}
            onChange={(e) => setDescription(e.currentTarget.value)}
            error={errorFor(error, "description")}
          />
          <EventsField
            all={all}
            setAll={setAll}
            events={events}
            setEvents={setEvents}
            error={errorFor(error, "events")}
          />
          <TotpInput value={totp} onChange={setTotp} error={errorFor(error, "totp_code")} />
          <FormError error={error} fields={["url", "description", "events", "totp_code"]} />
          <Group justify="end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} disabled={!all && events.length === 0}>
              Add endpoint
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function EditEventsModal({
  webhook,
  onClose,
  onDone,
}: {
  webhook: WebhookView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  return (
    <Modal opened={webhook !== null} onClose={onClose} title="Events this endpoint hears" size="lg">
      {webhook ? (
        <EditEventsForm key={webhook.id} webhook={webhook} onClose={onClose} onDone={onDone} />
      ) : null}
    </Modal>
  );
}

function EditEventsForm({
  webhook,
  onClose,
  onDone,
}: {
  webhook: WebhookView;
  onClose: () => void;
  onDone: () => void;
}) {
  const [all, setAll] = useState(webhook.events === null);
  const [events, setEvents] = useState<string[]>(webhook.events ?? []);
  const [error, setError] = useState<unknown>(null);
  const save = async () => {
    setError(null);
    try {
      await api.updateWebhook(webhook.id, { events: all ? null : events });
      onDone();
      onClose();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Stack>
      <EventsField
        all={all}
        setAll={setAll}
        events={events}
        setEvents={setEvents}
        error={errorFor(error, "events")}
      />
      <FormError error={error} fields={["events"]} />
      <Group justify="end">
        <Button variant="default" onClick={onClose}>
          Cancel
        </Button>
        <Button onClick={() => void save()} disabled={!all && events.length === 0}>
          Save events
        </Button>
      </Group>
    </Stack>
  );
}

function RotateSecretModal({
  webhook,
  onClose,
  onRotated,
}: {
  webhook: WebhookView | null;
  onClose: () => void;
  onRotated: (w: WebhookWithSecret) => void;
}) {
  const [totp, setTotp] = useState("");
  const [error, setError] = useState<unknown>(null);
  const rotate = async () => {
    if (!webhook) return;
    setError(null);
    try {
      const rotated = await api.rotateWebhookSecret(webhook.id, totp);
      setTotp("");
      onRotated(rotated);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Modal opened={webhook !== null} onClose={onClose} title="Rotate the signing secret">
      <Stack>
        <Text size="sm">
          A new secret is shown once. The current one keeps signing beside it for 24 hours, so your receivers
          can switch without missing a delivery.
        </Text>
        <TotpInput value={totp} onChange={setTotp} error={errorFor(error, "totp_code")} autoFocus />
        <FormError error={error} fields={["totp_code"]} />
        <Group justify="end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button onClick={() => void rotate()}>Rotate secret</Button>
        </Group>
      </Stack>
    </Modal>
  );
}
