import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import type { LimitSubject, RateLimiter } from "../cluster/rate-limiter.ts";
import { actingEnvironment } from "../core/access/environments.ts";
import { credentialPermissions, effectivePermissions } from "../core/access/grants.ts";
import { assertCompanyLevel } from "../core/access/merchant-accounts.ts";
import { actorRef } from "../core/actor.ts";
import type { Catalog } from "../core/catalog.ts";
import { LatchkeyError } from "../core/errors.ts";
import { hashToken } from "../core/hashing.ts";
import { newId } from "../core/ids.ts";
import { type Environment, parseToken } from "../core/key-format.ts";
import {
  DEFAULT_LEAK_POLICY,
  type LeakOutcome,
  type LeakPolicyAction,
  type LeakReporter,
  leakOutcome,
} from "../core/leaks.ts";
import type { CompiledLimit } from "../core/rate-limit.ts";
import { verifyScanningSignature } from "../core/secret-scanning.ts";
import type { KeyView, LeakPolicyView } from "../core/views.ts";
import { credentials, type Db, keyLeaks } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import type { AccessGuard } from "./access.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import type { ScanningKeyFile } from "./scanning-keys.ts";
import { keyStatus, keyView, withLeaks } from "./views.ts";

/** One found token and where it was found. */
export interface LeakReport {
  token: string;
  url?: string | null | undefined;
  source?: string | null | undefined;
}

export interface LeakServiceDeps {
  db: Kysely<Database>;
  catalog: Catalog;
  secret: string;
  clock: () => Date;
  audit: AuditService;
  events: EventOutbox;
  changes: Changes;
  guard: AccessGuard;
  limiter: RateLimiter;
  /** Public reports per client address (LATCHKEY_LEAK_REPORT_RATE_LIMIT); empty: no limit. */
  reportLimits: readonly CompiledLimit[];
  /** GitHub's public keys (LATCHKEY_GITHUB_SECRET_SCANNING_KEYS); null: GitHub reports are not taken. */
  scanningKeys: ScanningKeyFile | null;
  onBackgroundError?: ((err: unknown) => void) | undefined;
}

const ENVIRONMENTS: readonly Environment[] = ["live", "test"];

/**
 * Keys found in public. A report that matches a key is recorded (every time: the history says each
 * place it was found), audited with where it was found, and handled as the company's policy for the
 * key's environment says: revoked at once, or only notified. The webhook `key.leaked` is emitted for
 * the first report of a key and for each new place it is found, not for a repeat of the same place, so
 * a scanner that reports one commit many times does not page anyone many times. A report that matches
 * nothing does nothing at all.
 */
export class LeakService {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly deps: LeakServiceDeps) {}

  /** Whether GitHub's reports are taken here (a keys file is configured). */
  get acceptsGitHub(): boolean {
    return this.deps.scanningKeys !== null;
  }

  /** Whether GitHub signed `body` with one of the keys in the operator's file; throws when unconfigured. */
  async verifyGitHubSignature(
    keyId: string | undefined,
    signature: string | undefined,
    body: Buffer,
  ): Promise<boolean> {
    const file = this.deps.scanningKeys;
    if (file === null) throw new LatchkeyError("SECRET_SCANNING_NOT_CONFIGURED");
    return verifyScanningSignature(await file.current(), keyId, signature, body);
  }

  /**
   * Handles each report in its own transaction and says, in order, whether it was one of our keys
   * (active, expired or already revoked). `ctx` is the reporter's request (platform actor, its address).
   */
  async report(reports: readonly LeakReport[], reporter: LeakReporter, ctx: Ctx): Promise<boolean[]> {
    const out: boolean[] = [];
    for (const report of reports) out.push(await this.reportOne(report, reporter, ctx));
    return out;
  }

  /**
   * A public report: counted against the address's limit at once (429 over it), then handled after
   * the caller has had its answer, so neither the answer nor its timing says whether the key exists.
   */
  async submitPublic(report: LeakReport, ctx: Ctx): Promise<void> {
    await this.throttle(ctx.ip);
    const work = this.reportOne(report, "public", ctx).then(
      () => {},
      (err) => this.deps.onBackgroundError?.(err),
    );
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** Resolves once every public report accepted so far has been handled (shutdown, tests). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async throttle(ip: string | null): Promise<void> {
    if (this.deps.reportLimits.length === 0) return;
    const subjects: LimitSubject[] = [
      { id: `leak-report-ip:${ip ?? "unknown"}`, limits: this.deps.reportLimits },
    ];
    const decision = await this.deps.limiter.consume(subjects, this.deps.clock().getTime());
    if (!decision.allowed) {
      throw new LatchkeyError("RATE_LIMITED", "Too many leak reports. Try again later.", {
        retry_after: decision.retryAfterSeconds,
      });
    }
  }

  private async reportOne(report: LeakReport, reporter: LeakReporter, ctx: Ctx): Promise<boolean> {
    const parsed = parseToken(report.token);
    // The hash is computed for a malformed token too, so a made-up token costs what a real one does.
    const hash = hashToken(this.deps.secret, report.token);
    if (parsed === null) return false;
    const column = parsed.kind === "sk" ? "key_hash" : "secret_hash";
    const found = await this.deps.db
      .selectFrom("api_keys")
      .select(["id", "company_id"])
      .where(column, "=", hash)
      .executeTakeFirst();
    if (!found) return false;
    const where = { url: clip(report.url, 2048), source: clip(report.source, 200) };
    const outcome = await this.deps.db
      .transaction()
      .execute((tx) => this.handle(tx, found.id, where, reporter, ctx));
    if (outcome.revoked) {
      this.deps.changes.emit({
        kind: "key",
        keyId: found.id,
        companyId: found.company_id,
        environment: outcome.environment,
      });
    }
    if (outcome.emitted) this.deps.events.committed();
    return true;
  }

  private async handle(
    tx: Db,
    keyId: string,
    where: { url: string | null; source: string | null },
    reporter: LeakReporter,
    ctx: Ctx,
  ): Promise<{ revoked: boolean; emitted: boolean; environment: Environment }> {
    const row = await tx
      .selectFrom("api_keys")
      .selectAll()
      .where("id", "=", keyId)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const now = this.deps.clock();
    const companyId = row.company_id;
    const environment = row.environment;
    const target = { type: "key", id: row.id };
    // A platform verify key belongs to no company and has no policy: it is revoked, as a live key is by
    // default, and the platform's own chain records it.
    const policy = companyId === null ? "revoke" : await this.policyIn(tx, companyId, environment);
    const action: LeakOutcome = leakOutcome(policy, row.status);
    if (action === "revoked") {
      await tx
        .updateTable("api_keys")
        .set({ status: "revoked", revoked_at: now })
        .where("id", "=", row.id)
        .execute();
      await this.deps.audit.append(tx, ctx, {
        action: "key.revoked",
        companyId,
        environment,
        merchantAccountId: row.merchant_account_id,
        target,
        changes: {
          before: { status: keyStatus(row, now) },
          after: { status: "revoked" },
          name: row.name,
          prefix: row.prefix,
          reason: "leaked",
        },
      });
    }
    const found = { reporter, url: where.url, source: where.source, reported_at: now.toISOString() };
    await this.deps.audit.append(tx, ctx, {
      action: "key.leaked",
      companyId,
      environment,
      merchantAccountId: row.merchant_account_id,
      target,
      changes: { ...found, action, name: row.name, prefix: row.prefix },
    });
    if (companyId === null) return { revoked: action === "revoked", emitted: false, environment };
    const news = !(await keyLeaks.seenAt(tx, row.id, where.url));
    await tx
      .insertInto("key_leaks")
      .values({
        id: newId("leak", now),
        key_id: row.id,
        company_id: companyId,
        environment,
        reporter,
        url: where.url,
        source: where.source,
        action,
        reported_at: now,
      })
      .execute();
    if (news) {
      const credential =
        row.credential_id === null ? undefined : await credentials.get(tx, companyId, row.credential_id);
      const current = action === "revoked" ? { ...row, status: "revoked" as const, revoked_at: now } : row;
      const effective = {
        ...current,
        permissions: effectivePermissions(
          row.permissions,
          credential ? credentialPermissions(this.deps.catalog, credential) : null,
        ),
      };
      const [view] = await withLeaks(tx, [keyView(effective, this.deps.catalog, now)]);
      await this.deps.events.emit(tx, {
        companyId,
        environment,
        type: "key.leaked",
        // The key's view, as the API shows it, with where it was found and what was done.
        data: { ...(view as KeyView), found: { reporter, url: where.url, source: where.source }, action },
      });
    }
    return { revoked: action === "revoked", emitted: news, environment };
  }

  private async policyIn(db: Db, companyId: string, environment: Environment): Promise<LeakPolicyAction> {
    const row = await db
      .selectFrom("leak_policies")
      .select("action")
      .where("company_id", "=", companyId)
      .where("environment", "=", environment)
      .executeTakeFirst();
    return row?.action ?? DEFAULT_LEAK_POLICY[environment];
  }

  /** The company's policy for each environment the actor may see (a test caller: test only). */
  async policies(companyId: string, actor: Ctx["actor"]): Promise<LeakPolicyView[]> {
    // A company setting, read and changed at company level (as webhooks and the expiry policy are).
    assertCompanyLevel(actor);
    const rows = await this.deps.db
      .selectFrom("leak_policies")
      .selectAll()
      .where("company_id", "=", companyId)
      .execute();
    const shown = actingEnvironment(actor) === "test" ? (["test"] as const) : ENVIRONMENTS;
    return shown.map((environment) => {
      const row = rows.find((r) => r.environment === environment);
      return {
        environment,
        action: row?.action ?? DEFAULT_LEAK_POLICY[environment],
        is_default: row === undefined,
        updated_at: row ? row.updated_at.toISOString() : null,
      };
    });
  }

  /** Owners only (POLICY), with a fresh code; a test caller may set the test policy only. */
  async setPolicy(
    companyId: string,
    input: { environment?: Environment | undefined; action: LeakPolicyAction },
    given: Ctx,
  ): Promise<LeakPolicyView> {
    // The company's policy, as its reading is: not one merchant account's to set.
    assertCompanyLevel(given.actor);
    const ctx = await this.deps.guard.confirm(given, "leak_policy.update", input);
    const environment = input.environment ?? actingEnvironment(ctx.actor);
    if (environment === "live" && actingEnvironment(ctx.actor) === "test") {
      throw new LatchkeyError("ENVIRONMENT_NOT_ALLOWED", "A test caller sets the test leak policy only.", {
        field: "environment",
      });
    }
    const now = this.deps.clock();
    await this.deps.db.transaction().execute(async (tx) => {
      const before = await this.policyIn(tx, companyId, environment);
      await tx
        .insertInto("leak_policies")
        .values({
          company_id: companyId,
          environment,
          action: input.action,
          updated_at: now,
          updated_by: actorRef(ctx.actor),
        })
        .onConflict((oc) =>
          oc.columns(["company_id", "environment"]).doUpdateSet({
            action: input.action,
            updated_at: now,
            updated_by: actorRef(ctx.actor),
          }),
        )
        .execute();
      await this.deps.audit.append(tx, ctx, {
        action: "leak_policy.changed",
        companyId,
        environment,
        target: { type: "leak_policy", id: environment },
        changes: { before: { action: before }, after: { action: input.action } },
      });
    });
    return { environment, action: input.action, is_default: false, updated_at: now.toISOString() };
  }
}

/** A reporter's text, cut to what is kept; empty is none. */
function clip(value: string | null | undefined, max: number): string | null {
  if (value === undefined || value === null) return null;
  // PostgreSQL's text and jsonb refuse NUL and lone surrogates: a reporter's odd bytes must not lose
  // the report (or, for GitHub's batch, answer 500), so they go, and a cut never splits a pair.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what the store refuses
  const odd = /[\u0000\uD800-\uDFFF]/g;
  const clean = value
    .replace(odd, (c, i: number, all: string) => {
      if (c === "\u0000") return "";
      const pairStart = c <= "\uDBFF" && /[\uDC00-\uDFFF]/.test(all[i + 1] ?? "");
      const pairEnd = c >= "\uDC00" && /[\uD800-\uDBFF]/.test(all[i - 1] ?? "");
      return pairStart || pairEnd ? c : "";
    })
    .slice(0, max)
    .replace(/[\uD800-\uDBFF]$/, "");
  return clean === "" ? null : clean;
}
