import type { Kysely } from "kysely";
import {
  actingEnvironment,
  assertMayChange,
  assertMayCreateIn,
  assertSees,
  listedEnvironment,
} from "../core/access/environments.ts";
import { assertCompanyLevel } from "../core/access/merchant-accounts.ts";
import { type Actor, actorRef } from "../core/actor.ts";
import { LatchkeyError } from "../core/errors.ts";
import { EVENT_TYPES, isEventType } from "../core/events.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import type { SecretBox } from "../core/secret-box.ts";
import type { WebhookDeliveryView, WebhookView, WebhookWithSecret } from "../core/webhook-views.ts";
import {
  checkWebhookUrl,
  newSigningSecret,
  SECRET_OVERLAP_SECONDS,
  TEST_EVENT_TYPE,
} from "../core/webhooks.ts";
import type { Db } from "../store/repositories.ts";
import type { Database, WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow } from "../store/schema.ts";
import type { AccessGuard } from "./access.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import type { WebhookDestinations } from "./webhook-destinations.ts";

export interface CreateWebhookInput {
  url: string;
  events?: string[] | undefined;
  description?: string | undefined;
}

export interface UpdateWebhookInput {
  url?: string | undefined;
  /** null: every event type again. */
  events?: string[] | null | undefined;
  description?: string | undefined;
  status?: "enabled" | "disabled" | undefined;
}

export interface WebhookServiceDeps {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  events: EventOutbox;
  guard: AccessGuard;
  /** Seals signing secrets: they must be read back to sign. */
  box: SecretBox;
  destinations: WebhookDestinations;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function webhookView(row: WebhookEndpointRow): WebhookView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    environment: row.environment,
    events: row.events,
    status: row.status,
    disabled_reason: row.disabled_reason,
    disabled_at: iso(row.disabled_at),
    previous_secret_expires_at: iso(row.previous_secret_expires_at),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    updated_at: row.updated_at.toISOString(),
  };
}

/** What the audit trail keeps of an endpoint: never its secret. */
function auditFields(row: Pick<WebhookEndpointRow, "url" | "events" | "description" | "environment">) {
  return { url: row.url, events: row.events, description: row.description, environment: row.environment };
}

/** The event types as given: each known, none twice; omitted means every type. */
function checkEventTypes(types: string[] | null | undefined): string[] | null {
  if (types === undefined || types === null) return null;
  const unknown = types.find((t) => !isEventType(t));
  if (unknown !== undefined) {
    throw new LatchkeyError("UNKNOWN_EVENT_TYPE", `"${unknown}" is not one of ${EVENT_TYPES.join(", ")}.`, {
      field: "events",
    });
  }
  return [...new Set(types)];
}

/**
 * A company's webhook endpoints: each of one environment (the caller's acting one), with a signing
 * secret shown once and sealed at rest. Delivery itself is the deliverer's (webhook-deliverer.ts).
 */
export class WebhookService {
  constructor(private readonly deps: WebhookServiceDeps) {}

  private async url(text: string): Promise<string> {
    const url = checkWebhookUrl(text);
    await this.deps.destinations.check(url);
    return url.href;
  }

  private async found(db: Db, companyId: string, id: string, actor: Actor, lock = false) {
    let query = db
      .selectFrom("webhook_endpoints")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("id", "=", id);
    if (lock) query = query.forUpdate();
    const row = await query.executeTakeFirst();
    if (!row) throw new LatchkeyError("NOT_FOUND", "No such webhook endpoint.");
    assertSees(actor, row.environment, "webhook endpoint");
    return row;
  }

  async create(companyId: string, input: CreateWebhookInput, given: Ctx): Promise<WebhookWithSecret> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const environment = actingEnvironment(given.actor);
    assertMayCreateIn(given.actor, environment);
    const events = checkEventTypes(input.events);
    const url = await this.url(input.url);
    const ctx = await this.deps.guard.confirm(given, "webhooks.create", input);
    const now = this.deps.clock();
    const secret = newSigningSecret();
    const row: WebhookEndpointRow = {
      id: newId("wh", now),
      company_id: companyId,
      environment,
      url,
      description: input.description ?? "",
      events,
      status: "enabled",
      disabled_reason: null,
      disabled_at: null,
      secret_sealed: this.deps.box.seal(secret),
      previous_secret_sealed: null,
      previous_secret_expires_at: null,
      created_at: now,
      created_by: actorRef(ctx.actor),
      updated_at: now,
    };
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .insertInto("webhook_endpoints")
        .values({ ...row, events: events === null ? null : JSON.stringify(events) })
        .execute();
      await this.deps.audit.append(tx, ctx, {
        action: "webhook.created",
        companyId,
        environment,
        target: { type: "webhook", id: row.id },
        changes: { after: auditFields(row) },
      });
    });
    return { ...webhookView(row), secret };
  }

  /** A test caller lists test endpoints only, whatever it asks for. */
  async list(
    companyId: string,
    filters: { environment?: Environment | undefined },
    page: { cursor?: string | undefined; limit: number },
    actor: Actor,
  ): Promise<{ webhooks: WebhookView[]; next_cursor: string | null }> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(actor);
    let query = this.deps.db
      .selectFrom("webhook_endpoints")
      .selectAll()
      .where("company_id", "=", companyId)
      .orderBy("id", "desc")
      .limit(page.limit + 1);
    const environment = listedEnvironment(actor, filters.environment);
    if (environment) query = query.where("environment", "=", environment);
    if (page.cursor) query = query.where("id", "<", page.cursor);
    const rows = await query.execute();
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    return { webhooks: shown.map(webhookView), next_cursor: more ? (shown.at(-1)?.id ?? null) : null };
  }

  async get(companyId: string, id: string, actor: Actor): Promise<WebhookView> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(actor);
    return webhookView(await this.found(this.deps.db, companyId, id, actor));
  }

  /** Changes the URL, events or description, or disables or re-enables the endpoint. */
  async update(companyId: string, id: string, input: UpdateWebhookInput, given: Ctx): Promise<WebhookView> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const events = input.events === undefined ? undefined : checkEventTypes(input.events);
    const url = input.url === undefined ? undefined : await this.url(input.url);
    const ctx = await this.deps.guard.confirm(given, "webhooks.update", input);
    return this.deps.db.transaction().execute(async (tx) => {
      const row = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "webhook endpoint");
      const now = this.deps.clock();
      const status = input.status ?? row.status;
      const next: WebhookEndpointRow = {
        ...row,
        url: url ?? row.url,
        events: events === undefined ? row.events : events,
        description: input.description ?? row.description,
        status,
        disabled_reason:
          status === "enabled"
            ? null
            : row.status === "disabled"
              ? row.disabled_reason
              : "Disabled by a person.",
        disabled_at: status === "enabled" ? null : (row.disabled_at ?? now),
        updated_at: now,
      };
      const detailsChanged = JSON.stringify(auditFields(row)) !== JSON.stringify(auditFields(next));
      if (!detailsChanged && status === row.status) return webhookView(row);
      await tx
        .updateTable("webhook_endpoints")
        .set({
          url: next.url,
          events: next.events === null ? null : JSON.stringify(next.events),
          description: next.description,
          status: next.status,
          disabled_reason: next.disabled_reason,
          disabled_at: next.disabled_at,
          updated_at: now,
        })
        .where("id", "=", id)
        .execute();
      const target = { type: "webhook", id };
      if (detailsChanged) {
        await this.deps.audit.append(tx, ctx, {
          action: "webhook.updated",
          companyId,
          environment: row.environment,
          target,
          changes: { before: auditFields(row), after: auditFields(next) },
        });
      }
      if (status !== row.status) {
        // Re-enabled: what waited in its queue goes out now, in order.
        if (status === "enabled") {
          await tx
            .updateTable("webhook_deliveries")
            .set({ next_attempt_at: now })
            .where("endpoint_id", "=", id)
            .where("status", "=", "pending")
            .where("next_attempt_at", ">", now)
            .execute();
        }
        await this.deps.audit.append(tx, ctx, {
          action: status === "enabled" ? "webhook.enabled" : "webhook.disabled",
          companyId,
          environment: row.environment,
          target,
          changes: {
            before: { status: row.status, disabled_reason: row.disabled_reason },
            after: { status, disabled_reason: next.disabled_reason },
          },
        });
      }
      return webhookView(next);
    });
  }

  /** Deletes the endpoint and its delivery log; the audit trail keeps that it existed. */
  async remove(companyId: string, id: string, given: Ctx): Promise<WebhookView> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const ctx = await this.deps.guard.confirm(given, "webhooks.delete", undefined);
    return this.deps.db.transaction().execute(async (tx) => {
      const row = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "webhook endpoint");
      await tx.deleteFrom("webhook_endpoints").where("id", "=", id).execute();
      await this.deps.audit.append(tx, ctx, {
        action: "webhook.deleted",
        companyId,
        environment: row.environment,
        target: { type: "webhook", id },
        changes: { before: auditFields(row) },
      });
      return webhookView(row);
    });
  }

  /**
   * A new signing secret, shown once. The one it replaces keeps signing beside it for 24 h (Standard
   * Webhooks allows several signatures), so receivers can switch without missing a delivery; a secret
   * replaced before that stops at once, so at most two ever sign.
   */
  async rotateSecret(companyId: string, id: string, given: Ctx): Promise<WebhookWithSecret> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const ctx = await this.deps.guard.confirm(given, "webhooks.rotate_secret", undefined);
    const secret = newSigningSecret();
    return this.deps.db.transaction().execute(async (tx) => {
      const row = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, row.environment, "webhook endpoint");
      const now = this.deps.clock();
      const next: WebhookEndpointRow = {
        ...row,
        secret_sealed: this.deps.box.seal(secret),
        previous_secret_sealed: row.secret_sealed,
        previous_secret_expires_at: new Date(now.getTime() + SECRET_OVERLAP_SECONDS * 1000),
        updated_at: now,
      };
      await tx
        .updateTable("webhook_endpoints")
        .set({
          secret_sealed: next.secret_sealed,
          previous_secret_sealed: next.previous_secret_sealed,
          previous_secret_expires_at: next.previous_secret_expires_at,
          updated_at: now,
        })
        .where("id", "=", id)
        .execute();
      await this.deps.audit.append(tx, ctx, {
        action: "webhook.secret_rotated",
        companyId,
        environment: row.environment,
        target: { type: "webhook", id },
        changes: { after: { previous_secret_expires_at: iso(next.previous_secret_expires_at) } },
      });
      return { ...webhookView(next), secret };
    });
  }

  /** The endpoint's deliveries, newest first, each with its attempts. */
  async deliveries(
    companyId: string,
    id: string,
    filters: { status?: WebhookDeliveryRow["status"] | undefined },
    page: { cursor?: string | undefined; limit: number },
    actor: Actor,
  ): Promise<{ deliveries: WebhookDeliveryView[]; next_cursor: string | null }> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(actor);
    await this.found(this.deps.db, companyId, id, actor);
    let query = this.deps.db
      .selectFrom("webhook_deliveries as d")
      .innerJoin("events as e", "e.id", "d.event_id")
      .selectAll("d")
      .select("e.type as event_type")
      .where("d.endpoint_id", "=", id)
      // Queue order, not id order: two deliveries made in one millisecond have ids in no set order.
      .orderBy("d.seq", "desc")
      .limit(page.limit + 1);
    if (filters.status) query = query.where("d.status", "=", filters.status);
    const cursor = page.cursor;
    if (cursor) {
      query = query.where("d.seq", "<", (qb) =>
        qb.selectFrom("webhook_deliveries").select("seq").where("id", "=", cursor),
      );
    }
    const rows = await query.execute();
    const more = rows.length > page.limit;
    const shown = more ? rows.slice(0, page.limit) : rows;
    const attempts =
      shown.length === 0
        ? []
        : await this.deps.db
            .selectFrom("webhook_attempts")
            .selectAll()
            .where(
              "delivery_id",
              "in",
              shown.map((r) => r.id),
            )
            .orderBy("attempt")
            .execute();
    const byDelivery = new Map<string, WebhookAttemptRow[]>();
    for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
    return {
      deliveries: shown.map((r) => deliveryView(r, byDelivery.get(r.id) ?? [])),
      next_cursor: more ? (shown.at(-1)?.id ?? null) : null,
    };
  }

  /** Queues a delivery again, due now, with the same event and so the same `webhook-id`. */
  async retry(companyId: string, id: string, deliveryId: string, given: Ctx): Promise<WebhookDeliveryView> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const ctx = await this.deps.guard.confirm(given, "webhooks.retry", undefined);
    const view = await this.deps.db.transaction().execute(async (tx) => {
      const endpoint = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, endpoint.environment, "webhook endpoint");
      const row = await tx
        .selectFrom("webhook_deliveries as d")
        .innerJoin("events as e", "e.id", "d.event_id")
        .selectAll("d")
        .select("e.type as event_type")
        .where("d.endpoint_id", "=", id)
        .where("d.id", "=", deliveryId)
        .forUpdate("d")
        .executeTakeFirst();
      if (!row) throw new LatchkeyError("NOT_FOUND", "No such delivery.");
      const now = this.deps.clock();
      // A retry starts the schedule over: a delivery that had used up its retries would otherwise get
      // one try, and a single failure would disable the endpoint again. Its attempt log is kept.
      await tx
        .updateTable("webhook_deliveries")
        .set({ status: "pending", attempts: 0, next_attempt_at: now, delivered_at: null })
        .where("id", "=", deliveryId)
        .execute();
      await this.deps.audit.append(tx, ctx, {
        action: "webhook.delivery_retried",
        companyId,
        environment: endpoint.environment,
        target: { type: "webhook", id },
        changes: { delivery_id: deliveryId, event_id: row.event_id, before: { status: row.status } },
      });
      return deliveryView(
        { ...row, status: "pending", attempts: 0, next_attempt_at: now, delivered_at: null },
        [],
      );
    });
    this.deps.events.committed();
    return view;
  }

  /**
   * Sends a `webhook.test` event to this endpoint alone (no other endpoint hears it), through the same
   * queue, signing and retries as every event.
   */
  async sendTest(
    companyId: string,
    id: string,
    given: Ctx,
  ): Promise<{ event_id: string; delivery_id: string }> {
    // Webhook endpoints are the company's own: a merchant account's caller has none to manage.
    assertCompanyLevel(given.actor);
    const ctx = await this.deps.guard.confirm(given, "webhooks.test", undefined);
    const sent = await this.deps.db.transaction().execute(async (tx) => {
      const endpoint = await this.found(tx, companyId, id, ctx.actor, true);
      assertMayChange(ctx.actor, endpoint.environment, "webhook endpoint");
      if (endpoint.status !== "enabled") throw new LatchkeyError("WEBHOOK_DISABLED");
      const eventId = await this.deps.events.emit(
        tx,
        {
          companyId,
          environment: endpoint.environment,
          type: TEST_EVENT_TYPE,
          data: { webhook_id: id, message: "A test event from Latchkey." },
        },
        { only: id },
      );
      const delivery = await tx
        .selectFrom("webhook_deliveries")
        .select("id")
        .where("event_id", "=", eventId)
        .executeTakeFirstOrThrow();
      await this.deps.audit.append(tx, ctx, {
        action: "webhook.test_sent",
        companyId,
        environment: endpoint.environment,
        target: { type: "webhook", id },
        changes: { event_id: eventId },
      });
      return { event_id: eventId, delivery_id: delivery.id };
    });
    this.deps.events.committed();
    return sent;
  }
}

export function deliveryView(
  row: WebhookDeliveryRow & { event_type: string },
  attempts: WebhookAttemptRow[],
): WebhookDeliveryView {
  return {
    id: row.id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === "pending" ? iso(row.next_attempt_at) : null,
    last_attempt_at: iso(row.last_attempt_at),
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    delivered_at: iso(row.delivered_at),
    created_at: row.created_at.toISOString(),
    attempt_log: attempts.map((a) => ({
      attempt: a.attempt,
      at: a.started_at.toISOString(),
      duration_ms: a.duration_ms,
      status_code: a.status_code,
      error: a.error,
      next_attempt_at: iso(a.next_attempt_at),
    })),
  };
}
