import { Badge, Checkbox, Group, Stack, Text, TextInput } from "@mantine/core";
import { type Ref, useMemo, useState } from "react";
import type { CatalogDoc } from "../api/types.ts";
import { ACTIVE_COLOR } from "../lib/format.ts";

export type CatalogRole = CatalogDoc["roles"][number];

/** Why an API user with neither a role nor a permission is not saved: it could do nothing. */
export const NO_GRANT_CHOSEN =
  "Enable at least one role, or choose at least one permission below: an API user needs one of the two.";

/**
 * The catalog's roles as checkboxes with a search box (the Adyen doc's "use the search bar to find
 * specific roles"). The search matches a role's name, id, description and the permissions it holds, so
 * "payout" finds the roles that can send payouts. A role the catalog no longer defines is listed apart:
 * it grants nothing, and unticking it removes it.
 */
export function RolesField({
  ref,
  roles,
  value,
  onChange,
  unknown = [],
  readOnly,
  error,
}: {
  ref?: Ref<HTMLFieldSetElement>;
  roles: CatalogRole[];
  value: string[];
  onChange: (v: string[]) => void;
  unknown?: readonly string[];
  readOnly?: boolean;
  error?: string | undefined;
}) {
  const [query, setQuery] = useState("");
  const selected = useMemo(() => new Set(value), [value]);
  const visible = useMemo(() => {
    const q = query.trim().toLowerCase();
    if (!q) return roles;
    return roles.filter((r) =>
      [r.name, r.id, r.description ?? "", ...r.permissions].some((s) => s.toLowerCase().includes(q)),
    );
  }, [roles, query]);
  const toggle = (id: string, on: boolean) => onChange(on ? [...value, id] : value.filter((x) => x !== id));
  const enabled = value.filter((id) => !unknown.includes(id)).length;

  return (
    <fieldset ref={ref} tabIndex={-1} className="plain-fieldset" data-testid="roles-field">
      <Group gap="xs" mb={4}>
        <Text component="legend" size="sm" fw={500}>
          Roles
        </Text>
        <Badge variant="light" color={enabled > 0 ? ACTIVE_COLOR : "gray"} data-testid="roles-enabled-count">
          {enabled} enabled
        </Badge>
      </Group>
      <Text size="xs" c="dimmed" mb="xs">
        A role is a named set of permissions. The API user holds the permissions of its enabled roles and any
        single permissions chosen below.
      </Text>
      <Stack gap="xs">
        <TextInput
          label="Search roles"
          placeholder="e.g. checkout, payout, read-only"
          value={query}
          onChange={(e) => setQuery(e.currentTarget.value)}
          type="search"
        />
        {error ? (
          <Text c="red.8" size="sm" role="alert">
            {error}
          </Text>
        ) : null}
        {visible.length === 0 ? <Text c="dimmed">No role matches “{query}”.</Text> : null}
        {visible.map((role) => (
          <Checkbox
            key={role.id}
            data-role={role.id}
            checked={selected.has(role.id)}
            disabled={readOnly}
            onChange={(e) => toggle(role.id, e.currentTarget.checked)}
            label={
              <>
                {role.name}
                {role.built_in ? (
                  <Badge ml={6} size="xs" variant="outline" color="gray">
                    Latchkey
                  </Badge>
                ) : null}
              </>
            }
            description={`${role.description ? `${role.description} ` : ""}Grants ${role.permissions.join(", ")}.`}
          />
        ))}
        {unknown.length > 0 ? (
          <Stack gap={4} data-testid="unknown-roles">
            <Text size="sm" c="orange.9">
              Not in the catalog any more (they grant nothing until the operator restores them):
            </Text>
            {unknown.map((id) => (
              <Checkbox
                key={id}
                data-role={id}
                checked={selected.has(id)}
                disabled={readOnly || !selected.has(id)}
                onChange={(e) => toggle(id, e.currentTarget.checked)}
                label={`${id} (unknown role)`}
              />
            ))}
          </Stack>
        ) : null}
      </Stack>
    </fieldset>
  );
}
