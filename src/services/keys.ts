import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import {
  assertMayChange,
  assertMayCreateIn,
  assertSees,
  listedEnvironment,
  sees,
} from "../core/access/environments.ts";
import {
  assertHoldsAll,
  checkAllowlist,
  checkRateLimits,
  credentialPermissions,
  effectivePermissions,
  grantable,
  keyGrant,
} from "../core/access/grants.ts";
import {
  assertCompanyLevel,
  assertSeesAccount,
  listedMerchantAccount,
  seesAccount,
} from "../core/access/merchant-accounts.ts";
import type { Actor } from "../core/actor.ts";
import { actorRef } from "../core/actor.ts";
import type { Catalog, Preset } from "../core/catalog.ts";
import { checkCredits, checkMeta, currentBalance, type Refill } from "../core/credits.ts";
import { LatchkeyError } from "../core/errors.ts";
import { fingerprint, hashToken } from "../core/hashing.ts";
import { newId } from "../core/ids.ts";
import { type Environment, generateToken, parseToken } from "../core/key-format.ts";
import type { RateLimit } from "../core/rate-limit.ts";
import {
  apiKeys,
  credentials,
  type Db,
  type KeyFilters,
  keyCredits,
  keyUsage,
} from "../store/repositories.ts";
import type { ApiKeyRow, Database, KeyCreditsRow } from "../store/schema.ts";
import type { AccessGuard } from "./access.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import type { ExpiryPolicyService } from "./expiry-policies.ts";
import { usableMerchantAccount } from "./merchant-accounts.ts";
import { creditState, type KeyView, keyStatus, keyView, shownTo, withLeaks } from "./views.ts";

export const DEFAULT_GRACE_SECONDS = 24 * 3600;
export const MAX_GRACE_SECONDS = 7 * 24 * 3600;
const RESET_SECONDS = 24 * 3600;

export interface CreateKeyInput {
  name: string;
  environment: Environment;
  description?: string | undefined;
  credential_id?: string | undefined;
  permissions?: string[] | undefined;
  preset?: Preset | Record<string, Preset> | undefined;
  allowed_ips?: string[] | undefined;
  expires_at?: string | undefined;
  with_secret?: boolean | undefined;
  rate_limits?: RateLimit[] | undefined;
  remaining?: number | undefined;
  refill?: Refill | undefined;
  meta?: Record<string, unknown> | undefined;
  external_id?: string | undefined;
}

/** What `PATCH /v1/keys/:id` may change; null clears credits, a refill, meta or the external id. */
export interface KeyPatch {
  name?: string;
  description?: string;
  allowed_ips?: string[];
  permissions?: string[];
  rate_limits?: RateLimit[];
  remaining?: number | null;
  refill?: Refill | null;
  meta?: Record<string, unknown> | null;
  external_id?: string | null;
}

/** Refuses a meta object that is too big or too deep before anything is written. */
function checkedMeta(meta: Record<string, unknown> | null | undefined): void {
  if (meta === undefined || meta === null) return;
  const checked = checkMeta(meta);
  if (!checked.ok) throw new LatchkeyError("INVALID_META", checked.reason, { field: "meta" });
}

function checkedCredits(remaining: number | null, refill: Refill | null): void {
  const checked = checkCredits(remaining, refill);
  if (!checked.ok) throw new LatchkeyError("VALIDATION_ERROR", checked.reason, { field: checked.field });
}

/** The family whose balance a key spends: the first key of its rotation chain. */
const familyOf = (row: Pick<ApiKeyRow, "id" | "family_id">) => row.family_id ?? row.id;

/** What the audit trail keeps of a family's credits. */
function creditsAudit(row: KeyCreditsRow | null | undefined) {
  if (!row) return { remaining: null, refill: null };
  const state = creditState(row);
  return { remaining: state.remaining, refill: state.refill };
}

/** A key as returned once, at creation or rotation: the only time `key` and `secret` are ever seen. */
export type CreatedKey = KeyView & { key: string; secret?: string };

export interface KeyServiceDeps {
  db: Kysely<Database>;
  catalog: Catalog;
  secret: string;
  keyPrefix: string;
  clock: () => Date;
  audit: AuditService;
  /** The webhook outbox: events are emitted in the transaction of their change. */
  events: EventOutbox;
  changes: Changes;
  guard: AccessGuard;
  /** The company's expiry policy: what new keys may ask for, and how existing ones stand. */
  expiryPolicies: ExpiryPolicyService;
}

export class KeyService {
  constructor(private readonly deps: KeyServiceDeps) {}

  /** `credentialPermissions`: what the key's API user holds now, which bounds what the key can do. */
  private view(
    row: ApiKeyRow,
    credentialPermissions: readonly string[] | null,
    credits: KeyCreditsRow | null = null,
  ): KeyView {
    const effective = { ...row, permissions: effectivePermissions(row.permissions, credentialPermissions) };
    return keyView(effective, this.deps.catalog, this.deps.clock(), credits);
  }

  /** What an API user holds now (its roles' permissions and its own): the bound of its keys. */
  private held(grant: { roles: string[]; permissions: string[] }): string[];
  private held(grant: { roles: string[]; permissions: string[] } | undefined): string[] | null;
  private held(grant: { roles: string[]; permissions: string[] } | undefined): string[] | null {
    return grant === undefined ? null : credentialPermissions(this.deps.catalog, grant);
  }

  /** A key of the company's that the actor may see (another environment's answers as missing). */
  private async found(db: Db, companyId: string, id: string, actor: Actor, lock = false) {
    const row = await apiKeys.get(db, companyId, id, { lock });
    if (!row) throw new LatchkeyError("NOT_FOUND", "No such API key.");
    assertSees(actor, row.environment, "API key");
    assertSeesAccount(actor, row.merchant_account_id, "API key");
    const credential =
      row.credential_id === null ? undefined : await credentials.get(db, companyId, row.credential_id);
    const credits = (await keyCredits.get(db, familyOf(row), { lock })) ?? null;
    return { row, credentialPermissions: credential ? this.held(credential) : null, credits };
  }

  /** Mints a key (and its secret when asked) and stores only their hashes. */
  private mint(environment: Environment, withSecret: boolean) {
    const key = generateToken(this.deps.keyPrefix, environment, "sk");
    const secret = withSecret ? generateToken(this.deps.keyPrefix, environment, "ss") : undefined;
    return {
      key,
      secret,
      key_hash: hashToken(this.deps.secret, key),
      secret_hash: secret ? hashToken(this.deps.secret, secret) : null,
      prefix: (parseToken(key) as NonNullable<ReturnType<typeof parseToken>>).prefix,
    };
  }

  private futureDate(value: string | undefined, field: string): Date | null {
    if (value === undefined) return null;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) {
      throw new LatchkeyError("VALIDATION_ERROR", `${field} must be an ISO 8601 date-time.`, { field });
    }
    if (date.getTime() <= this.deps.clock().getTime()) {
      throw new LatchkeyError("VALIDATION_ERROR", `${field} must be in the future.`, { field });
    }
    return date;
  }

  async create(companyId: string, input: CreateKeyInput, given: Ctx): Promise<CreatedKey> {
    const ctx = await this.deps.guard.confirm(given, "keys.create", input);
    const created = await this.deps.db
      .transaction()
      .execute((tx) => this.createIn(tx, companyId, input, ctx));
    this.deps.events.committed();
    this.deps.changes.emit({
      kind: "key_created",
      fingerprint: fingerprint(created.key),
      companyId,
      environment: created.environment,
      merchantAccountId: created.merchant_account_id,
    });
    return created;
  }

  /** Runs a change to one key in a transaction, then tells the caches once it has committed. */
  private async changingKey<T extends { environment: Environment; merchant_account_id: string | null }>(
    companyId: string,
    id: string,
    work: (tx: Db) => Promise<T>,
  ): Promise<T> {
    const result = await this.deps.db.transaction().execute(work);
    this.deps.events.committed();
    this.deps.changes.emit({
      kind: "key",
      keyId: id,
      companyId,
      environment: result.environment,
      merchantAccountId: result.merchant_account_id,
    });
    return result;
  }

  /** A key as the actor may read it (see `shownTo`). */
  private async shown(actor: Actor, view: KeyView): Promise<KeyView> {
    return (await shownTo(this.deps.db, actor, await withLeaks(this.deps.db, [view])))[0] as KeyView;
  }

  /**
   * Creates a key inside the caller's transaction (company set-up makes its management key this way).
   * A person's step-up must have been confirmed before the transaction began (see `create`).
   */
  async createIn(tx: Db, companyId: string, input: CreateKeyInput, ctx: Ctx): Promise<CreatedKey> {
    const actor = ctx.actor;
    assertMayCreateIn(actor, input.environment);
    const credentialId =
      input.credential_id ??
      (actor.kind === "key" || actor.kind === "credential" ? actor.credentialId : undefined);
    if (!credentialId) {
      throw new LatchkeyError("VALIDATION_ERROR", "credential_id is required for this caller.", {
        field: "credential_id",
      });
    }
    const now = this.deps.clock();
    const asked = this.futureDate(input.expires_at, "expires_at");
    const allowedIps = checkAllowlist(input.allowed_ips);
    const rateLimits = checkRateLimits(input.rate_limits);
    // A refill alone starts the balance at its amount.
    const remaining = input.remaining ?? input.refill?.amount ?? null;
    checkedCredits(remaining, input.refill ?? null);
    checkedMeta(input.meta);
    {
      const credential = await credentials.get(tx, companyId, credentialId, { lock: true });
      if (
        !credential ||
        !sees(actor, credential.environment) ||
        !seesAccount(actor, credential.merchant_account_id)
      )
        throw new LatchkeyError("NOT_FOUND", "No such API credential.", { field: "credential_id" });
      if (credential.environment !== input.environment) {
        throw new LatchkeyError(
          "VALIDATION_ERROR",
          `The API user is a ${credential.environment} credential: its keys are ${credential.environment} keys.`,
          { field: "environment" },
        );
      }
      if (credential.status !== "active") throw new LatchkeyError("CREDENTIAL_INACTIVE");
      // A key of an inactive merchant account could not verify: refused as for an inactive API user.
      await usableMerchantAccount(tx, companyId, credential.merchant_account_id, actor);
      const expiresAt = await this.deps.expiryPolicies.expiryFor(tx, companyId, input.environment, asked);
      const held = this.held(credential);
      const permissions = keyGrant(this.deps.catalog, input, held, grantable(actor));
      const minted = this.mint(input.environment, input.with_secret === true);
      const row: ApiKeyRow = {
        id: newId("key", now),
        company_id: companyId,
        credential_id: credential.id,
        // The key acts within its API user's merchant account, for good (both are fixed at creation).
        merchant_account_id: credential.merchant_account_id,
        name: input.name,
        description: input.description ?? "",
        environment: input.environment,
        permissions,
        allowed_ips: allowedIps,
        rate_limits: rateLimits,
        key_hash: minted.key_hash,
        secret_hash: minted.secret_hash,
        prefix: minted.prefix,
        status: "active",
        expires_at: expiresAt,
        revoked_at: null,
        replaced_by: null,
        family_id: null,
        created_at: now,
        created_by: actorRef(actor),
        last_used_at: null,
        last_used_ip: null,
        meta: input.meta ?? null,
        external_id: input.external_id ?? null,
      };
      await insertKey(tx, row);
      let credits: KeyCreditsRow | null = null;
      if (remaining !== null) {
        credits = {
          family_id: row.id,
          remaining: String(remaining),
          refill_amount: input.refill ? String(input.refill.amount) : null,
          refill_interval: input.refill?.interval ?? null,
          // The balance given is this period's: the first refill comes when the next one starts.
          refilled_at: now,
          updated_at: now,
        };
        await keyCredits.put(tx, {
          ...credits,
          remaining,
          refill_amount: input.refill?.amount ?? null,
        });
      }
      const view = this.view(row, held, credits);
      await this.deps.audit.append(tx, ctx, {
        action: "key.created",
        companyId,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        target: { type: "key", id: row.id },
        changes: { after: auditFields(view) },
      });
      await this.deps.events.emit(tx, {
        companyId,
        environment: row.environment,
        type: "key.created",
        data: view,
      });
      return withToken(view, minted.key, minted.secret);
    }
  }

  /** A platform-wide key that may only verify keys (the gateway's); `rateLimits` is its own budget. */
  async createVerifyKey(
    name: string,
    ctx: Ctx,
    rateLimits?: readonly RateLimit[],
  ): Promise<{ id: string; key: string; prefix: string }> {
    const limits = checkRateLimits(rateLimits);
    const now = this.deps.clock();
    const minted = this.mint("live", false);
    const id = newId("key", now);
    const row: ApiKeyRow = {
      id,
      company_id: null,
      credential_id: null,
      merchant_account_id: null,
      name,
      description: "",
      environment: "live",
      permissions: ["keys:verify"],
      allowed_ips: [],
      rate_limits: limits,
      key_hash: minted.key_hash,
      secret_hash: null,
      prefix: minted.prefix,
      status: "active",
      expires_at: null,
      revoked_at: null,
      replaced_by: null,
      family_id: null,
      created_at: now,
      created_by: actorRef(ctx.actor),
      last_used_at: null,
      last_used_ip: null,
      meta: null,
      external_id: null,
    };
    await this.deps.db.transaction().execute(async (tx) => {
      await insertKey(tx, row);
      await this.deps.audit.append(tx, ctx, {
        action: "verify_key.created",
        companyId: null,
        target: { type: "key", id },
        changes: {
          after: { name, prefix: minted.prefix, permissions: row.permissions, rate_limits: limits },
        },
      });
    });
    return { id, key: minted.key, prefix: minted.prefix };
  }

  /** A test caller lists test keys only, whatever it asks for. */
  async list(
    companyId: string,
    filters: KeyFilters,
    page: { cursor?: string | undefined; limit: number },
    actor: Actor,
  ): Promise<{ keys: KeyView[]; next_cursor: string | null }> {
    const rows = await apiKeys.list(
      this.deps.db,
      companyId,
      {
        ...filters,
        environment: listedEnvironment(actor, filters.environment),
        merchantAccountId: listedMerchantAccount(actor, filters.merchantAccountId),
      },
      { after: page.cursor, limit: page.limit + 1 },
      this.deps.clock(),
    );
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    const grants = await credentials.grantsOf(this.deps.db, companyId, shown);
    const credits = await keyCredits.ofKeys(this.deps.db, shown);
    const views = shown.map((r) =>
      this.view(
        r,
        r.credential_id === null ? null : this.held(grants.get(r.credential_id)),
        credits.get(familyOf(r)) ?? null,
      ),
    );
    return {
      keys: await this.deps.expiryPolicies.annotate(
        companyId,
        await shownTo(this.deps.db, actor, await withLeaks(this.deps.db, views)),
      ),
      next_cursor: more ? (shown.at(-1)?.id ?? null) : null,
    };
  }

  async get(companyId: string, id: string, actor: Actor): Promise<KeyView> {
    const { row, credentialPermissions, credits } = await this.found(this.deps.db, companyId, id, actor);
    const [view] = await this.deps.expiryPolicies.annotate(companyId, [
      this.view(row, credentialPermissions, credits),
    ]);
    return this.shown(actor, view as KeyView);
  }

  /** Requests per UTC day over the last `days` days (today included), zeros where nothing was counted. */
  async usage(companyId: string, id: string, days: number, actor: Actor) {
    const { row } = await this.found(this.deps.db, companyId, id, actor);
    const today = Date.UTC(...utcDate(this.deps.clock()));
    const dayOf = (i: number) => new Date(today - (days - 1 - i) * 86_400_000).toISOString().slice(0, 10);
    const counted = new Map(
      (await keyUsage.list(this.deps.db, id, dayOf(0))).map((r) => [r.day, r] as const),
    );
    const series = Array.from({ length: days }, (_, i) => {
      const day = dayOf(i);
      const c = counted.get(day);
      return { day, requests: c?.requests ?? 0, denied: c?.denied ?? 0 };
    });
    return {
      key_id: id,
      merchant_account_id: row.merchant_account_id,
      days: series,
      total_requests: series.reduce((sum, d) => sum + d.requests, 0),
      last_used_at: row.last_used_at?.toISOString() ?? null,
      last_used_ip: row.last_used_ip,
    };
  }

  /**
   * The company's requests per UTC day over its keys, cut to the environment the caller acts in (a test
   * caller counts test keys only, whatever it asks for), zeros where nothing was counted.
   */
  async companyUsage(companyId: string, days: number, environment: Environment | undefined, actor: Actor) {
    // The whole company's traffic: a merchant account's caller reads its own keys' usage instead.
    assertCompanyLevel(actor);
    const cut = listedEnvironment(actor, environment);
    const today = Date.UTC(...utcDate(this.deps.clock()));
    const dayOf = (i: number) => new Date(today - (days - 1 - i) * 86_400_000).toISOString().slice(0, 10);
    const counted = await keyUsage.ofCompany(this.deps.db, companyId, dayOf(0), cut);
    const byDay = new Map(counted.days.map((d) => [d.day, d] as const));
    const series = Array.from({ length: days }, (_, i) => {
      const day = dayOf(i);
      const c = byDay.get(day);
      return { day, requests: c?.requests ?? 0, denied: c?.denied ?? 0 };
    });
    return {
      environment: cut ?? null,
      days: series,
      total_requests: series.reduce((sum, d) => sum + d.requests, 0),
      total_denied: series.reduce((sum, d) => sum + d.denied, 0),
      keys_used: counted.keysUsed,
    };
  }

  async update(companyId: string, id: string, patch: KeyPatch, given: Ctx): Promise<KeyView> {
    const allowedIps = patch.allowed_ips === undefined ? undefined : checkAllowlist(patch.allowed_ips);
    const rateLimits = patch.rate_limits === undefined ? undefined : checkRateLimits(patch.rate_limits);
    checkedMeta(patch.meta);
    const ctx = await this.deps.guard.confirm(given, "keys.update", patch);
    let family: string[] = [];
    const view = await this.changingKey(companyId, id, async (tx) => {
      const { row, credentialPermissions, credits } = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "API key");
      const effective = effectivePermissions(row.permissions, credentialPermissions);
      if (patch.permissions !== undefined) {
        const same =
          new Set(patch.permissions).size === effective.length &&
          patch.permissions.every((p) => effective.includes(p));
        if (!same) throw new LatchkeyError("PERMISSIONS_IMMUTABLE", undefined, { field: "permissions" });
      }
      const updated: ApiKeyRow = {
        ...row,
        name: patch.name ?? row.name,
        description: patch.description ?? row.description,
        allowed_ips: allowedIps ?? row.allowed_ips,
        rate_limits: rateLimits ?? row.rate_limits,
        meta: patch.meta === undefined ? row.meta : patch.meta,
        external_id: patch.external_id === undefined ? row.external_id : patch.external_id,
      };
      const now = this.deps.clock();
      const newCredits = this.patchedCredits(familyOf(row), credits, patch, now);
      const details = {
        name: updated.name,
        description: updated.description,
        meta: updated.meta,
        external_id: updated.external_id,
      };
      const before = {
        name: row.name,
        description: row.description,
        meta: row.meta,
        external_id: row.external_id,
      };
      const ipsChanged = JSON.stringify(updated.allowed_ips) !== JSON.stringify(row.allowed_ips);
      const detailsChanged = JSON.stringify(details) !== JSON.stringify(before);
      const limitsChanged = JSON.stringify(updated.rate_limits) !== JSON.stringify(row.rate_limits);
      const creditsChanged = newCredits !== undefined;
      if (!ipsChanged && !detailsChanged && !limitsChanged && !creditsChanged)
        return this.view(row, credentialPermissions, credits);
      // Its allowlist, limits and credits guard what the key can do: only a caller holding all of that
      // may change them. All it was given, not only what its API user holds today: the API user may
      // regain the rest.
      if (ipsChanged || limitsChanged || creditsChanged)
        assertHoldsAll(this.deps.catalog, ctx.actor, row.permissions);
      await apiKeys.update(tx, companyId, id, {
        name: updated.name,
        description: updated.description,
        allowed_ips: JSON.stringify(updated.allowed_ips),
        rate_limits: JSON.stringify(updated.rate_limits),
        meta: updated.meta === null ? null : JSON.stringify(updated.meta),
        external_id: updated.external_id,
      });
      const target = { type: "key", id };
      const environment = row.environment;
      if (detailsChanged) {
        await this.deps.audit.append(tx, ctx, {
          action: "key.updated",
          companyId,
          environment,
          merchantAccountId: row.merchant_account_id,
          target,
          changes: { before, after: details },
        });
      }
      if (ipsChanged) {
        await this.deps.audit.append(tx, ctx, {
          action: "allowed_ips.changed",
          companyId,
          environment,
          merchantAccountId: row.merchant_account_id,
          target,
          changes: { before: { allowed_ips: row.allowed_ips }, after: { allowed_ips: updated.allowed_ips } },
        });
      }
      if (limitsChanged) {
        await this.deps.audit.append(tx, ctx, {
          action: "rate_limits.changed",
          companyId,
          environment,
          merchantAccountId: row.merchant_account_id,
          target,
          changes: { before: { rate_limits: row.rate_limits }, after: { rate_limits: updated.rate_limits } },
        });
      }
      if (newCredits !== undefined) {
        if (newCredits === null) await keyCredits.remove(tx, familyOf(row));
        else
          await keyCredits.put(tx, {
            ...newCredits,
            remaining: Number(newCredits.remaining),
            refill_amount: newCredits.refill_amount === null ? null : Number(newCredits.refill_amount),
          });
        // The key and every other key of its family (a rotated one in its overlap) spend one balance:
        // their cached entries must all learn whether they have credits now.
        family = (await keyCredits.familyKeys(tx, familyOf(row))).filter((k) => k !== id);
        await this.deps.audit.append(tx, ctx, {
          action: "credits.changed",
          companyId,
          environment,
          merchantAccountId: row.merchant_account_id,
          target,
          changes: {
            before: { ...creditsAudit(credits), remaining: credits ? this.balance(credits, now) : null },
            after: creditsAudit(newCredits),
          },
        });
      }
      return this.view(updated, credentialPermissions, newCredits === undefined ? credits : newCredits);
    });
    for (const keyId of family)
      this.deps.changes.emit({
        kind: "key",
        keyId,
        companyId,
        environment: view.environment,
        merchantAccountId: view.merchant_account_id,
      });
    return this.shown(ctx.actor, view);
  }

  /** The balance as a verification now would find it (a due refill counted). */
  private balance(credits: KeyCreditsRow, now: Date): number {
    return currentBalance(creditState(credits), now);
  }

  /**
   * The family's credits after a patch: undefined when the patch leaves them alone, null when it makes
   * the key unlimited. Setting a balance or a refill starts this period with it, so a refill that was
   * due does not overwrite what was just set.
   */
  private patchedCredits(
    familyId: string,
    current: KeyCreditsRow | null,
    patch: KeyPatch,
    now: Date,
  ): KeyCreditsRow | null | undefined {
    if (patch.remaining === undefined && patch.refill === undefined) return undefined;
    const state = current === null ? null : creditState(current);
    // Unlimited has nothing to refill: `remaining: null` alone drops the refill too.
    const kept = patch.remaining === null ? null : (state?.refill ?? null);
    const refill = patch.refill === undefined ? kept : patch.refill;
    let remaining: number | null;
    if (patch.remaining !== undefined) remaining = patch.remaining;
    else if (state !== null) remaining = this.balance(current as KeyCreditsRow, now);
    else remaining = refill?.amount ?? null;
    checkedCredits(remaining, refill);
    if (remaining === null) return current === null ? undefined : null;
    const next: KeyCreditsRow = {
      family_id: familyId,
      remaining: String(remaining),
      refill_amount: refill === null ? null : String(refill.amount),
      refill_interval: refill?.interval ?? null,
      refilled_at: now,
      updated_at: now,
    };
    const same =
      current !== null &&
      Number(current.remaining) === remaining &&
      JSON.stringify(state?.refill ?? null) === JSON.stringify(refill);
    return same ? undefined : next;
  }

  /** Immediate and final. Revoking a revoked key changes nothing and succeeds. */
  async revoke(companyId: string, id: string, given: Ctx): Promise<KeyView> {
    const ctx = await this.deps.guard.confirm(given, "keys.revoke", undefined);
    const view = await this.changingKey(companyId, id, async (tx) => {
      const { row, credentialPermissions, credits } = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "API key");
      if (row.status === "revoked") return this.view(row, credentialPermissions, credits);
      const now = this.deps.clock();
      await apiKeys.update(tx, companyId, id, { status: "revoked", revoked_at: now });
      await this.deps.audit.append(tx, ctx, {
        action: "key.revoked",
        companyId,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        target: { type: "key", id },
        changes: {
          before: { status: keyStatus(row, now) },
          after: { status: "revoked" },
          name: row.name,
          prefix: row.prefix,
        },
      });
      const revoked = this.view(
        { ...row, status: "revoked", revoked_at: now },
        credentialPermissions,
        credits,
      );
      await this.deps.events.emit(tx, {
        companyId,
        environment: row.environment,
        type: "key.revoked",
        data: revoked,
      });
      return revoked;
    });
    return this.shown(ctx.actor, view);
  }

  /**
   * A new key with the same credential, environment, permissions and IPs, active at once; the old one
   * keeps working for `graceSeconds` (the Adyen overlap) and then fails with EXPIRED.
   */
  async rotate(
    companyId: string,
    id: string,
    input: { grace_seconds?: number | undefined; expires_at?: string | undefined },
    given: Ctx,
  ): Promise<CreatedKey & { previous_key: { id: string; expires_at: string } }> {
    const grace = input.grace_seconds ?? DEFAULT_GRACE_SECONDS;
    if (!Number.isInteger(grace) || grace < 0 || grace > MAX_GRACE_SECONDS) {
      throw new LatchkeyError("VALIDATION_ERROR", `grace_seconds must be from 0 to ${MAX_GRACE_SECONDS}.`, {
        field: "grace_seconds",
      });
    }
    const asked = this.futureDate(input.expires_at, "expires_at");
    const ctx = await this.deps.guard.confirm(given, "keys.rotate", input);
    const rotated = await this.changingKey(companyId, id, async (tx) => {
      // The replacement joins the old key's family: the same balance, never a second one.
      const { row: old, credits } = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, old.environment, "API key");
      const now = this.deps.clock();
      if (keyStatus(old, now) !== "active") throw new LatchkeyError("KEY_NOT_ACTIVE");
      if (old.replaced_by !== null) {
        throw new LatchkeyError(
          "KEY_ALREADY_ROTATED",
          `This key was already replaced by ${old.replaced_by}.`,
        );
      }
      if (old.credential_id === null) throw new LatchkeyError("NOT_FOUND", "No such API key.");
      const credential = await credentials.get(tx, companyId, old.credential_id, { lock: true });
      if (credential?.status !== "active") throw new LatchkeyError("CREDENTIAL_INACTIVE");
      // Rotation mints a key with the old one's permissions, so the caller must hold them, as at creation
      // (all it was given: what its API user holds today bounds it at verification, not for good).
      assertHoldsAll(this.deps.catalog, ctx.actor, old.permissions);
      // The replacement is a new key: the policy of today applies to it, whatever the old one had.
      const expiresAt = await this.deps.expiryPolicies.expiryFor(tx, companyId, old.environment, asked);
      const minted = this.mint(old.environment, old.secret_hash !== null);
      const fresh: ApiKeyRow = {
        ...old,
        id: newId("key", now),
        key_hash: minted.key_hash,
        secret_hash: minted.secret_hash,
        prefix: minted.prefix,
        status: "active",
        expires_at: expiresAt,
        revoked_at: null,
        replaced_by: null,
        family_id: old.family_id ?? old.id,
        created_at: now,
        created_by: actorRef(ctx.actor),
        last_used_at: null,
        last_used_ip: null,
      };
      await insertKey(tx, fresh);
      const graceEnd = new Date(now.getTime() + grace * 1000);
      const oldExpiry = old.expires_at && old.expires_at < graceEnd ? old.expires_at : graceEnd;
      await apiKeys.update(tx, companyId, id, { expires_at: oldExpiry, replaced_by: fresh.id });
      await this.deps.audit.append(tx, ctx, {
        action: "key.rotated",
        companyId,
        environment: old.environment,
        merchantAccountId: old.merchant_account_id,
        target: { type: "key", id },
        changes: {
          before: { expires_at: old.expires_at?.toISOString() ?? null },
          after: { expires_at: oldExpiry.toISOString(), replaced_by: fresh.id },
          new_key: { id: fresh.id, prefix: fresh.prefix },
          grace_seconds: grace,
        },
      });
      const held = this.held(credential);
      const freshView = this.view(fresh, held, credits);
      // Both views, no key material: the receiver learns which key replaced which, and until when the
      // old one works.
      await this.deps.events.emit(tx, {
        companyId,
        environment: old.environment,
        type: "key.rotated",
        data: {
          old_key: this.view({ ...old, expires_at: oldExpiry, replaced_by: fresh.id }, held, credits),
          new_key: freshView,
        },
      });
      return {
        ...withToken(freshView, minted.key, minted.secret),
        previous_key: { id: old.id, expires_at: oldExpiry.toISOString() },
      };
    });
    this.deps.changes.emit({
      kind: "key_created",
      fingerprint: fingerprint(rotated.key),
      companyId,
      environment: rotated.environment,
      merchantAccountId: rotated.merchant_account_id,
    });
    return rotated;
  }

  /** For a rotated key still in its overlap: reset its expiry to 24 h from now, or end it now. */
  async changeExpiry(companyId: string, id: string, action: "reset" | "now", given: Ctx): Promise<KeyView> {
    const ctx = await this.deps.guard.confirm(given, "keys.expiry", { action });
    const view = await this.changingKey(companyId, id, async (tx) => {
      const { row, credentialPermissions } = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "API key");
      if (row.replaced_by === null) throw new LatchkeyError("KEY_NOT_ROTATED");
      const now = this.deps.clock();
      if (keyStatus(row, now) !== "active") throw new LatchkeyError("KEY_NOT_ACTIVE");
      // A later expiry keeps the key alive longer; ending it now only reduces access, as a revocation does.
      if (action === "reset") {
        assertHoldsAll(this.deps.catalog, ctx.actor, row.permissions);
      }
      const expiresAt = action === "now" ? now : new Date(now.getTime() + RESET_SECONDS * 1000);
      await apiKeys.update(tx, companyId, id, { expires_at: expiresAt });
      await this.deps.audit.append(tx, ctx, {
        action: action === "now" ? "key.expired_now" : "key.expiry_reset",
        companyId,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        target: { type: "key", id },
        changes: {
          before: { expires_at: row.expires_at?.toISOString() ?? null },
          after: { expires_at: expiresAt.toISOString() },
        },
      });
      return this.view({ ...row, expires_at: expiresAt }, credentialPermissions);
    });
    return this.shown(ctx.actor, view);
  }
}

/** What the audit trail keeps of a key: its metadata, never the key or a hash of it. */
function auditFields(view: KeyView) {
  return {
    name: view.name,
    environment: view.environment,
    prefix: view.prefix,
    credential_id: view.credential_id,
    merchant_account_id: view.merchant_account_id,
    permissions: view.permissions,
    allowed_ips: view.allowed_ips,
    rate_limits: view.rate_limits,
    expires_at: view.expires_at,
    has_secret: view.has_secret,
    remaining: view.remaining,
    refill: view.refill,
    meta: view.meta,
    external_id: view.external_id,
  };
}

function insertKey(db: Db, row: ApiKeyRow) {
  return apiKeys.insert(db, {
    ...row,
    permissions: JSON.stringify(row.permissions),
    allowed_ips: JSON.stringify(row.allowed_ips),
    rate_limits: JSON.stringify(row.rate_limits),
    meta: row.meta === null ? null : JSON.stringify(row.meta),
  });
}

function withToken(view: KeyView, key: string, secret: string | undefined): CreatedKey {
  // id first, then the key, as the Web3pay doc shows it.
  const { id, ...rest } = view;
  return secret === undefined ? { id, key, ...rest } : { id, key, secret, ...rest };
}

function utcDate(d: Date): [number, number, number] {
  return [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()];
}
