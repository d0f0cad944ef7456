import { type Catalog, describeSelection } from "../core/catalog.ts";
import type { CredentialView, KeyView } from "../core/views.ts";
import type { ApiKeyRow, CredentialRow } from "../store/schema.ts";

export type { CredentialView, KeyView };

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function keyStatus(row: Pick<ApiKeyRow, "status" | "expires_at">, now: Date): KeyView["status"] {
  if (row.status === "revoked") return "revoked";
  if (row.expires_at && row.expires_at.getTime() <= now.getTime()) return "expired";
  return "active";
}

export function keyView(row: ApiKeyRow, catalog: Catalog, now: Date): KeyView {
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
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    replaced_by: row.replaced_by,
    last_used_at: iso(row.last_used_at),
    last_used_ip: row.last_used_ip,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
  };
}

export function credentialView(row: CredentialRow, catalog: Catalog): CredentialView {
  return {
    id: row.id,
    username: row.username,
    name: row.name,
    environment: row.environment,
    description: row.description,
    status: row.status,
    is_default: row.is_default,
    permissions: row.permissions,
    permission_summary: describeSelection(catalog, row.permissions),
    allowed_ips: row.allowed_ips,
    rate_limits: row.rate_limits,
    has_password: row.password_hash !== null,
    password_created_at: iso(row.password_created_at),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    updated_at: row.updated_at.toISOString(),
  };
}
