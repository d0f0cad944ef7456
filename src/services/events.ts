import type { EventType } from "../core/events.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import type { Db } from "../store/repositories.ts";
import type { EventRow } from "../store/schema.ts";

export interface OutgoingEvent {
  companyId: string;
  /** The environment of what the event is about: test keys' events go to test endpoints only. */
  environment: Environment;
  type: EventType;
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

  async emit(tx: Db, event: OutgoingEvent): Promise<string> {
    const now = this.deps.clock();
    const id = newId("msg", now);
    await tx
      .insertInto("events")
      .values({
        id,
        company_id: event.companyId,
        environment: event.environment,
        type: event.type,
        data: JSON.stringify(event.data),
        created_at: now,
      })
      .execute();
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
