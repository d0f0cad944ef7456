import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

/** jsonb columns: read as parsed values, written as JSON text so both drivers send the same thing. */
type Json<T> = ColumnType<T, string, string>;
type Timestamp = ColumnType<Date, Date, Date>;

export interface CompaniesTable {
  id: string;
  name: string;
  slug: string;
  status: Generated<"active" | "inactive">;
  created_at: Timestamp;
}

export interface UsersTable {
  id: string;
  company_id: string;
  email: string;
  password_hash: string;
  role: "owner" | "moderator" | "developer" | "viewer";
  status: Generated<"active" | "disabled">;
  must_change_password: Generated<boolean>;
  created_at: Timestamp;
}

export interface CredentialsTable {
  id: string;
  company_id: string;
  username: string;
  name: string;
  description: string;
  status: Generated<"active" | "inactive">;
  is_default: Generated<boolean>;
  permissions: Json<string[]>;
  allowed_ips: Json<string[]>;
  password_hash: ColumnType<string | null, string | null | undefined, string | null>;
  password_created_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  /** Null only for platform verify keys, which belong to no company. */
  company_id: string | null;
  credential_id: string | null;
  name: string;
  description: string;
  environment: "live" | "test";
  permissions: Json<string[]>;
  allowed_ips: Json<string[]>;
  key_hash: string;
  secret_hash: string | null;
  prefix: string;
  status: Generated<"active" | "revoked">;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
  created_at: Timestamp;
  created_by: string;
  last_used_at: Date | null;
  last_used_ip: string | null;
}

export interface Database {
  companies: CompaniesTable;
  users: UsersTable;
  credentials: CredentialsTable;
  api_keys: ApiKeysTable;
}

export type CompanyRow = Selectable<CompaniesTable>;
export type UserRow = Selectable<UsersTable>;
export type CredentialRow = Selectable<CredentialsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
