import { actingEnvironment, seesActor } from "../core/access/environments.ts";
import { credentialPermissions, unknownRoles } from "../core/access/grants.ts";
import { actingMerchantAccount } from "../core/access/merchant-accounts.ts";
import type { Actor } from "../core/actor.ts";
import { type Catalog, describeSelection } from "../core/catalog.ts";
import { type CreditState, currentBalance } from "../core/credits.ts";
import { usernameFormat } from "../core/names.ts";
import type { CredentialView, KeyView } from "../core/views.ts";
import { actorAccounts, actorEnvironments, type Db, keyLeaks } from "../store/repositories.ts";
import type { ApiKeyRow, CredentialRow, KeyCreditsRow } from "../store/schema.ts";

export type { CredentialView, KeyView };

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/**
 * Views as `viewer` may read them: an object made by a key or API user of a world the viewer cannot
 * see says `created_by: "live"`, not which one; within a merchant account, one made by anyone who is
 * not of that account (the company's keys and people, another account's) says `created_by: "company"`.
 */
export async function shownTo<T extends { created_by: string }>(
  db: Db,
  viewer: Actor,
  views: T[],
): Promise<T[]> {
  return withinAccount(db, viewer, await withinWorld(db, viewer, views));
}

async function withinAccount<T extends { created_by: string }>(
  db: Db,
  viewer: Actor,
  views: T[],
): Promise<T[]> {
  const acting = actingMerchantAccount(viewer);
  if (acting === null || viewer.kind === "platform" || viewer.kind === "system" || !viewer.companyId)
    return views;
  const accounts = await actorAccounts(
    db,
    viewer.companyId,
    views.map((v) => v.created_by),
  );
  return views.map((v) =>
    v.created_by === "live" || accounts.get(v.created_by) === acting ? v : { ...v, created_by: "company" },
  );
}

async function withinWorld<T extends { created_by: string }>(
  db: Db,
  viewer: Actor,
  views: T[],
): Promise<T[]> {
  if (actingEnvironment(viewer) === "live") return views;
  const environments = await actorEnvironments(
    db,
    views.map((v) => v.created_by),
  );
  return views.map((v) => {
    const type = v.created_by.startsWith("key_")
      ? "key"
      : v.created_by.startsWith("cred_")
        ? "credential"
        : "";
    return seesActor(viewer, type, environments.get(v.created_by)) ? v : { ...v, created_by: "live" };
  });
}

export function keyStatus(row: Pick<ApiKeyRow, "status" | "expires_at">, now: Date): KeyView["status"] {
  if (row.status === "revoked") return "revoked";
  if (row.expires_at && row.expires_at.getTime() <= now.getTime()) return "expired";
  return "active";
}

/** A family's credits as the rules read them (bigint columns come back as text). */
export function creditState(row: KeyCreditsRow): CreditState {
  return {
    remaining: Number(row.remaining),
    refill:
      row.refill_amount === null || row.refill_interval === null
        ? null
        : { amount: Number(row.refill_amount), interval: row.refill_interval },
    refilledAt: row.refilled_at,
  };
}

/** `credits`: the key family's, when it has any (the balance shown counts a refill that is due). */
export function keyView(
  row: ApiKeyRow,
  catalog: Catalog,
  now: Date,
  credits: KeyCreditsRow | null = null,
): KeyView {
  const state = credits === null ? null : creditState(credits);
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    environment: row.environment,
    prefix: row.prefix,
    permissions: row.permissions,
    permission_summary: describeSelection(catalog, row.permissions),
    allowed_ips: row.allowed_ips,
    rate_limits: row.rate_limits,
    status: keyStatus(row, now),
    has_secret: row.secret_hash !== null,
    credential_id: row.credential_id,
    merchant_account_id: row.merchant_account_id,
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    replaced_by: row.replaced_by,
    last_used_at: iso(row.last_used_at),
    last_used_ip: row.last_used_ip,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    leak: null,
    remaining: state === null ? null : currentBalance(state, now),
    refill: state?.refill ?? null,
    meta: row.meta,
    external_id: row.external_id,
  };
}

/** Views with their leak reports filled in (keyView leaves `leak` null: it reads one row only). */
export async function withLeaks(db: Db, views: KeyView[]): Promise<KeyView[]> {
  const found = new Map(
    (
      await keyLeaks.latestOf(
        db,
        views.map((v) => v.id),
      )
    ).map((r) => [r.key_id, r] as const),
  );
  if (found.size === 0) return views;
  return views.map((v) => {
    const r = found.get(v.id);
    if (!r) return v;
    return {
      ...v,
      leak: {
        reported_at: new Date(r.reported_at).toISOString(),
        first_reported_at: new Date(r.first_reported_at).toISOString(),
        reports: Number(r.reports),
        reporter: r.reporter,
        url: r.url,
        source: r.source,
        action: r.action,
      },
    };
  });
}

/**
 * `permissions` are the ones given singly (what an update sends back); `granted_permissions` all it
 * holds, its roles' included, which is what its keys are bounded by and what the summary describes.
 */
export function credentialView(row: CredentialRow, catalog: Catalog): CredentialView {
  const granted = credentialPermissions(catalog, row);
  return {
    id: row.id,
    username: row.username,
    name: row.name,
    environment: row.environment,
    merchant_account_id: row.merchant_account_id,
    description: row.description,
    status: row.status,
    is_default: row.is_default,
    username_format: usernameFormat(row.username),
    roles: row.roles,
    unknown_roles: unknownRoles(catalog, row.roles),
    permissions: row.permissions,
    granted_permissions: granted,
    permission_summary: describeSelection(catalog, granted),
    allowed_ips: row.allowed_ips,
    rate_limits: row.rate_limits,
    email: row.email,
    has_password: row.password_hash !== null,
    password_created_at: iso(row.password_created_at),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    updated_at: row.updated_at.toISOString(),
  };
}
