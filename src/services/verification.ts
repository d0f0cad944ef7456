import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import type { LimitSubject, RateLimiter } from "../cluster/rate-limiter.ts";
import { actingEnvironment, visibleFrom } from "../core/access/environments.ts";
import { credentialPermissions, effectivePermissions } from "../core/access/grants.ts";
import { actingMerchantAccount, visibleWithin } from "../core/access/merchant-accounts.ts";
import type { Actor } from "../core/actor.ts";
import type { Catalog } from "../core/catalog.ts";
import type { VerifyCode } from "../core/errors.ts";
import { fingerprint, hashToken, safeEqual } from "../core/hashing.ts";
import { compileAllowlist } from "../core/ip.ts";
import { type Environment, parseToken } from "../core/key-format.ts";
import { compileStored, type LimitDecision, type RateLimit } from "../core/rate-limit.ts";
import { decide, type VerifiableKey } from "../core/verification.ts";
import { apiKeys, credentials } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import { isStoreUnavailable } from "../store/store.ts";
import type { CreditService, Spent } from "./credits.ts";
import { KeyCache } from "./key-cache.ts";
import type { NodeStats } from "./node-stats.ts";
import type { UsageRecorder } from "./usage.ts";

export interface VerifyInput {
  key?: string | undefined;
  secret?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  permissions?: readonly string[] | undefined;
  ip?: string | undefined;
  environment?: Environment | undefined;
  /** Credits this request spends, for a key that has credits (1 when not given; 0 only checks). */
  cost?: number | undefined;
}

/** What a gateway passes on to its caller as RateLimit-* headers. */
export interface RateLimitView {
  limit: number;
  window: string;
  remaining: number;
  reset: number;
  retry_after: number | null;
}

/** An answer. A cached key's VALID answer without a rate-limit state is shared between requests, frozen. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  credential_id: string | null;
  company_id: string | null;
  environment: Environment | null;
  /** The merchant account the key or API user acts within; null: the company as a whole. */
  merchant_account_id: string | null;
  /** Frozen: shared with the cache. */
  permissions: string[];
  expires_at: string | null;
  /** The tightest rate limit of the key and its API user, when they carry any. */
  rate_limit: RateLimitView | null;
  /** The credits left after this request, for a key that has credits; null: unlimited. */
  remaining: number | null;
  /** The key's own data for the platform (frozen: shared with the cache). */
  meta: Record<string, unknown> | null;
  external_id: string | null;
  /**
   * Whether the key or its API user has an IP allowlist, so the answer depends on the address asked
   * about. A cache outside Latchkey (the SDK's) keeps an answer without one once per key, not per address.
   */
  ip_restricted: boolean;
}

export interface VerificationDeps {
  db: Kysely<Database>;
  /** Expands an API user's roles into the permissions that bound its keys and its password. */
  catalog: Catalog;
  secret: string;
  usage: UsageRecorder;
  clock: () => Date;
  changes: Changes;
  limiter: RateLimiter;
  /** Spends the credits of keys that have any. */
  credits: CreditService;
  /** Where cache hits and misses and rate-limit decisions are counted (/metrics). */
  stats?: NodeStats;
  cache?: {
    max?: number;
    maxNegative?: number;
    ttlMs?: number;
    negativeTtlMs?: number;
    /** How long past its TTL a cached key is still answered while the store cannot be reached. */
    graceMs?: number;
  };
}

/** A key as the cache keeps it: everything a verification needs, built once per load. */
interface LoadedKey extends VerifiableKey {
  keyId: string;
  secretHash: string | null;
  /** The key's and its API user's limits (only those that have any). */
  limits: LimitSubject[];
  creditsFamily: string | null;
  meta: Record<string, unknown> | null;
  externalId: string | null;
  /** The actor a management call with this key acts as; built once, shared by every request. */
  actor: Actor & { kind: "key" };
  validAnswer: VerifyResult | null;
}

/** A found subject: a key, or an API user signing in with Basic auth. */
interface Subject extends VerifiableKey {
  limits: LimitSubject[];
  /** The family whose credits a verification spends, when it had any at load; null: unlimited. */
  creditsFamily?: string | null;
  meta?: Record<string, unknown> | null;
  externalId?: string | null;
  actor: Actor & { kind: "key" | "credential" };
  secretHash?: string | null;
  /**
   * A cached key's VALID answer without a rate-limit state: it depends on nothing but the key, so it is
   * built once and every request shares it (nothing to allocate, and the HTTP layer keeps its bytes).
   * Null until first needed; absent for subjects that are not cached.
   */
  validAnswer?: VerifyResult | null;
}

interface Outcome {
  result: VerifyResult;
  subject: Subject | null;
  limit: LimitDecision | null;
}

/**
 * Whose keys a verifying caller may ask about: its own company's (null: a platform verify key, any
 * company's), and, for a test caller, test keys only: a live key answers it as unknown.
 */
export interface VerifierScope {
  companyId: string | null;
  environment: Environment;
  /** A merchant account's verifier asks about its account's keys only; null: any of the company's. */
  merchantAccountId?: string | null;
}

/** A platform verify key's, and what authenticating a management caller uses: any key. */
export const PLATFORM_SCOPE: VerifierScope = {
  companyId: null,
  environment: "live",
  merchantAccountId: null,
};

/** The scope of a verifying caller. */
export function verifierScope(actor: Actor): VerifierScope {
  if (actor.kind === "platform") return PLATFORM_SCOPE;
  return {
    companyId: actor.companyId,
    environment: actingEnvironment(actor),
    merchantAccountId: actingMerchantAccount(actor),
  };
}

function inScope(
  scope: VerifierScope,
  companyId: string | null,
  environment: Environment | null,
  merchantAccountId: string | null,
): boolean {
  if (scope.companyId !== null && companyId !== scope.companyId) return false;
  return (
    visibleFrom(scope.environment, environment) &&
    visibleWithin(scope.merchantAccountId ?? null, merchantAccountId)
  );
}

/** Meta is shared by every answer for a cached key: frozen so no caller can change it for the others. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const matcher = (entries: readonly string[]) => (entries.length === 0 ? null : compileAllowlist(entries));

/**
 * One string per permission name, shared by every cached key: each row's JSON brings its own copies,
 * and with tens of permissions per key they were most of a cache entry. Bounded by the catalog, since
 * only catalog permissions are ever stored.
 */
const INTERNED = new Map<string, string>();
function intern(name: string): string {
  const known = INTERNED.get(name);
  if (known !== undefined) return known;
  INTERNED.set(name, name);
  return name;
}

const FAILURES = new Map<VerifyCode, Outcome>();
/** Answers for keys that were not found or not well formed: the same frozen object every time. */
function failure(code: VerifyCode): Outcome {
  let outcome = FAILURES.get(code);
  if (outcome === undefined) {
    outcome = {
      result: Object.freeze({
        valid: false,
        code,
        key_id: null,
        credential_id: null,
        company_id: null,
        environment: null,
        merchant_account_id: null,
        permissions: Object.freeze([]) as unknown as string[],
        expires_at: null,
        rate_limit: null,
        remaining: null,
        meta: null,
        external_id: null,
        ip_restricted: false,
      }),
      subject: null,
      limit: null,
    };
    FAILURES.set(code, outcome);
  }
  return outcome;
}

function limitSubjects(
  keyId: string | null,
  keyLimits: readonly RateLimit[] | null | undefined,
  credentialId: string | null,
  credentialLimits: readonly RateLimit[] | null | undefined,
): LimitSubject[] {
  const subjects: LimitSubject[] = [];
  const forKey = compileStored(keyLimits);
  if (keyId !== null && forKey.length > 0) subjects.push({ id: keyId, limits: forKey });
  const forCredential = compileStored(credentialLimits);
  if (credentialId !== null && forCredential.length > 0)
    subjects.push({ id: credentialId, limits: forCredential });
  return subjects.length > 0 ? subjects : NO_LIMITS;
}

/** Most keys carry no limits: they all share this empty list. */
const NO_LIMITS: LimitSubject[] = Object.freeze([]) as unknown as LimitSubject[];

function answer(
  subject: Subject,
  code: VerifyCode,
  limit: LimitDecision | null,
  spent: Spent | null,
): VerifyResult {
  // A key with credits has a balance of its own in every answer: never the shared one.
  const shared = code === "VALID" && limit === null && spent === null && subject.validAnswer !== undefined;
  if (shared && subject.validAnswer) return subject.validAnswer;
  const result: VerifyResult = {
    valid: code === "VALID",
    code,
    key_id: subject.keyId,
    credential_id: subject.credentialId,
    company_id: subject.companyId,
    environment: subject.environment,
    merchant_account_id: subject.actor.merchantAccountId,
    permissions: subject.permissions as string[],
    expires_at: subject.expiresAt ? subject.expiresAt.toISOString() : null,
    rate_limit: limit ? rateLimitView(limit) : null,
    remaining: spent === null ? null : spent.remaining,
    meta: subject.meta ?? null,
    external_id: subject.externalId ?? null,
    ip_restricted: subject.keyIps !== null || subject.credentialIps !== null,
  };
  if (shared) subject.validAnswer = Object.freeze(result);
  return result;
}

export function rateLimitView(decision: LimitDecision): RateLimitView {
  return {
    limit: decision.limit,
    window: decision.window,
    remaining: decision.remaining,
    reset: decision.resetSeconds,
    retry_after: decision.allowed ? null : decision.retryAfterSeconds,
  };
}

/**
 * Answers "is this key (or key + secret, or username + password) good for this request?".
 * Format and checksum are checked before any lookup. A cached key costs one SHA-256 and a map read;
 * a miss costs the HMAC and one indexed query. The only side effects are in memory: usage counts,
 * flushed later in batches, and rate-limit counters (in Redis in cluster mode).
 */
export class VerificationService {
  private readonly cache: KeyCache<LoadedKey>;
  /** Store lookups in flight, by fingerprint, with the cache's change stamp when each was sent. */
  private readonly loading = new Map<string, { stamp: number; answer: Promise<LoadedKey | null> }>();
  private ttlMs: number;
  private readonly normalTtlMs: number;
  /** Whether the TTL is cut short because changes from other nodes may be missed. */
  private ttlLimited = false;

  constructor(private readonly deps: VerificationDeps) {
    this.normalTtlMs = this.ttlMs = deps.cache?.ttlMs ?? 10_000;
    const negativeTtlMs = deps.cache?.negativeTtlMs ?? 2_000;
    const max = deps.cache?.max ?? 100_000;
    const graceMs = deps.cache?.graceMs ?? 0;
    this.cache = new KeyCache<LoadedKey>({
      max,
      maxNegative: deps.cache?.maxNegative ?? Math.max(1, Math.floor(max / 10)),
      ttlMs: () => this.ttlMs,
      negativeTtlMs: () => Math.min(negativeTtlMs, this.ttlMs),
      // Only while the bus is heard (the TTL is not cut short): a node that may have missed another
      // node's change must not stretch what it cached.
      graceMs: () => (this.ttlLimited ? 0 : graceMs),
      now: () => deps.clock().getTime(),
    });
    deps.changes.on((change) => this.cache.apply(change));
  }

  /**
   * While changes from other nodes may be missed (the cluster bus is down), cached answers live at
   * most `ttlMs`, and none is answered past it while the store is away; null restores the normal TTL
   * and the grace. Either way the cache starts afresh, since what it holds may predate changes it
   * never heard of.
   */
  limitCacheTtl(ttlMs: number | null): void {
    this.ttlMs = ttlMs === null ? this.normalTtlMs : Math.min(ttlMs, this.normalTtlMs);
    this.ttlLimited = ttlMs !== null;
    this.cache.clear();
  }

  get cacheTtlMs(): number {
    return this.ttlMs;
  }

  /** Entries in the verification cache, found keys and remembered unknown ones (/metrics). */
  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * One query for all the requests that miss on the same key at once: when a popular key's entry
   * expires, a gateway's concurrent requests for it would otherwise each query the store. A request
   * joins a query only if no change has landed since it was sent, so a request that arrives after a
   * revocation never takes an answer read before it.
   */
  private loadOnce(key: string, fp: string, prefix: string): Promise<LoadedKey | null> {
    const pending = this.loading.get(fp);
    if (pending !== undefined && pending.stamp === this.cache.stamp) return pending.answer;
    const answer = this.load(key, fp, prefix).finally(() => {
      if (this.loading.get(fp)?.answer === answer) this.loading.delete(fp);
    });
    this.loading.set(fp, { stamp: this.cache.stamp, answer });
    return answer;
  }

  /**
   * The key from the store; when the store cannot be reached, a found key still in its grace after
   * the TTL. Nothing about it can have changed through Latchkey meanwhile: every change needs the
   * store, and a change heard from another node drops the entry. Unknown keys are not answered from
   * the past: they get the store's 503.
   */
  private async lookup(key: string, fp: string, prefix: string): Promise<LoadedKey | null> {
    try {
      return await this.loadOnce(key, fp, prefix);
    } catch (err) {
      const stale = isStoreUnavailable(err) ? this.cache.stale(fp) : undefined;
      if (stale === undefined) throw err;
      return stale;
    }
  }

  /** A key by its fingerprint, from one indexed query; the answer (found or not) is cached. */
  private async load(key: string, fp: string, prefix: string): Promise<LoadedKey | null> {
    // A change that lands while the query is in flight makes its answer unfit to keep (it is still
    // returned: it was true when read, as if the request had come a moment earlier).
    const stamp = this.cache.stamp;
    const row = await apiKeys.findByHash(this.deps.db, hashToken(this.deps.secret, key));
    if (!row) {
      this.cache.setMissing(fp, stamp);
      return null;
    }
    const permissions = Object.freeze(
      effectivePermissions(
        row.permissions,
        row.credential_permissions === null
          ? null
          : credentialPermissions(this.deps.catalog, {
              roles: row.credential_roles ?? [],
              permissions: row.credential_permissions,
            }),
      ).map(intern),
    );
    const permissionSet = new Set(permissions);
    const loaded: LoadedKey = {
      keyId: row.id,
      companyId: row.company_id,
      credentialId: row.credential_id,
      environment: row.environment,
      permissions,
      permissionSet,
      revoked: row.status === "revoked",
      expiresAt: row.expires_at,
      // An inactive merchant account stops its keys as an inactive API user does.
      enabled:
        row.company_id === null ||
        (row.credential_status === "active" &&
          row.company_status === "active" &&
          row.merchant_account_status !== "inactive"),
      keyIps: matcher(row.allowed_ips),
      credentialIps: matcher(row.credential_allowed_ips ?? []),
      secretHash: row.secret_hash,
      limits: limitSubjects(
        row.family_id ?? row.id,
        row.rate_limits,
        row.credential_id,
        row.credential_rate_limits,
      ),
      creditsFamily: row.credits_family_id,
      meta: row.meta === null ? null : deepFreeze(row.meta),
      externalId: row.external_id,
      actor: {
        kind: "key",
        keyId: row.id,
        prefix,
        companyId: row.company_id,
        credentialId: row.credential_id,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        permissions,
        permissionSet,
      },
      validAnswer: null,
    };
    this.cache.set(fp, loaded, { keyId: row.id, credentialId: row.credential_id }, stamp);
    return loaded;
  }

  /** What the caller that asks is about: its company and environment (see `verifierScope`). */
  async verify(input: VerifyInput, scope: VerifierScope): Promise<VerifyResult> {
    return (await this.check(input, scope, true)).result;
  }

  /**
   * Authenticates a management caller: on VALID, the actor it acts as. A call counts against the
   * caller's rate limits; `limit` says where it stands (RATE_LIMITED when over).
   */
  async authenticate(
    input: Pick<VerifyInput, "key" | "secret" | "username" | "password" | "ip">,
  ): Promise<{ code: VerifyCode; actor: Actor | null; limit: LimitDecision | null }> {
    // Credits pay for the platform's API (verify, authorize), not for managing keys with Latchkey's.
    const { result, subject, limit } = await this.check(input, PLATFORM_SCOPE, false);
    if (!result.valid || subject === null) return { code: result.code, actor: null, limit };
    return { code: result.code, actor: subject.actor, limit };
  }

  private async check(input: VerifyInput, scope: VerifierScope, spends: boolean): Promise<Outcome> {
    let subject: Subject;
    if (input.key !== undefined) {
      const parsed = parseToken(input.key);
      if (parsed === null || parsed.kind !== "sk") return failure("MALFORMED");
      const fp = fingerprint(input.key);
      const cached = this.cache.get(fp);
      if (this.deps.stats) this.deps.stats[cached === undefined ? "cacheMisses" : "cacheHits"]++;
      const found = cached !== undefined ? cached : await this.lookup(input.key, fp, parsed.prefix);
      if (
        found === null ||
        !inScope(scope, found.companyId, found.environment, found.actor.merchantAccountId)
      )
        return failure("NOT_FOUND");
      if (found.secretHash !== null) {
        if (input.secret === undefined) return failure("MALFORMED");
        const secret = parseToken(input.secret);
        if (secret?.kind !== "ss" || secret.environment !== parsed.environment) return failure("MALFORMED");
        if (!safeEqual(hashToken(this.deps.secret, input.secret), found.secretHash))
          return failure("NOT_FOUND");
      }
      subject = found;
    } else if (input.username !== undefined && input.password !== undefined) {
      const row = await credentials.findByUsername(this.deps.db, input.username);
      if (!row || !inScope(scope, row.company_id, row.environment, row.merchant_account_id))
        return failure("NOT_FOUND");
      const given = hashToken(this.deps.secret, input.password);
      if (row.password_hash === null || !safeEqual(given, row.password_hash)) return failure("NOT_FOUND");
      const permissions = credentialPermissions(this.deps.catalog, row);
      subject = {
        keyId: null,
        companyId: row.company_id,
        credentialId: row.id,
        environment: row.environment,
        permissions,
        revoked: false,
        expiresAt: null,
        enabled:
          row.status === "active" &&
          row.company_status === "active" &&
          row.merchant_account_status !== "inactive",
        keyIps: null,
        credentialIps: matcher(row.allowed_ips),
        limits: limitSubjects(null, null, row.id, row.rate_limits),
        actor: {
          kind: "credential",
          credentialId: row.id,
          companyId: row.company_id,
          environment: row.environment,
          merchantAccountId: row.merchant_account_id,
          permissions,
          permissionSet: new Set(permissions),
        },
      };
    } else {
      return failure("MALFORMED");
    }
    const now = this.deps.clock();
    let code = decide(subject, input, now);
    let limit: LimitDecision | null = null;
    // Only a request that would be allowed counts against the limits.
    if (code === "VALID" && subject.limits.length > 0) {
      limit = await this.deps.limiter.consume(subject.limits, now.getTime());
      if (!limit.allowed) code = "RATE_LIMITED";
      if (this.deps.stats) this.deps.stats[limit.allowed ? "rateLimitAllowed" : "rateLimitRefused"]++;
    }
    // Credits are spent last, by a request allowed in every other way (its rate limits counted it
    // already), so nothing refused for another reason costs a credit.
    let spent: Spent | null = null;
    if (code === "VALID" && spends && subject.creditsFamily && subject.keyId !== null) {
      spent = await this.deps.credits.spend(
        {
          keyId: subject.keyId,
          familyId: subject.creditsFamily,
          companyId: subject.companyId,
          environment: subject.environment ?? "live",
          merchantAccountId: subject.actor.merchantAccountId,
        },
        input.cost ?? 1,
        now,
      );
      if (spent !== null && !spent.allowed) code = "USAGE_EXCEEDED";
    }
    if (subject.keyId !== null)
      this.deps.usage.record(subject.keyId, now, input.ip ?? null, code === "VALID");
    return { result: answer(subject, code, limit, spent), subject, limit };
  }
}
