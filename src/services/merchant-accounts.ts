import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import { assertActsInLive } from "../core/access/environments.ts";
import {
  actingMerchantAccount,
  assertCompanyLevel,
  assertSeesAccount,
  seesAccount,
} from "../core/access/merchant-accounts.ts";
import { type Actor, actorRef } from "../core/actor.ts";
import { LatchkeyError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import type { MerchantAccountView } from "../core/views.ts";
import { type Db, merchantAccounts } from "../store/repositories.ts";
import type { Database, MerchantAccountRow } from "../store/schema.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import { shownTo } from "./views.ts";

export type { MerchantAccountView };

export interface MerchantAccountServiceDeps {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  changes: Changes;
  /** The webhook outbox (merchant_account.created/updated), written with the change. */
  events: EventOutbox;
}

export interface CreateMerchantAccountInput {
  name: string;
  code: string;
}

export interface UpdateMerchantAccountInput {
  name?: string | undefined;
  status?: "active" | "inactive" | undefined;
}

function view(row: MerchantAccountRow, counts: { api_users: number; keys: number }): MerchantAccountView {
  return {
    id: row.id,
    name: row.name,
    code: row.code,
    status: row.status,
    api_user_count: counts.api_users,
    key_count: counts.keys,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * A company's merchant accounts (the Adyen model: a company account above merchant accounts). They
 * are company-wide: one account has live and test API users under it. Never deleted; an inactive one
 * stops its API users' keys and passwords until it is reactivated. Set up by the company as a whole:
 * a merchant account's own caller reads its account and nothing else.
 */
export class MerchantAccountService {
  constructor(private readonly deps: MerchantAccountServiceDeps) {}

  private async views(db: Db, companyId: string, rows: MerchantAccountRow[]): Promise<MerchantAccountView[]> {
    const counts = await merchantAccounts.counts(
      db,
      companyId,
      rows.map((r) => r.id),
    );
    return rows.map((r) => view(r, counts.get(r.id) ?? { api_users: 0, keys: 0 }));
  }

  /** An account of the company's that the actor may see, or 404. */
  private async found(db: Db, companyId: string, id: string, actor: Actor, lock = false) {
    const row = await merchantAccounts.get(db, companyId, id, { lock });
    if (!row) throw new LatchkeyError("NOT_FOUND", "No such merchant account.");
    assertSeesAccount(actor, row.id, "merchant account");
    return row;
  }

  async create(companyId: string, input: CreateMerchantAccountInput, ctx: Ctx): Promise<MerchantAccountView> {
    assertCompanyLevel(ctx.actor);
    // An account spans live and test, and deactivating one stops live keys: set up by live callers.
    assertActsInLive(ctx.actor);
    const now = this.deps.clock();
    const row: MerchantAccountRow = {
      id: newId("ma", now),
      company_id: companyId,
      name: input.name,
      code: input.code,
      status: "active",
      created_at: now,
      created_by: actorRef(ctx.actor),
      updated_at: now,
    };
    const made = await this.deps.db.transaction().execute(async (tx) => {
      // Two creates of one code race to the unique index; the loser is told as this one is.
      if (await merchantAccounts.codeTaken(tx, companyId, input.code)) {
        throw new LatchkeyError("CONFLICT", "The company has a merchant account with this code.", {
          field: "code",
        });
      }
      await merchantAccounts.insert(tx, row);
      await this.deps.audit.append(tx, ctx, {
        action: "merchant_account.created",
        companyId,
        merchantAccountId: row.id,
        target: { type: "merchant_account", id: row.id },
        changes: { after: { name: row.name, code: row.code, status: row.status } },
      });
      const shown = view(row, { api_users: 0, keys: 0 });
      // An account spans both worlds and is set up in live: its events go to live endpoints, as
      // people's do.
      await this.deps.events.emit(tx, {
        companyId,
        environment: "live",
        type: "merchant_account.created",
        data: shown,
      });
      return shown;
    });
    this.deps.events.committed();
    return made;
  }

  /** A merchant account's caller lists its own account only. */
  async list(
    companyId: string,
    filters: { status?: "active" | "inactive" | undefined },
    page: { cursor?: string | undefined; limit: number },
    actor: Actor,
  ): Promise<{ merchant_accounts: MerchantAccountView[]; next_cursor: string | null }> {
    const acting = actingMerchantAccount(actor);
    const rows = await merchantAccounts.list(this.deps.db, companyId, {
      after: page.cursor,
      limit: page.limit + 1,
      status: filters.status,
      ...(acting === null ? {} : { only: acting }),
    });
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    return {
      merchant_accounts: await shownTo(this.deps.db, actor, await this.views(this.deps.db, companyId, shown)),
      next_cursor: more ? (shown.at(-1)?.id ?? null) : null,
    };
  }

  async get(companyId: string, id: string, actor: Actor): Promise<MerchantAccountView> {
    const row = await this.found(this.deps.db, companyId, id, actor);
    return (
      await shownTo(this.deps.db, actor, await this.views(this.deps.db, companyId, [row]))
    )[0] as MerchantAccountView;
  }

  async update(
    companyId: string,
    id: string,
    input: UpdateMerchantAccountInput,
    ctx: Ctx,
  ): Promise<MerchantAccountView> {
    let statusChanged = false;
    let changed = false;
    const updated = await this.deps.db.transaction().execute(async (tx) => {
      const row = await this.found(tx, companyId, id, ctx.actor, true);
      // Its own caller sees it but may not change it (nor so lift its own deactivation).
      assertCompanyLevel(ctx.actor);
      assertActsInLive(ctx.actor);
      const next: MerchantAccountRow = {
        ...row,
        name: input.name ?? row.name,
        status: input.status ?? row.status,
        updated_at: this.deps.clock(),
      };
      const events: [string, { before: Record<string, unknown>; after: Record<string, unknown> }][] = [];
      if (next.status !== row.status) {
        statusChanged = true;
        events.push([
          next.status === "inactive" ? "merchant_account.deactivated" : "merchant_account.reactivated",
          { before: { status: row.status }, after: { status: next.status } },
        ]);
      }
      if (next.name !== row.name) {
        events.push(["merchant_account.updated", { before: { name: row.name }, after: { name: next.name } }]);
      }
      if (events.length === 0) return row;
      await merchantAccounts.update(tx, companyId, id, {
        name: next.name,
        status: next.status,
        updated_at: next.updated_at,
      });
      for (const [action, changes] of events) {
        await this.deps.audit.append(tx, ctx, {
          action,
          companyId,
          merchantAccountId: id,
          target: { type: "merchant_account", id },
          changes,
        });
      }
      // One webhook event for the change, whatever it changed: the view says what it is now.
      const [shown] = await this.views(tx, companyId, [next]);
      await this.deps.events.emit(tx, {
        companyId,
        environment: "live",
        type: "merchant_account.updated",
        data: { ...shown, previous: { name: row.name, status: row.status } },
      });
      changed = true;
      return next;
    });
    if (changed) this.deps.events.committed();
    if (statusChanged) {
      // Every cached answer for its API users' keys carries the account's status: drop them, here and
      // (through the bus and the verify-key change stream) on every other node and SDK cache.
      for (const credential of await merchantAccounts.credentialIds(this.deps.db, companyId, id)) {
        this.deps.changes.emit({
          kind: "credential",
          credentialId: credential.id,
          companyId,
          environment: credential.environment,
          merchantAccountId: id,
        });
      }
    }
    return (await this.views(this.deps.db, companyId, [updated]))[0] as MerchantAccountView;
  }
}

/**
 * The account a new API user is made in, checked: null (company-level) or one of the company's that
 * the actor may see (another's is not there: 404) and that is active.
 */
export async function usableMerchantAccount(
  db: Db,
  companyId: string,
  id: string | null,
  actor: Actor,
): Promise<string | null> {
  if (id === null) return null;
  const row = await merchantAccounts.get(db, companyId, id);
  if (!row || !seesAccount(actor, row.id)) {
    throw new LatchkeyError("NOT_FOUND", "No such merchant account.", { field: "merchant_account_id" });
  }
  if (row.status !== "active") throw new LatchkeyError("MERCHANT_ACCOUNT_INACTIVE");
  return row.id;
}
