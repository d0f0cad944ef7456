/**
 * The permission catalog: what the platform's API can do, as groups → entities → actions.
 * A permission is the string `entity:action`. Latchkey's own management permissions form a built-in group.
 */

import { compileRoutes, type RouteEntry, RouteError, type RouteMap } from "./routes.ts";

export interface CatalogAction {
  id: string;
  name: string;
  /** The platform's routes this permission allows, as `METHOD /path` patterns (for /v1/authorize). */
  routes?: string[];
}
export interface CatalogEntity {
  id: string;
  name: string;
  description?: string;
  actions: CatalogAction[];
}
export interface CatalogGroup {
  id: string;
  name: string;
  description?: string;
  entities: CatalogEntity[];
  built_in?: boolean;
}
/**
 * A named bundle of permissions (the Adyen doc's "roles" of an API credential), given to API users by
 * id. Latchkey's own management roles are built in; the platform's come from its catalog document.
 */
export interface CatalogRole {
  id: string;
  name: string;
  description?: string;
  permissions: string[];
  built_in?: boolean;
}
export interface Catalog {
  groups: CatalogGroup[];
  /** The roles API users may be given, the platform's first, then Latchkey's built-in ones. */
  roles: CatalogRole[];
  /** The same roles by id, for O(1) expansion on every credential read. */
  rolesById: ReadonlyMap<string, CatalogRole>;
  /** Every permission the catalog knows, for O(1) validation. */
  permissions: ReadonlySet<string>;
  /** The platform's routes and the permission each needs, compiled once. */
  routes: RouteMap;
  /** What /v1/authorize does with a route the catalog does not map: refuse it, or let any good key by. */
  unmappedRoutes: "deny" | "allow";
  /**
   * The routes of Latchkey's built-in permissions as the document declared them, kept so that
   * `GET /v1/catalog` can hand a gateway (the SDK) everything it needs to map routes as this server does.
   */
  managementRoutes: Record<string, string[]>;
}

export const PRESETS = ["read_only", "write", "full_access"] as const;
export type Preset = (typeof PRESETS)[number];
export type Selection = Preset | "custom";

export const MANAGEMENT_GROUP_ID = "latchkey";
export const MANAGEMENT_PERMISSIONS = [
  "keys:manage",
  "keys:verify",
  "credentials:manage",
  "audit:read",
  "webhooks:manage",
] as const;

const MANAGEMENT_GROUP: CatalogGroup = {
  id: MANAGEMENT_GROUP_ID,
  name: "Latchkey management",
  description: "Manage API credentials, keys, audit and webhooks through Latchkey's own API.",
  built_in: true,
  entities: [
    {
      id: "keys",
      name: "API keys",
      actions: [
        { id: "manage", name: "Create, rotate and revoke" },
        { id: "verify", name: "Verify" },
      ],
    },
    { id: "credentials", name: "API credentials", actions: [{ id: "manage", name: "Manage" }] },
    { id: "audit", name: "Audit trail", actions: [{ id: "read", name: "View" }] },
    { id: "webhooks", name: "Webhooks", actions: [{ id: "manage", name: "Manage" }] },
  ],
};

/**
 * Latchkey's own roles, for automation that manages keys or reads the trail. Ids are reserved: a
 * catalog document may not define roles of the same id.
 */
const MANAGEMENT_ROLES: CatalogRole[] = [
  {
    id: "key_manager",
    name: "Key manager",
    description: "Create, rotate, revoke and verify API keys through Latchkey's API.",
    permissions: ["keys:manage", "keys:verify"],
    built_in: true,
  },
  {
    id: "credential_manager",
    name: "Credential manager",
    description: "Manage API users and their keys through Latchkey's API.",
    permissions: ["credentials:manage", "keys:manage", "keys:verify"],
    built_in: true,
  },
  {
    id: "audit_reader",
    name: "Audit reader",
    description: "Read and verify the audit trail.",
    permissions: ["audit:read"],
    built_in: true,
  },
  {
    id: "webhook_manager",
    name: "Webhook manager",
    description: "Manage webhook endpoints and their deliveries.",
    permissions: ["webhooks:manage"],
    built_in: true,
  },
];

const ACTION_LABELS: Record<string, string> = {
  read: "View",
  write: "Edit",
  create: "Create",
  update: "Update",
  delete: "Delete",
  manage: "Manage",
  send: "Send",
};

const GROUP_ID = /^[a-z][a-z0-9_]{0,47}$/;
const ACTION_ID = /^[a-z][a-z0-9_]{0,31}$/;
const PERMISSION = /^[a-z][a-z0-9_]{0,47}:[a-z][a-z0-9_]{0,31}$/;

export class CatalogError extends Error {
  override name = "CatalogError";
}

function label(id: string): string {
  return ACTION_LABELS[id] ?? id.charAt(0).toUpperCase() + id.slice(1).replaceAll("_", " ");
}

function text(value: unknown, where: string, optional = false): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== "string" || value.length === 0 || value.length > 200) {
    throw new CatalogError(`${where} must be a non-empty string of at most 200 characters`);
  }
  return value;
}

/**
 * Validates a catalog document and adds the built-in management group.
 * Throws CatalogError naming the first thing wrong, so a bad LATCHKEY_CATALOG stops start-up clearly.
 */
export function loadCatalog(doc: unknown): Catalog {
  if (typeof doc !== "object" || doc === null || !Array.isArray((doc as { groups?: unknown }).groups)) {
    throw new CatalogError('the catalog must be an object with a "groups" array');
  }
  const raw = doc as {
    groups: unknown[];
    roles?: unknown;
    management_routes?: unknown;
    unmapped_routes?: unknown;
  };
  const routes: RouteEntry[] = [];
  const seenGroups = new Set<string>([MANAGEMENT_GROUP_ID]);
  const seenEntities = new Set<string>(MANAGEMENT_GROUP.entities.map((e) => e.id));
  const groups: CatalogGroup[] = [];
  for (const [gi, g] of raw.groups.entries()) {
    const where = `groups[${gi}]`;
    if (typeof g !== "object" || g === null) throw new CatalogError(`${where} must be an object`);
    const raw = g as Record<string, unknown>;
    const id = text(raw.id, `${where}.id`) as string;
    if (!GROUP_ID.test(id)) throw new CatalogError(`${where}.id "${id}" must match ${GROUP_ID}`);
    if (seenGroups.has(id)) throw new CatalogError(`${where}.id "${id}" is used twice or is reserved`);
    seenGroups.add(id);
    if (!Array.isArray(raw.entities) || raw.entities.length === 0) {
      throw new CatalogError(`${where}.entities must be a non-empty array`);
    }
    const entities: CatalogEntity[] = raw.entities.map((e: unknown, ei: number) => {
      const ew = `${where}.entities[${ei}]`;
      if (typeof e !== "object" || e === null) throw new CatalogError(`${ew} must be an object`);
      const re = e as Record<string, unknown>;
      const eid = text(re.id, `${ew}.id`) as string;
      if (!GROUP_ID.test(eid)) throw new CatalogError(`${ew}.id "${eid}" must match ${GROUP_ID}`);
      if (seenEntities.has(eid)) throw new CatalogError(`${ew}.id "${eid}" is used twice or is reserved`);
      seenEntities.add(eid);
      if (!Array.isArray(re.actions) || re.actions.length === 0) {
        throw new CatalogError(`${ew}.actions must be a non-empty array`);
      }
      const seenActions = new Set<string>();
      const actions = re.actions.map((a: unknown, ai: number) => {
        const aw = `${ew}.actions[${ai}]`;
        const obj = typeof a === "object" && a !== null ? (a as Record<string, unknown>) : { id: a };
        const aid = text(obj.id, `${aw}.id`) as string;
        if (!ACTION_ID.test(aid)) throw new CatalogError(`${aw} "${aid}" must match ${ACTION_ID}`);
        if (seenActions.has(aid)) throw new CatalogError(`${aw} "${aid}" is listed twice`);
        seenActions.add(aid);
        const action: CatalogAction = { id: aid, name: text(obj.name, `${aw}.name`, true) ?? label(aid) };
        if (obj.routes !== undefined) {
          if (!Array.isArray(obj.routes)) throw new CatalogError(`${aw}.routes must be an array`);
          action.routes = obj.routes as string[];
          for (const [ri, route] of obj.routes.entries())
            routes.push({
              route: route as string,
              permission: `${eid}:${aid}`,
              where: `${aw}.routes[${ri}]`,
            });
        }
        return action;
      });
      const entity: CatalogEntity = { id: eid, name: text(re.name, `${ew}.name`) as string, actions };
      const description = text(re.description, `${ew}.description`, true);
      if (description) entity.description = description;
      return entity;
    });
    const group: CatalogGroup = { id, name: text(raw.name, `${where}.name`) as string, entities };
    const description = text(raw.description, `${where}.description`, true);
    if (description) group.description = description;
    groups.push(group);
  }
  groups.push(MANAGEMENT_GROUP);
  const permissions = new Set<string>();
  for (const g of groups) for (const p of groupPermissions(g)) permissions.add(p);
  const roles = [...loadRoles(raw.roles, permissions), ...MANAGEMENT_ROLES];
  const management = managementRoutes(raw.management_routes);
  routes.push(...management);
  const managementByPermission: Record<string, string[]> = {};
  for (const entry of management) {
    const list = managementByPermission[entry.permission] ?? [];
    list.push(entry.route);
    managementByPermission[entry.permission] = list;
  }
  const unmapped = raw.unmapped_routes ?? "deny";
  if (unmapped !== "deny" && unmapped !== "allow") {
    throw new CatalogError(`unmapped_routes must be "deny" or "allow" (got ${JSON.stringify(unmapped)})`);
  }
  try {
    return {
      groups,
      roles,
      rolesById: new Map(roles.map((r) => [r.id, r])),
      permissions,
      routes: compileRoutes(routes),
      unmappedRoutes: unmapped,
      managementRoutes: managementByPermission,
    };
  } catch (err) {
    if (err instanceof RouteError) throw new CatalogError(err.message);
    throw err;
  }
}

const ROLE_ID = /^[a-z][a-z0-9_]{0,47}$/;

/** The document's `roles`: each names known permissions; ids are unique and not a built-in role's. */
function loadRoles(value: unknown, known: ReadonlySet<string>): CatalogRole[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new CatalogError('roles must be an array of {"id", "name", "permissions"}');
  const seen = new Set(MANAGEMENT_ROLES.map((r) => r.id));
  return value.map((r: unknown, ri: number) => {
    const where = `roles[${ri}]`;
    if (typeof r !== "object" || r === null || Array.isArray(r))
      throw new CatalogError(`${where} must be an object`);
    const raw = r as Record<string, unknown>;
    const id = text(raw.id, `${where}.id`) as string;
    if (!ROLE_ID.test(id)) throw new CatalogError(`${where}.id "${id}" must match ${ROLE_ID}`);
    const named = `${where} ("${id}")`;
    if (seen.has(id)) throw new CatalogError(`${named}: the id is used twice or is reserved`);
    seen.add(id);
    const name = text(raw.name, `${named}.name`) as string;
    if (!Array.isArray(raw.permissions) || raw.permissions.length === 0) {
      throw new CatalogError(`${named}.permissions must be a non-empty array`);
    }
    for (const p of raw.permissions) {
      if (typeof p !== "string" || !known.has(p)) {
        throw new CatalogError(
          `${named}.permissions: ${JSON.stringify(p)} is not a permission of the catalog`,
        );
      }
    }
    const role: CatalogRole = { id, name, permissions: [...new Set(raw.permissions as string[])] };
    const description = text(raw.description, `${named}.description`, true);
    if (description) role.description = description;
    return role;
  });
}

/**
 * The platform's routes for Latchkey's built-in permissions (its own `/v1/keys`, say, served by the
 * platform in front of Latchkey), which no group of the catalog declares: `{"keys:manage": [...]}`.
 */
function managementRoutes(value: unknown): RouteEntry[] {
  if (value === undefined) return [];
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CatalogError('management_routes must be an object such as {"keys:manage": ["ALL /v1/keys"]}');
  }
  const out: RouteEntry[] = [];
  for (const [permission, list] of Object.entries(value)) {
    const where = `management_routes["${permission}"]`;
    if (!(MANAGEMENT_PERMISSIONS as readonly string[]).includes(permission)) {
      throw new CatalogError(`${where}: "${permission}" is not one of ${MANAGEMENT_PERMISSIONS.join(", ")}`);
    }
    if (!Array.isArray(list)) throw new CatalogError(`${where} must be an array`);
    for (const [ri, route] of list.entries())
      out.push({ route: route as string, permission, where: `${where}[${ri}]` });
  }
  return out;
}

export function isPermissionString(value: string): boolean {
  return PERMISSION.test(value);
}

function groupPermissions(group: CatalogGroup): string[] {
  return group.entities.flatMap((e) => e.actions.map((a) => `${e.id}:${a.id}`));
}

/** Read-only: the group's `read` actions; Write: its other actions; Full access: all of them. */
export function presetPermissions(group: CatalogGroup, preset: Preset): string[] {
  const all = groupPermissions(group);
  if (preset === "full_access") return all;
  const isRead = (p: string) => p.endsWith(":read");
  return preset === "read_only" ? all.filter(isRead) : all.filter((p) => !isRead(p));
}

/**
 * The permissions a preset stands for. A single preset applies to every group of the platform's catalog
 * (never to the built-in management group, which must be asked for by name); a map applies per group.
 */
export function expandPreset(catalog: Catalog, preset: Preset | Record<string, Preset>): string[] {
  const perGroup: [CatalogGroup, Preset][] =
    typeof preset === "string"
      ? catalog.groups.filter((g) => !g.built_in).map((g) => [g, preset])
      : Object.entries(preset).map(([groupId, p]) => {
          const group = catalog.groups.find((g) => g.id === groupId);
          if (!group) throw new CatalogError(`unknown permission group "${groupId}"`);
          return [group, p];
        });
  return [...new Set(perGroup.flatMap(([g, p]) => presetPermissions(g, p)))];
}

/**
 * How a selection reads per group, as the dashboard shows it: a preset name when it matches one exactly,
 * `custom` otherwise. Groups with nothing selected are left out.
 */
export function describeSelection(
  catalog: Catalog,
  permissions: readonly string[],
): Record<string, Selection> {
  const selected = new Set(permissions);
  const out: Record<string, Selection> = {};
  for (const group of catalog.groups) {
    const chosen = groupPermissions(group).filter((p) => selected.has(p));
    if (chosen.length === 0) continue;
    const same = (preset: Preset) => {
      const want = presetPermissions(group, preset);
      return want.length === chosen.length && want.every((p) => selected.has(p));
    };
    out[group.id] = PRESETS.slice().reverse().find(same) ?? "custom";
  }
  return out;
}

export function unknownPermissions(catalog: Catalog, permissions: readonly string[]): string[] {
  return permissions.filter((p) => !catalog.permissions.has(p));
}

/** Permissions in `wanted` that `held` lacks. */
export function missingPermissions(held: readonly string[], wanted: readonly string[]): string[] {
  const have = new Set(held);
  return wanted.filter((p) => !have.has(p));
}
