import {
  Badge,
  Button,
  Card,
  Checkbox,
  Group,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  Tooltip,
} from "@mantine/core";
import { type ReactNode, type Ref, useMemo, useState } from "react";
import { PRESETS, type Preset, presetPermissions } from "../../../src/core/catalog.ts";
import type { CatalogGroup } from "../api/types.ts";
import { PRESET_LABELS } from "../lib/format.ts";

export type GroupState = Preset | "custom" | "none";

/** Why a key or API user with no permission is not created: it could do nothing. */
export const NO_PERMISSION_CHOSEN =
  "Choose at least one permission: tick what it needs, or use a scope's Read-only, Write or Full access button.";

/** How a group's selection reads: the preset it matches exactly, "custom", or "none". */
export function groupState(group: CatalogGroup, selected: ReadonlySet<string>): GroupState {
  const all = group.entities.flatMap((e) => e.actions.map((a) => `${e.id}:${a.id}`));
  const chosen = all.filter((p) => selected.has(p));
  if (chosen.length === 0) return "none";
  const matches = (preset: Preset) => {
    const want = presetPermissions(group, preset);
    return want.length === chosen.length && want.every((p) => selected.has(p));
  };
  return [...PRESETS].reverse().find(matches) ?? "custom";
}

const STATE_COLORS: Record<GroupState, string> = {
  none: "gray",
  read_only: "blue",
  write: "grape",
  full_access: "green",
  custom: "orange",
};

/** Column names that hold for every row: an entity's own name for an action stays on its checkbox. */
const COLUMN_NAMES: Record<string, string> = {
  read: "View",
  create: "Create",
  update: "Edit",
  delete: "Delete",
  manage: "Manage",
  verify: "Verify",
};

/**
 * The group's action columns. A column is named for the action as a whole ("Create"), not for the first
 * entity's wording of it ("Create charges" would be wrong on the Payout row), and says in one line what
 * it grants on each row: "Pay-in: Create charges · Payout: Send payments".
 */
function actionColumns(group: CatalogGroup) {
  const cols: { id: string; name: string; grants: string }[] = [];
  for (const e of group.entities)
    for (const a of e.actions)
      if (!cols.some((c) => c.id === a.id))
        cols.push({ id: a.id, name: COLUMN_NAMES[a.id] ?? a.name, grants: "" });
  for (const c of cols) {
    const rows = group.entities.flatMap((e) => {
      const a = e.actions.find((x) => x.id === c.id);
      return a ? [{ entity: e.name, action: a.name }] : [];
    });
    c.grants = rows.every((r) => r.action === c.name)
      ? `${c.name}: ${rows.map((r) => r.entity).join(", ")}`
      : rows.map((r) => `${r.entity}: ${r.action}`).join(" · ");
  }
  return cols;
}

/**
 * The catalog as a matrix, one card per scope: rows are entities, columns the scope's actions, with
 * Read-only / Write / Full access presets per scope. `allowed` limits what may be ticked (a key never
 * gets more than its API user holds).
 */
export function PermissionMatrix({
  groups,
  value,
  onChange,
  allowed,
  readOnly,
  error,
}: {
  groups: CatalogGroup[];
  value: string[];
  onChange: (v: string[]) => void;
  allowed?: ReadonlySet<string>;
  readOnly?: boolean;
  error?: string | undefined;
}) {
  const [query, setQuery] = useState("");
  const selected = useMemo(() => new Set(value), [value]);
  const may = (p: string) => !allowed || allowed.has(p);
  const visible = useMemo(() => {
    const q = query.trim().toLowerCase();
    return groups
      .filter(
        (g) => !allowed || g.entities.some((e) => e.actions.some((a) => allowed.has(`${e.id}:${a.id}`))),
      )
      .map((g) => {
        if (!q || g.name.toLowerCase().includes(q)) return g;
        const entities = g.entities.filter((e) =>
          [e.id, e.name, e.description ?? "", ...e.actions.map((a) => `${e.id}:${a.id}`)].some((s) =>
            s.toLowerCase().includes(q),
          ),
        );
        return { ...g, entities };
      })
      .filter((g) => g.entities.length > 0);
  }, [groups, query, allowed]);

  const setGroup = (group: CatalogGroup, preset: Preset | "none") => {
    const full = groups.find((g) => g.id === group.id) ?? group;
    const mine = new Set(full.entities.flatMap((e) => e.actions.map((a) => `${e.id}:${a.id}`)));
    const rest = value.filter((p) => !mine.has(p));
    const add = preset === "none" ? [] : presetPermissions(full, preset).filter(may);
    onChange([...rest, ...add]);
  };
  const toggle = (p: string, on: boolean) => onChange(on ? [...value, p] : value.filter((x) => x !== p));

  return (
    <Stack gap="sm">
      <TextInput
        label="Search permissions"
        placeholder="e.g. payout, statement, KYC"
        value={query}
        onChange={(e) => setQuery(e.currentTarget.value)}
        type="search"
      />
      {error ? (
        <Text c="red.8" size="sm" role="alert">
          {error}
        </Text>
      ) : null}
      {visible.length === 0 ? <Text c="dimmed">No permission matches “{query}”.</Text> : null}
      {visible.map((group) => {
        const full = groups.find((g) => g.id === group.id) ?? group;
        const state = groupState(full, selected);
        const cols = actionColumns(group);
        return (
          <Card key={group.id} withBorder padding="sm" data-testid={`group-${group.id}`}>
            <Group justify="space-between" align="start" gap="xs" mb="xs">
              <div>
                <Title order={4} size="h5" id={`group-title-${group.id}`}>
                  {group.name}
                </Title>
                {group.description ? (
                  <Text size="xs" c="dimmed">
                    {group.description}
                  </Text>
                ) : null}
              </div>
              <Badge color={STATE_COLORS[state]} variant="light" data-testid={`group-state-${group.id}`}>
                {state === "none" ? "No access" : PRESET_LABELS[state]}
              </Badge>
            </Group>
            {readOnly ? null : (
              <Group gap={6} mb="xs" role="group" aria-label={`Presets for ${group.name}`}>
                {(["none", ...PRESETS] as const).map((p) => (
                  <Button
                    key={p}
                    size="compact-sm"
                    variant={state === p ? "filled" : "default"}
                    aria-pressed={state === p}
                    onClick={() => setGroup(group, p)}
                  >
                    {p === "none" ? "None" : PRESET_LABELS[p]}
                  </Button>
                ))}
              </Group>
            )}
            <Table.ScrollContainer minWidth={100 + cols.length * 56}>
              <Table className="matrix-table" aria-labelledby={`group-title-${group.id}`} verticalSpacing={4}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th scope="col">Entity</Table.Th>
                    {cols.map((c) => (
                      <Table.Th key={c.id} scope="col" data-testid="matrix-column" data-grants={c.grants}>
                        <Tooltip label={c.grants} multiline maw={320} withArrow>
                          <span>{c.name}</span>
                        </Tooltip>
                        <span className="visually-hidden">{c.grants}</span>
                      </Table.Th>
                    ))}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {group.entities.map((e) => (
                    <Table.Tr key={e.id}>
                      <Table.Th scope="row" fw={500}>
                        {e.name}
                      </Table.Th>
                      {cols.map((c) => {
                        const action = e.actions.find((a) => a.id === c.id);
                        if (!action)
                          return (
                            <Table.Td key={c.id} aria-label="not applicable">
                              —
                            </Table.Td>
                          );
                        const p = `${e.id}:${c.id}`;
                        return (
                          <Table.Td key={c.id}>
                            <Checkbox
                              aria-label={`${e.name}: ${action.name}`}
                              checked={selected.has(p)}
                              disabled={readOnly || (!may(p) && !selected.has(p))}
                              onChange={(ev) => toggle(p, ev.currentTarget.checked)}
                              styles={{ body: { justifyContent: "center" } }}
                              data-permission={p}
                            />
                          </Table.Td>
                        );
                      })}
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          </Card>
        );
      })}
    </Stack>
  );
}

/**
 * The matrix as one field of a form: a legend, a hint, and the matrix with any reason the form was
 * refused. The fieldset takes the focus when a submit is refused for it.
 */
export function PermissionsField({
  ref,
  hint,
  ...matrix
}: Parameters<typeof PermissionMatrix>[0] & { ref?: Ref<HTMLFieldSetElement>; hint?: ReactNode }) {
  return (
    <fieldset ref={ref} tabIndex={-1} className="plain-fieldset" data-testid="permissions-field">
      <Text component="legend" size="sm" fw={500} mb={hint ? 4 : "xs"}>
        Permissions
      </Text>
      {hint ? (
        <Text size="xs" c="dimmed" mb="xs">
          {hint}
        </Text>
      ) : null}
      <PermissionMatrix {...matrix} />
    </fieldset>
  );
}
