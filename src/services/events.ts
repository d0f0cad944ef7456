import type { EventType } from "../core/events.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import type { TEST_EVENT_TYPE } from "../core/webhooks.ts";
import { actorEnvironments, type Db } from "../store/repositories.ts";
import type { EventRow } from "../store/schema.ts";

export interface OutgoingEvent {
  companyId: string;
  /** The environment of what the event is about: test keys' events go to test endpoints only. */
  environment: Environment;
  /** `webhook.test` only from the test route, with `only` naming its one endpoint. */
  type: EventType | typeof TEST_EVENT_TYPE;
  /** A view of the object, never a secret: callers pass the same fields the API returns. */
  data: Record<string, unknown>;
}

/** What an endpoint receives, and what its signature covers. */
export interface EventPayload {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

export function eventPayload(row: EventRow): EventPayload {
  return { type: row.type, timestamp: row.created_at.toISOString(), data: row.data };
}

/**
 * The outbox. `emit` must be called with the transaction of the change the event tells of, so the
 * change and its event commit together or not at all; delivery happens after, from the table.
 */
export class EventOutbox {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly deps: { clock: () => Date }) {}

  /**
   * Writes the event and, in the same transaction, one pending delivery for each enabled endpoint of its
   * company and environment that hears its type (`only`: that one endpoint). Fanning out here rather than
   * when a deliverer picks the event up means the event and its deliveries commit together, so there is
   * no second step that could miss an event, and an endpoint's queue is what it heard when it happened.
   */
  async emit(tx: Db, event: OutgoingEvent, opts: { only?: string } = {}): Promise<string> {
    const now = this.deps.clock();
    const id = newId("msg", now);
    const data = await withoutOtherWorld(tx, event);
    await tx
      .insertInto("events")
      .values({
        id,
        company_id: event.companyId,
        environment: event.environment,
        type: event.type,
        data: JSON.stringify(data),
        created_at: now,
      })
      .execute();
    let endpoints = tx
      .selectFrom("webhook_endpoints")
      .select(["id", "events"])
      .where("company_id", "=", event.companyId)
      .where("environment", "=", event.environment)
      .where("status", "=", "enabled");
    if (opts.only !== undefined) endpoints = endpoints.where("id", "=", opts.only);
    const hearing = (await endpoints.orderBy("id").execute()).filter(
      (e) => opts.only !== undefined || e.events === null || e.events.includes(event.type),
    );
    if (hearing.length > 0) {
      await tx
        .insertInto("webhook_deliveries")
        .values(
          hearing.map((e) => ({
            id: newId("dlv", now),
            endpoint_id: e.id,
            event_id: id,
            next_attempt_at: now,
            created_at: now,
          })),
        )
        .execute();
    }
    return id;
  }

  /** Called once the transaction that emitted has committed, so a deliverer need not wait to poll. */
  committed(): void {
    for (const listener of this.listeners) listener();
  }

  onCommitted(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * A test object's event goes to test endpoints, whose readers may not learn live keys and API users: a
 * `created_by` naming a live one says "live", as the API shows it to a test caller (see views.ts). Views
 * may be nested (`{key: …}`, `{old_key, new_key}`), so every `created_by` one level down counts too.
 */
async function withoutOtherWorld(tx: Db, event: OutgoingEvent): Promise<Record<string, unknown>> {
  if (event.environment !== "test") return event.data;
  const actorOf = (o: unknown) => {
    const by = o && typeof o === "object" ? (o as Record<string, unknown>).created_by : undefined;
    return typeof by === "string" && /^(key|cred)_/.test(by) ? by : undefined;
  };
  const nested = Object.entries(event.data).filter(([, v]) => actorOf(v) !== undefined);
  const ids = [actorOf(event.data), ...nested.map(([, v]) => actorOf(v))].filter((x) => x !== undefined);
  if (ids.length === 0) return event.data;
  const environments = await actorEnvironments(tx, ids);
  const shown = (o: Record<string, unknown>) => {
    const by = actorOf(o);
    return by && environments.get(by) !== "test" ? { ...o, created_by: "live" } : o;
  };
  const data = { ...shown(event.data) };
  for (const [field, value] of nested) data[field] = shown(value as Record<string, unknown>);
  return data;
}
