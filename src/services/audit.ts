import { type Kysely, sql } from "kysely";
import { actingEnvironment, assertActsInLive, sees, seesActor } from "../core/access/environments.ts";
import {
  actingMerchantAccount,
  assertCompanyLevel,
  listedMerchantAccount,
  seesAccount,
  seesActorAccount,
} from "../core/access/merchant-accounts.ts";
import type { Actor } from "../core/actor.ts";
import { actorLabel, actorRef } from "../core/actor.ts";
import {
  type ChainCheck,
  type ChainedEvent,
  checkChain,
  eventHash,
  GENESIS_HASH,
} from "../core/audit-chain.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import type { AuditEvent } from "../core/views.ts";
import type { Db } from "../store/repositories.ts";
import type { AuditEventRow, Database } from "../store/schema.ts";
import type { Ctx } from "./actor.ts";

/** Events with no company (platform verify keys, logins for unknown emails) form the platform's chain. */
export const PLATFORM_CHAIN = "platform";

export interface AuditEntry {
  action: string;
  companyId: string | null;
  target?: { type: string; id: string } | undefined;
  /**
   * The environment of what the event is about (a key's, an API user's). Test callers read test events
   * only; company-wide events (people, sign-ins) leave it out and are read by live callers.
   */
  environment?: Environment | undefined;
  /** The merchant account of what the event is about; null or absent: company-level. */
  merchantAccountId?: string | null | undefined;
  /** Before/after of what changed. Never a secret: callers pass field values, not keys or passwords. */
  changes?: Record<string, unknown> | undefined;
}

export interface AuditFilters {
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  merchantAccountId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}

function toChained(row: AuditEventRow): ChainedEvent & { hash: string } {
  return {
    id: row.id,
    chain: row.chain,
    seq: Number(row.seq),
    at: row.at.toISOString(),
    company_id: row.company_id,
    actor_type: row.actor_type,
    actor_id: row.actor_id,
    actor_label: row.actor_label,
    action: row.action,
    target_type: row.target_type,
    target_id: row.target_id,
    changes: row.changes,
    ip: row.ip,
    user_agent: row.user_agent,
    totp_used: row.totp_used,
    prev_hash: row.prev_hash,
    hash: row.hash,
    // Events from before environments existed have none, and hashed without the fields.
    ...(row.environment ? { environment: row.environment } : {}),
    ...(row.actor_environment ? { actor_environment: row.actor_environment } : {}),
    ...(row.merchant_account_id ? { merchant_account_id: row.merchant_account_id } : {}),
    ...(row.actor_merchant_account_id ? { actor_merchant_account_id: row.actor_merchant_account_id } : {}),
  };
}

/** An event as `viewer` may read it: a key or API user of a world it cannot see stays unnamed. */
export function auditView(row: AuditEventRow, viewer: Actor): AuditEvent {
  const named =
    seesActor(viewer, row.actor_type, row.actor_environment) &&
    seesActorAccount(viewer, row.actor_type, row.actor_merchant_account_id);
  return {
    id: row.id,
    seq: Number(row.seq),
    at: row.at.toISOString(),
    action: row.action,
    actor: named
      ? { type: row.actor_type, id: row.actor_id, label: row.actor_label }
      : { type: row.actor_type, id: null, label: null },
    target: row.target_type && row.target_id ? { type: row.target_type, id: row.target_id } : null,
    changes: row.changes,
    ip: row.ip,
    user_agent: row.user_agent,
    totp_used: row.totp_used,
    environment: row.environment,
    merchant_account_id: row.merchant_account_id,
  };
}

/**
 * The tamper-evident trail. An event is appended inside the transaction of the change it describes,
 * so neither exists without the other; each holds the SHA-256 of its predecessor in its company's chain.
 */
export class AuditService {
  constructor(private readonly deps: { db: Kysely<Database>; clock: () => Date }) {}

  async append(tx: Db, ctx: Ctx, entry: AuditEntry): Promise<void> {
    const chain = entry.companyId ?? PLATFORM_CHAIN;
    // The head row serialises appends to one chain: whoever holds its lock writes the next link.
    await sql`INSERT INTO audit_heads (chain, seq, hash) VALUES (${chain}, 0, ${GENESIS_HASH})
              ON CONFLICT (chain) DO NOTHING`.execute(tx);
    const head = await tx
      .selectFrom("audit_heads")
      .select(["seq", "hash"])
      .where("chain", "=", chain)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const now = this.deps.clock();
    const actorAccount = actingMerchantAccount(ctx.actor);
    const event: ChainedEvent = {
      id: newId("evt", now),
      chain,
      seq: Number(head.seq) + 1,
      at: now.toISOString(),
      company_id: entry.companyId,
      actor_type: ctx.actor.kind,
      actor_id: ctx.actor.kind === "platform" ? null : actorRef(ctx.actor),
      actor_label: actorLabel(ctx.actor),
      action: entry.action,
      target_type: entry.target?.type ?? null,
      target_id: entry.target?.id ?? null,
      // Round-trip through JSON so the hash covers exactly what jsonb gives back.
      changes: JSON.parse(JSON.stringify(entry.changes ?? {})),
      ip: ctx.ip,
      user_agent: ctx.userAgent ? ctx.userAgent.slice(0, 512) : null,
      totp_used: ctx.totpUsed,
      prev_hash: head.hash,
      ...(entry.environment ? { environment: entry.environment } : {}),
      ...(ctx.actor.kind === "platform" ? {} : { actor_environment: ctx.actor.environment }),
      ...(entry.merchantAccountId ? { merchant_account_id: entry.merchantAccountId } : {}),
      ...(actorAccount ? { actor_merchant_account_id: actorAccount } : {}),
    };
    const hash = eventHash(event);
    await tx
      .insertInto("audit_events")
      .values({ ...event, at: now, changes: JSON.stringify(event.changes), hash })
      .execute();
    await tx.updateTable("audit_heads").set({ seq: event.seq, hash }).where("chain", "=", chain).execute();
  }

  /** Appends an event on its own, for things that happen without a change (a failed login). */
  record(ctx: Ctx, entry: AuditEntry): Promise<void> {
    return this.deps.db.transaction().execute((tx) => this.append(tx, ctx, entry));
  }

  /** A test caller (`actor`) reads the events about test objects only. */
  async list(
    companyId: string,
    filters: AuditFilters,
    page: { cursor?: number | undefined; limit: number },
    actor: Actor,
  ): Promise<{ events: AuditEvent[]; next_cursor: string | null }> {
    let q = this.deps.db.selectFrom("audit_events").selectAll().where("chain", "=", companyId);
    // A merchant account's caller reads the events about its account's objects only.
    const account = listedMerchantAccount(actor, filters.merchantAccountId);
    if (account !== undefined) q = q.where("merchant_account_id", "=", account);
    const acting = actingMerchantAccount(actor);
    if (acting !== null && filters.actor) {
      // Asking for a company-level (or another account's) actor by id must not tell whether it acted.
      q = q.where((eb) =>
        eb.or([eb("actor_type", "in", ["platform", "system"]), eb("actor_merchant_account_id", "=", acting)]),
      );
    }
    if (actingEnvironment(actor) === "test") {
      q = q.where("environment", "=", "test");
      // Asking for a live key or API user by id must not tell whether it acted.
      if (filters.actor) {
        q = q.where((eb) =>
          eb.or([eb("actor_type", "not in", ["key", "credential"]), eb("actor_environment", "=", "test")]),
        );
      }
    }
    if (filters.actor) {
      const actor = filters.actor;
      q = q.where((eb) => eb.or([eb("actor_id", "=", actor), eb("actor_label", "=", actor)]));
    }
    if (filters.action) {
      q = filters.action.endsWith(".*")
        ? q.where("action", "like", `${filters.action.slice(0, -2).replace(/[%_\\]/g, "\\$&")}.%`)
        : q.where("action", "=", filters.action);
    }
    if (filters.target) q = q.where("target_id", "=", filters.target);
    if (filters.since) q = q.where("at", ">=", filters.since);
    if (filters.until) q = q.where("at", "<", filters.until);
    if (page.cursor !== undefined) q = q.where("seq", "<", String(page.cursor));
    const rows = await q
      .orderBy("seq", "desc")
      .limit(page.limit + 1)
      .execute();
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    const last = shown.at(-1);
    return {
      events: await this.withTargetLabels(
        companyId,
        shown.map((row) => auditView(row, actor)),
        actor,
      ),
      next_cursor: more && last ? String(Number(last.seq)) : null,
    };
  }

  /**
   * Names the targets of a page of events by what they are called now, so a reader sees "Checkout
   * backend", not an id. Looked up at read time rather than recorded: the event and its hash stay as
   * they were, and a renamed object shows its new name. A key or API user of a world the reader cannot
   * see stays unnamed, as its actor would.
   */
  private async withTargetLabels(companyId: string, events: AuditEvent[], actor: Actor) {
    const ids = (type: string) => [
      ...new Set(events.flatMap((e) => (e.target?.type === type ? [e.target.id] : []))),
    ];
    const db = this.deps.db;
    const [keyIds, credentialIds, userIds, webhookIds] = [
      ids("key"),
      ids("credential"),
      ids("user"),
      ids("webhook"),
    ];
    const [keys, creds, users, hooks] = await Promise.all([
      keyIds.length === 0
        ? []
        : db
            .selectFrom("api_keys")
            .select(["id", "name", "prefix", "credential_id", "environment"])
            .where("company_id", "=", companyId)
            .where("id", "in", keyIds)
            .execute(),
      credentialIds.length === 0
        ? []
        : db
            .selectFrom("credentials")
            .select(["id", "name", "environment"])
            .where("company_id", "=", companyId)
            .where("id", "in", credentialIds)
            .execute(),
      userIds.length === 0
        ? []
        : db.selectFrom("users").select(["id", "email"]).where("id", "in", userIds).execute(),
      webhookIds.length === 0
        ? []
        : db
            .selectFrom("webhook_endpoints")
            .select(["id", "url", "environment"])
            .where("company_id", "=", companyId)
            .where("id", "in", webhookIds)
            .execute(),
    ]);
    type Named = { label: string; credential_id?: string | null; environment: Environment | null };
    const names = new Map<string, Named>();
    for (const k of keys)
      names.set(`key:${k.id}`, {
        label: `${k.name} (${k.prefix}…)`,
        credential_id: k.credential_id,
        environment: k.environment,
      });
    for (const c of creds) names.set(`credential:${c.id}`, { label: c.name, environment: c.environment });
    // People are company-wide, like their sign-ins.
    for (const u of users) names.set(`user:${u.id}`, { label: u.email, environment: null });
    for (const w of hooks) names.set(`webhook:${w.id}`, { label: w.url, environment: w.environment });
    return events.map((e) => {
      if (!e.target) return e;
      const found = names.get(`${e.target.type}:${e.target.id}`);
      const visible = found !== undefined && (found.environment === null || sees(actor, found.environment));
      return {
        ...e,
        target: {
          ...e.target,
          label: visible ? found.label : null,
          ...(e.target.type === "key"
            ? { credential_id: visible ? (found.credential_id ?? null) : null }
            : {}),
        },
      };
    });
  }

  /** Every event of a company's chain, oldest first, in pages (for export and verification). */
  async *stream(chain: string, pageSize = 1000): AsyncGenerator<AuditEventRow> {
    let after = 0;
    for (;;) {
      const rows = await this.deps.db
        .selectFrom("audit_events")
        .selectAll()
        .where("chain", "=", chain)
        .where("seq", ">", String(after))
        .orderBy("seq", "asc")
        .limit(pageSize)
        .execute();
      yield* rows;
      if (rows.length < pageSize) return;
      after = Number(rows.at(-1)?.seq);
    }
  }

  /** A company's events for export, oldest first, as `actor` may read them (a test caller: test events). */
  async *export(companyId: string, actor: Actor): AsyncGenerator<AuditEvent> {
    // Named as the list names them, a batch at a time, so an export reads like the console's list.
    let batch: AuditEvent[] = [];
    for await (const row of this.stream(companyId)) {
      if (sees(actor, row.environment) && seesAccount(actor, row.merchant_account_id))
        batch.push(auditView(row, actor));
      if (batch.length === 500) {
        yield* await this.withTargetLabels(companyId, batch, actor);
        batch = [];
      }
    }
    if (batch.length > 0) yield* await this.withTargetLabels(companyId, batch, actor);
  }

  /** A company's chain, checked; it spans both environments, so a test caller may not ask. */
  verifyCompany(companyId: string, actor: Actor): Promise<ChainCheck> {
    assertActsInLive(actor);
    assertCompanyLevel(actor);
    return this.verify(companyId);
  }

  async verify(chain: string): Promise<ChainCheck> {
    const head = await this.deps.db
      .selectFrom("audit_heads")
      .select(["seq", "hash"])
      .where("chain", "=", chain)
      .executeTakeFirst();
    const events: (ChainedEvent & { hash: string })[] = [];
    for await (const row of this.stream(chain)) events.push(toChained(row));
    return checkChain(events, head ? { seq: Number(head.seq), hash: head.hash } : null);
  }

  /** Every chain: the platform's and one per company (for the operator and `latchkey audit verify`). */
  async verifyAll(): Promise<{ valid: boolean; chains: (ChainCheck & { chain: string })[] }> {
    const chains = [];
    for (const chain of await this.chains()) chains.push({ chain, ...(await this.verify(chain)) });
    return { valid: chains.every((c) => c.valid), chains };
  }

  /** The chains there are: the platform's and one per company. */
  async chains(): Promise<string[]> {
    const rows = await this.deps.db.selectFrom("audit_heads").select("chain").orderBy("chain").execute();
    return rows.map((r) => r.chain);
  }
}
