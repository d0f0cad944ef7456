import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import {
  actingEnvironment,
  assertMayChange,
  assertMayCreateIn,
  assertSees,
  listedEnvironment,
} from "../core/access/environments.ts";
import {
  assertHoldsAll,
  checkAllowlist,
  checkCredentialGrant,
  checkRateLimits,
  credentialPermissions,
  grantable,
} from "../core/access/grants.ts";
import {
  assertSeesAccount,
  creationAccount,
  listedMerchantAccount,
} from "../core/access/merchant-accounts.ts";
import { type Actor, actorRef } from "../core/actor.ts";
import type { Catalog } from "../core/catalog.ts";
import { LatchkeyError } from "../core/errors.ts";
import { hashToken } from "../core/hashing.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import { credentialUsername, type UsernameFormat } from "../core/names.ts";
import { randomBase62 } from "../core/random.ts";
import type { RateLimit } from "../core/rate-limit.ts";
import { apiKeys, companies, credentials, type Db } from "../store/repositories.ts";
import type { CredentialRow, Database } from "../store/schema.ts";
import type { AccessGuard } from "./access.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import { usableMerchantAccount } from "./merchant-accounts.ts";
import { normalizeEmail } from "./people/users.ts";
import { type CredentialView, credentialView, shownTo } from "./views.ts";

export interface CreateCredentialInput {
  name: string;
  /** Fixed for the credential's life; its keys are of the same environment. */
  environment?: Environment | undefined;
  /** Fixed for the credential's life too; null or absent: company-level (see merchant-accounts.ts). */
  merchant_account_id?: string | null | undefined;
  description?: string | undefined;
  /** Where its key notices also go; null or absent: none. */
  email?: string | null | undefined;
  /** Single permissions; with `roles`, at least one of the two must grant something. */
  permissions?: string[] | undefined;
  /** Catalog role ids to enable. */
  roles?: string[] | undefined;
  /** Which username shape it gets (web service unless given); fixed at creation. */
  username_format?: UsernameFormat | undefined;
  allowed_ips?: string[] | undefined;
  rate_limits?: RateLimit[] | undefined;
}

export interface UpdateCredentialInput {
  name?: string | undefined;
  description?: string | undefined;
  /** Null clears it. */
  email?: string | null | undefined;
  permissions?: string[] | undefined;
  roles?: string[] | undefined;
  allowed_ips?: string[] | undefined;
  rate_limits?: RateLimit[] | undefined;
  status?: "active" | "inactive" | undefined;
}

export interface CredentialServiceDeps {
  db: Kysely<Database>;
  catalog: Catalog;
  secret: string;
  clock: () => Date;
  audit: AuditService;
  /** The webhook outbox: events are emitted in the transaction of their change. */
  events: EventOutbox;
  changes: Changes;
  guard: AccessGuard;
}

/** Dedicated API users: never a human login, deactivated but never deleted. */
export class CredentialService {
  constructor(private readonly deps: CredentialServiceDeps) {}

  private view(row: CredentialRow): CredentialView {
    return credentialView(row, this.deps.catalog);
  }

  /** Inserts a credential with a fresh `ws_…` username; used by create and by company set-up. */
  async insert(
    db: Db,
    companyId: string,
    slug: string,
    input: CreateCredentialInput & { is_default?: boolean },
    ctx: Ctx,
  ): Promise<CredentialRow> {
    const now = this.deps.clock();
    const format = input.username_format ?? "web_service";
    let username = credentialUsername(slug, format);
    for (let i = 0; await credentials.usernameTaken(db, username); i++) {
      if (i > 20) throw new LatchkeyError("CONFLICT", "Could not allocate a unique username.");
      username = credentialUsername(slug, format);
    }
    const row: CredentialRow = {
      id: newId("cred", now),
      company_id: companyId,
      username,
      name: input.name,
      description: input.description ?? "",
      email: noticeEmail(input.email),
      status: "active",
      is_default: input.is_default ?? false,
      environment: input.environment ?? "live",
      merchant_account_id: input.merchant_account_id ?? null,
      permissions: input.permissions ?? [],
      roles: input.roles ?? [],
      allowed_ips: input.allowed_ips ?? [],
      rate_limits: input.rate_limits ?? [],
      password_hash: null,
      password_created_at: null,
      created_at: now,
      created_by: actorRef(ctx.actor),
      updated_at: now,
    };
    await credentials.insert(db, {
      ...row,
      permissions: JSON.stringify(row.permissions),
      roles: JSON.stringify(row.roles),
      allowed_ips: JSON.stringify(row.allowed_ips),
      rate_limits: JSON.stringify(row.rate_limits),
    });
    await this.deps.audit.append(db, ctx, {
      action: "credential.created",
      companyId,
      environment: row.environment,
      merchantAccountId: row.merchant_account_id,
      target: { type: "credential", id: row.id },
      changes: { after: auditFields(row) },
    });
    return row;
  }

  /** What an API user holds now: its roles' permissions (as the catalog defines them) and its own. */
  held(row: Pick<CredentialRow, "roles" | "permissions">): string[] {
    return credentialPermissions(this.deps.catalog, row);
  }

  async create(companyId: string, input: CreateCredentialInput, given: Ctx): Promise<CredentialView> {
    const created = await this.createOnly(companyId, input, given);
    this.deps.events.committed();
    return created;
  }

  private async createOnly(
    companyId: string,
    input: CreateCredentialInput,
    given: Ctx,
  ): Promise<CredentialView> {
    // Unless told, an API user is made in the world its creator acts in.
    const environment = input.environment ?? actingEnvironment(given.actor);
    assertMayCreateIn(given.actor, environment);
    // A merchant account's caller makes API users in its own account; naming another is a 404.
    const account = creationAccount(given.actor, input.merchant_account_id);
    const { roles, permissions } = checkCredentialGrant(
      this.deps.catalog,
      { roles: input.roles ?? [], permissions: input.permissions ?? [] },
      grantable(given.actor),
    );
    const allowedIps = checkAllowlist(input.allowed_ips);
    const rateLimits = checkRateLimits(input.rate_limits);
    const ctx = await this.deps.guard.confirm(given, "credentials.create", input);
    return this.deps.db.transaction().execute(async (tx) => {
      const company = await companies.get(tx, companyId);
      if (!company) throw new LatchkeyError("NOT_FOUND");
      const merchantAccountId = await usableMerchantAccount(tx, companyId, account, ctx.actor);
      const row = await this.insert(
        tx,
        companyId,
        company.slug,
        {
          ...input,
          environment,
          merchant_account_id: merchantAccountId,
          permissions,
          roles,
          allowed_ips: allowedIps,
          rate_limits: rateLimits,
        },
        ctx,
      );
      const view = this.view(row);
      await this.deps.events.emit(tx, { companyId, environment, type: "credential.created", data: view });
      return view;
    });
  }

  /** A test caller lists test credentials only, whatever it asks for. */
  async list(
    companyId: string,
    filters: { environment?: Environment | undefined; merchant_account_id?: string | undefined },
    page: { cursor?: string | undefined; limit: number },
    actor: Actor,
  ): Promise<{ credentials: CredentialView[]; next_cursor: string | null }> {
    const rows = await credentials.list(this.deps.db, companyId, {
      after: page.cursor,
      limit: page.limit + 1,
      environment: listedEnvironment(actor, filters.environment),
      merchantAccountId: listedMerchantAccount(actor, filters.merchant_account_id),
    });
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    return {
      credentials: await shownTo(
        this.deps.db,
        actor,
        shown.map((r) => this.view(r)),
      ),
      next_cursor: more ? (shown.at(-1)?.id ?? null) : null,
    };
  }

  async get(companyId: string, id: string, actor: Actor): Promise<CredentialView> {
    const row = await credentials.get(this.deps.db, companyId, id);
    if (!row) throw new LatchkeyError("NOT_FOUND", "No such API credential.");
    assertSees(actor, row.environment, "API credential");
    assertSeesAccount(actor, row.merchant_account_id, "API credential");
    return (await shownTo(this.deps.db, actor, [this.view(row)]))[0] as CredentialView;
  }

  async update(
    companyId: string,
    id: string,
    input: UpdateCredentialInput,
    given: Ctx,
  ): Promise<CredentialView> {
    const allowedIps = input.allowed_ips === undefined ? undefined : checkAllowlist(input.allowed_ips);
    const rateLimits = input.rate_limits === undefined ? undefined : checkRateLimits(input.rate_limits);
    const ctx = await this.deps.guard.confirm(given, "credentials.update", input);
    const updated = await this.deps.db.transaction().execute(async (tx) => {
      const row = await credentials.get(tx, companyId, id, { lock: true });
      if (!row) throw new LatchkeyError("NOT_FOUND", "No such API credential.");
      assertSeesAccount(ctx.actor, row.merchant_account_id, "API credential");
      assertMayChange(ctx.actor, row.environment, "API credential");
      // The grant as it will be, checked whole: at least one role or permission, each new one known and
      // held by the caller. A role the catalog dropped may stay (it grants nothing) but not be added.
      const grant =
        input.roles === undefined && input.permissions === undefined
          ? { roles: row.roles, permissions: row.permissions }
          : checkCredentialGrant(
              this.deps.catalog,
              { roles: input.roles ?? row.roles, permissions: input.permissions ?? row.permissions },
              grantable(ctx.actor),
              row.roles,
            );
      const next: CredentialRow = {
        ...row,
        name: input.name ?? row.name,
        description: input.description ?? row.description,
        email: input.email === undefined ? row.email : noticeEmail(input.email),
        status: input.status ?? row.status,
        permissions: grant.permissions,
        roles: grant.roles,
        allowed_ips: allowedIps ?? row.allowed_ips,
        rate_limits: rateLimits ?? row.rate_limits,
        updated_at: this.deps.clock(),
      };
      // One audit event per kind of change, so the trail can be filtered by what happened.
      const events = changeEvents(row, next);
      if (events.length === 0) return this.view(row);
      // The allowlist, limits and status guard everything its keys and password can do: changing them
      // takes a caller who holds all of that. So does changing its permissions, even narrowing them: a
      // narrowed API user would otherwise let a weaker caller lift its guards, and keep them lifted once
      // its permissions were given back. (The new permissions are checked above, as a grant.)
      const loosens =
        JSON.stringify(row.allowed_ips) !== JSON.stringify(next.allowed_ips) ||
        JSON.stringify(row.rate_limits) !== JSON.stringify(next.rate_limits) ||
        JSON.stringify(row.permissions) !== JSON.stringify(next.permissions) ||
        JSON.stringify(row.roles) !== JSON.stringify(next.roles) ||
        (row.status === "inactive" && next.status === "active");
      if (loosens) {
        // Its keys keep what they were given even while it holds less, and get it back with it.
        const keys = await apiKeys.grantedTo(tx, companyId, id);
        assertHoldsAll(this.deps.catalog, ctx.actor, [...new Set([...this.held(row), ...keys])]);
      }
      await credentials.update(tx, companyId, id, {
        name: next.name,
        description: next.description,
        email: next.email,
        status: next.status,
        permissions: JSON.stringify(next.permissions),
        roles: JSON.stringify(next.roles),
        allowed_ips: JSON.stringify(next.allowed_ips),
        rate_limits: JSON.stringify(next.rate_limits),
        updated_at: next.updated_at,
      });
      for (const [action, changes] of events) {
        await this.deps.audit.append(tx, ctx, {
          action,
          companyId,
          environment: row.environment,
          merchantAccountId: row.merchant_account_id,
          target: { type: "credential", id },
          changes,
        });
      }
      const view = this.view(next);
      // Deactivation is an event of its own; any other change (reactivation included) is an update.
      const deactivated = row.status === "active" && next.status === "inactive";
      const updatedOtherwise = events.some(([action]) => action !== "credential.deactivated");
      const environment = row.environment;
      if (deactivated) {
        await this.deps.events.emit(tx, {
          companyId,
          environment,
          type: "credential.deactivated",
          data: view,
        });
      }
      if (updatedOtherwise) {
        await this.deps.events.emit(tx, { companyId, environment, type: "credential.updated", data: view });
      }
      return view;
    });
    this.deps.events.committed();
    // Its keys' cached answers carry its status, permissions (its roles' too) and allowlist.
    this.deps.changes.emit({
      kind: "credential",
      credentialId: id,
      companyId,
      environment: updated.environment,
      merchantAccountId: updated.merchant_account_id,
    });
    return (await shownTo(this.deps.db, ctx.actor, [updated]))[0] as CredentialView;
  }

  /**
   * A new Basic auth password, shown once. The previous one stops working at once (the Adyen behaviour;
   * for an overlap, create a second credential).
   */
  async generatePassword(
    companyId: string,
    id: string,
    given: Ctx,
  ): Promise<{ username: string; password: string; created_at: string }> {
    const password = randomBase62(40);
    const now = this.deps.clock();
    const ctx = await this.deps.guard.confirm(given, "credentials.password", undefined);
    return this.deps.db.transaction().execute(async (tx) => {
      const row = await credentials.get(tx, companyId, id, { lock: true });
      if (!row) throw new LatchkeyError("NOT_FOUND", "No such API credential.");
      assertSeesAccount(ctx.actor, row.merchant_account_id, "API credential");
      assertMayChange(ctx.actor, row.environment, "API credential");
      // A password acts with all of the credential's permissions, so only someone holding them may issue one.
      assertHoldsAll(this.deps.catalog, ctx.actor, this.held(row));
      await credentials.update(tx, companyId, id, {
        password_hash: hashToken(this.deps.secret, password),
        password_created_at: now,
        updated_at: now,
      });
      await this.deps.audit.append(tx, ctx, {
        action: "credential.password_generated",
        companyId,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        target: { type: "credential", id },
        changes: { before: { has_password: row.password_hash !== null }, after: { has_password: true } },
      });
      return { username: row.username, password, created_at: now.toISOString() };
    });
  }
}

/** Stored as people's addresses are, so it reads the same wherever it is shown or mailed. */
function noticeEmail(email: string | null | undefined): string | null {
  return email === undefined || email === null ? null : normalizeEmail(email);
}

function auditFields(row: CredentialRow) {
  return {
    username: row.username,
    name: row.name,
    environment: row.environment,
    merchant_account_id: row.merchant_account_id,
    description: row.description,
    email: row.email,
    status: row.status,
    permissions: row.permissions,
    roles: row.roles,
    allowed_ips: row.allowed_ips,
    rate_limits: row.rate_limits,
  };
}

type FieldChanges = { before: Record<string, unknown>; after: Record<string, unknown> };

/** The audit events a credential update makes: status, allowed IPs, permissions and details apart. */
function changeEvents(before: CredentialRow, after: CredentialRow): [string, FieldChanges][] {
  const differs = (field: keyof CredentialRow) =>
    JSON.stringify(before[field]) !== JSON.stringify(after[field]);
  const pick = (row: CredentialRow, fields: (keyof CredentialRow)[]) =>
    Object.fromEntries(fields.map((f) => [f, row[f]]));
  const events: [string, FieldChanges][] = [];
  const group = (action: string, fields: (keyof CredentialRow)[]) => {
    const changed = fields.filter(differs);
    if (changed.length > 0)
      events.push([action, { before: pick(before, changed), after: pick(after, changed) }]);
  };
  if (differs("status")) {
    group(after.status === "inactive" ? "credential.deactivated" : "credential.reactivated", ["status"]);
  }
  group("allowed_ips.changed", ["allowed_ips"]);
  // Roles and single permissions are one grant: a change to either is a change of what it may do.
  group("credential.permissions_changed", ["roles", "permissions"]);
  group("rate_limits.changed", ["rate_limits"]);
  group("credential.updated", ["name", "description", "email"]);
  return events;
}
