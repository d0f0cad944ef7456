import { Badge, Button, Card, Group, Menu, Stack, Table, Text } from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { type ReactNode, useEffect, useState } from "react";
import type { CredentialView, KeyView } from "../api/types.ts";
import {
  ACTIVE_COLOR,
  countdown,
  formatDate,
  formatDay,
  PRESET_LABELS,
  relativeTime,
} from "../lib/format.ts";
import { useNow } from "../lib/hooks.ts";
import { can } from "../lib/roles.ts";
import { useRouter } from "../lib/router.tsx";
import { useSession } from "../lib/session.tsx";
import { CreditsDialog, CreditsSummary } from "./CreditsEditor.tsx";
import { ExpiryDialog, RateLimitsDialog, RevokeDialog, RotateDialog } from "./KeyDialogs.tsx";
import { LeakBanner, ReplaceDialog } from "./LeakBanner.tsx";
import { formatLimits } from "./RateLimitEditor.tsx";

function Limits({ k }: { k: KeyView }) {
  if (k.rate_limits.length === 0) return null;
  return (
    <Text size="xs" c="dimmed" data-testid="key-rate-limits">
      Limit: {formatLimits(k.rate_limits)}
    </Text>
  );
}

export function EnvBadge({ env }: { env: KeyView["environment"] }) {
  return (
    // Darker than the palette's greens and oranges so the white label keeps a 4.5:1 contrast.
    <Badge color={env === "live" ? "#1f6b30" : "#a63c0a"} variant="filled">
      {env === "live" ? "Live" : "Test"}
    </Badge>
  );
}

export function StatusBadge({ status }: { status: string }) {
  const color = status === "active" ? ACTIVE_COLOR : status === "revoked" ? "red.9" : "gray.8";
  return (
    <Badge color={color} variant="outline">
      {status}
    </Badge>
  );
}

const SOON_MS = 7 * 86_400_000;
const ISSUE_TEXT: Record<string, string> = {
  no_expiry: "it never expires",
  lifetime_too_long: "it lives longer than the maximum lifetime",
};

/**
 * Marks for what the expiry policy says of a key: that it falls short of the policy as it is now (the
 * policy applies to new keys; older ones are reported, not changed), and that it expires within a week.
 */
export function PolicyMarks({ k, now }: { k: KeyView; now: number }) {
  const issues = k.policy_issues ?? [];
  const left = k.expires_at ? new Date(k.expires_at).getTime() - now : null;
  const soon =
    k.status === "active" && k.replaced_by === null && left !== null && left > 0 && left <= SOON_MS;
  if (issues.length === 0 && !soon) return null;
  return (
    <>
      {issues.length > 0 ? (
        <Badge
          color="#8a4b00"
          variant="light"
          data-testid="policy-mark"
          title={`Does not comply with the expiry policy: ${issues.map((i) => ISSUE_TEXT[i] ?? i).join("; ")}`}
        >
          Not compliant
        </Badge>
      ) : null}
      {soon ? (
        <Badge color="#8a4b00" variant="outline" data-testid="expiring-mark" title={formatDate(k.expires_at)}>
          Expires {relativeTime(k.expires_at, now)}
        </Badge>
      ) : null}
    </>
  );
}

/** "Payments: Read-only, Payouts: Custom" from the server's per-group summary. */
export function permissionSummary(summary: Record<string, string>, groupNames: Map<string, string>): string {
  const parts = Object.entries(summary).map(
    ([g, s]) => `${groupNames.get(g) ?? g}: ${PRESET_LABELS[s] ?? s}`,
  );
  return parts.length === 0 ? "none" : parts.join(", ");
}

const inGrace = (k: KeyView) => k.status === "active" && k.replaced_by !== null && k.expires_at !== null;

/** A rotated key's replacement as a person knows it: its name and prefix when it is in the list. */
function Successor({ id, keys }: { id: string; keys: KeyView[] }) {
  const next = keys.find((x) => x.id === id);
  return (
    <span className={next ? undefined : "mono"} title={id}>
      {next ? `${next.name} (${next.prefix}…)` : id}
    </span>
  );
}

function Expiry({
  k,
  now,
  keys,
  labelled,
  onReset,
  onExpire,
}: {
  k: KeyView;
  now: number;
  /** The keys shown beside it, to name a rotated key's replacement. */
  keys: KeyView[];
  /** Cards have no column header: say what the date is. */
  labelled?: boolean;
  onReset?: () => void;
  onExpire?: () => void;
}) {
  // A revoked key ended when it was revoked, whatever expiry it had: it never "does not expire".
  if (k.status === "revoked")
    return (
      <Text size="sm" data-testid="key-ended">
        Revoked {formatDate(k.revoked_at)}
      </Text>
    );
  // A key replaced by rotation is told apart from one that simply expires: it names its replacement.
  if (k.replaced_by !== null && !inGrace(k))
    return (
      <Text size="sm" data-testid="key-rotated">
        Rotated → <Successor id={k.replaced_by} keys={keys} />, overlap ended {formatDate(k.expires_at)}
      </Text>
    );
  if (!k.expires_at) return <Text size="sm">{labelled ? "Does not expire" : "never"}</Text>;
  if (!inGrace(k))
    return (
      <Text size="sm">
        {labelled ? (k.status === "active" ? "Expires " : "Ended ") : ""}
        {formatDate(k.expires_at)}
      </Text>
    );
  return (
    <Stack gap={4}>
      <Text size="sm" data-testid="key-rotated">
        Rotated → <Successor id={k.replaced_by as string} keys={keys} />
      </Text>
      <Text size="sm" fw={600} c="#a63c0a" data-testid="grace-countdown" title={formatDate(k.expires_at)}>
        Replaced · ends in {countdown(new Date(k.expires_at).getTime() - now)} ({formatDate(k.expires_at)})
      </Text>
      {onReset && onExpire ? (
        <Group gap={4}>
          <Button size="compact-xs" variant="default" onClick={onReset}>
            Reset to 24 h
          </Button>
          <Button size="compact-xs" variant="light" color="red" onClick={onExpire}>
            Expire now
          </Button>
        </Group>
      ) : null}
    </Stack>
  );
}

/**
 * The key a link points at (`#key-key_…`, from the audit log): scrolled into view once the list shows
 * it, and marked until another is pointed at.
 */
function usePointedKey(keys: KeyView[]): string | null {
  const [pointed, setPointed] = useState<string | null>(null);
  const shown = keys.map((k) => k.id).join(",");
  // biome-ignore lint/correctness/useExhaustiveDependencies: looked for again when the keys shown change
  useEffect(() => {
    const id = window.location.hash.match(/^#key-(key_[0-9A-Za-z]+)$/)?.[1];
    if (!id || !keys.some((k) => k.id === id)) return;
    setPointed(id);
    document.getElementById(`key-${id}`)?.scrollIntoView({ block: "center" });
  }, [shown]);
  return pointed;
}

const highlight = (on: boolean) =>
  on
    ? {
        "aria-current": true as const,
        "data-pointed": true,
        style: { outline: "3px solid #3b5bdb", outlineOffset: -3 },
      }
    : {};

/** The keys list with its actions: rotate, revoke, and the grace-period controls of a replaced key. */
export function KeysTable({
  keys,
  credentials,
  onChanged,
  emptyText = "No keys yet.",
}: {
  keys: KeyView[];
  credentials?: CredentialView[];
  onChanged: () => void;
  emptyText?: string;
}) {
  const { me, catalog } = useSession();
  const { navigate } = useRouter();
  const now = useNow(1000);
  const narrow = useMediaQuery("(max-width: 48em)");
  const [revoking, setRevoking] = useState<KeyView | null>(null);
  const [rotating, setRotating] = useState<KeyView | null>(null);
  const [limiting, setLimiting] = useState<KeyView | null>(null);
  const [replacing, setReplacing] = useState<KeyView | null>(null);
  const [crediting, setCrediting] = useState<KeyView | null>(null);
  const [expiry, setExpiry] = useState<{ key: KeyView; action: "reset" | "now" } | null>(null);
  const groupNames = new Map(catalog.groups.map((g) => [g.id, g.name]));
  const pointed = usePointedKey(keys);
  const credName = new Map((credentials ?? []).map((c) => [c.id, c.name]));

  const actions = (k: KeyView) => {
    const writable = can.writeKey(me.role, k.environment) && k.status === "active";
    return (
      <Menu position="bottom-end" withinPortal>
        <Menu.Target>
          <Button size="compact-sm" variant="default" aria-label={`Actions for ${k.name}`}>
            Actions
          </Button>
        </Menu.Target>
        <Menu.Dropdown>
          <Menu.Item onClick={() => navigate(`/usage/${k.id}`)}>View usage</Menu.Item>
          {writable && k.replaced_by === null ? (
            <Menu.Item onClick={() => setRotating(k)}>Rotate…</Menu.Item>
          ) : null}
          {writable ? <Menu.Item onClick={() => setLimiting(k)}>Rate limits…</Menu.Item> : null}
          {writable ? <Menu.Item onClick={() => setCrediting(k)}>Credits and metadata…</Menu.Item> : null}
          {writable ? (
            <Menu.Item color="red.9" onClick={() => setRevoking(k)}>
              Revoke…
            </Menu.Item>
          ) : null}
        </Menu.Dropdown>
      </Menu>
    );
  };
  /**
   * A leaked key's replacement, one click away: a rotation while it works (with no overlap by default),
   * else a new key with its settings. A rotated key already has its replacement: Expire now ends it.
   */
  const replace = (k: KeyView) => {
    if (!can.writeKey(me.role, k.environment) || k.credential_id === null) return undefined;
    if (k.status === "active") return k.replaced_by === null ? () => setRotating(k) : undefined;
    return () => setReplacing(k);
  };
  const banner = (k: KeyView) => (k.leak ? <LeakBanner k={k} onReplace={replace(k)} /> : null);
  const expiryControls = (k: KeyView) =>
    can.writeKey(me.role, k.environment)
      ? {
          onReset: () => setExpiry({ key: k, action: "reset" }),
          onExpire: () => setExpiry({ key: k, action: "now" }),
        }
      : {};

  const dialogs = (
    <>
      <RevokeDialog keyView={revoking} onClose={() => setRevoking(null)} onDone={onChanged} />
      <RotateDialog keyView={rotating} onClose={() => setRotating(null)} onDone={onChanged} />
      <ExpiryDialog target={expiry} onClose={() => setExpiry(null)} onDone={onChanged} />
      <RateLimitsDialog keyView={limiting} onClose={() => setLimiting(null)} onDone={onChanged} />
      <ReplaceDialog keyView={replacing} onClose={() => setReplacing(null)} onDone={onChanged} />
      <CreditsDialog keyView={crediting} onClose={() => setCrediting(null)} onDone={onChanged} />
    </>
  );

  // The dialogs stay at one place in the tree whatever the layout, so resizing the window (or a phone
  // turning) never drops a half-filled dialog.
  let list: ReactNode;
  if (keys.length === 0) {
    list = (
      <Text c="dimmed" py="md">
        {emptyText}
      </Text>
    );
  } else if (narrow) {
    list = (
      <Stack gap="sm" data-testid="keys-list">
        {keys.map((k) => (
          <Card
            key={k.id}
            withBorder
            padding="sm"
            data-testid="key-row"
            data-key-id={k.id}
            id={`key-${k.id}`}
            {...highlight(pointed === k.id)}
          >
            <Group justify="space-between" wrap="nowrap" align="start">
              <div style={{ minWidth: 0 }}>
                <Text fw={600}>{k.name}</Text>
                <Text size="sm" className="mono">
                  {k.prefix}…
                </Text>
              </div>
              {actions(k)}
            </Group>
            <Group gap={6} my={6}>
              <EnvBadge env={k.environment} />
              <StatusBadge status={k.status} />
              <PolicyMarks k={k} now={now} />
            </Group>
            {credentials && k.credential_id ? (
              <Text size="sm" data-testid="key-card-api-user">
                API user: {credName.get(k.credential_id) ?? "—"}
              </Text>
            ) : null}
            <Text size="sm" data-testid="key-card-ips">
              Allowed IPs:{" "}
              {k.allowed_ips.length > 0 ? (
                <span className="mono token">{k.allowed_ips.join(", ")}</span>
              ) : (
                "any address (the API user's list, if it has one, still applies)"
              )}
            </Text>
            <Text size="sm">{permissionSummary(k.permission_summary, groupNames)}</Text>
            <Limits k={k} />
            <CreditsSummary k={k} />
            <Text size="sm" c="dimmed">
              Created {formatDate(k.created_at)} · last used {relativeTime(k.last_used_at, now)}
            </Text>
            <Expiry k={k} now={now} keys={keys} labelled {...expiryControls(k)} />
            {banner(k)}
          </Card>
        ))}
      </Stack>
    );
  } else {
    list = (
      <Table.ScrollContainer minWidth={900}>
        <Table striped highlightOnHover data-testid="keys-list" verticalSpacing="xs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Env</Table.Th>
              <Table.Th>Prefix</Table.Th>
              <Table.Th>Permissions</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Last used</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {keys.map((k) => (
              <Table.Tr
                key={k.id}
                data-testid="key-row"
                data-key-id={k.id}
                id={`key-${k.id}`}
                {...highlight(pointed === k.id)}
              >
                <Table.Td>
                  <Text fw={600} size="sm">
                    {k.name}
                  </Text>
                  {credentials && k.credential_id ? (
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {credName.get(k.credential_id) ?? ""}
                    </Text>
                  ) : null}
                  {k.description ? (
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {k.description}
                    </Text>
                  ) : null}
                  {banner(k)}
                </Table.Td>
                <Table.Td>
                  <EnvBadge env={k.environment} />
                </Table.Td>
                <Table.Td style={{ whiteSpace: "nowrap" }}>
                  <Text size="xs" className="mono nowrap">
                    {k.prefix}…
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{permissionSummary(k.permission_summary, groupNames)}</Text>
                  <Limits k={k} />
                  <CreditsSummary k={k} />
                </Table.Td>
                <Table.Td style={{ whiteSpace: "nowrap" }}>
                  <Text size="sm" title={formatDate(k.created_at)}>
                    {formatDay(k.created_at)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text
                    size="sm"
                    title={
                      k.last_used_at
                        ? `${formatDate(k.last_used_at)} from ${k.last_used_ip ?? "?"}`
                        : undefined
                    }
                  >
                    {relativeTime(k.last_used_at, now)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Expiry k={k} now={now} keys={keys} {...expiryControls(k)} />
                </Table.Td>
                <Table.Td>
                  <Stack gap={4} align="start">
                    <StatusBadge status={k.status} />
                    <PolicyMarks k={k} now={now} />
                  </Stack>
                </Table.Td>
                <Table.Td>{actions(k)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    );
  }
  return (
    <>
      {list}
      {dialogs}
    </>
  );
}
