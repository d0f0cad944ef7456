import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type Kysely, sql } from "kysely";
import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import type { SecretBox } from "../core/secret-box.ts";
import { nextAttemptAt, parseRetryAfter } from "../core/webhooks.ts";
import type { Database } from "../store/schema.ts";
import { platformCtx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import type { WebhookDestinations } from "./webhook-destinations.ts";

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 15_000;

export interface DelivererDeps {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  events: EventOutbox;
  box: SecretBox;
  destinations: WebhookDestinations;
  /** How long an attempt may take, connecting included (15 s; tests shorten it). */
  timeoutMs?: number;
  onError?: (err: unknown) => void;
}

/** A due attempt, claimed under a lease, with what it takes to sign and send it. */
interface Claimed {
  id: string;
  endpoint_id: string;
  event_id: string;
  attempts: number;
  lease_token: string;
  url: string;
  company_id: string;
  environment: "live" | "test";
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | string | null;
  event_type: string;
  event_data: unknown;
  event_created_at: Date | string;
}

/** What one attempt came to. */
interface Outcome {
  statusCode: number | null;
  error: string | null;
  retryAfter: number | null;
}

const toDate = (v: Date | string) => (v instanceof Date ? v : new Date(v));
const MAX_ERROR_LENGTH = 500;

/**
 * Delivers the queued webhook deliveries: at least once, the oldest undelivered delivery of each
 * endpoint first and alone (it blocks the later ones until it is delivered or given up), each attempt
 * made by exactly one node. An attempt is claimed with a lease in the store (an UPDATE that only one
 * claimer can win, its row lock deciding a race); a node that dies mid-attempt leaves the lease to
 * expire, and another node makes the attempt again with the same `webhook-id`.
 */
export class WebhookDeliverer {
  private readonly timeoutMs: number;
  private readonly agent: Agent;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopping = new AbortController();
  private unsubscribe: (() => void) | null = null;
  /** Attempts one round makes at most (each to another endpoint), so a backlog is worked off in steps. */
  private readonly batch = 50;

  constructor(private readonly deps: DelivererDeps) {
    this.timeoutMs = deps.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS;
    // Every connection takes its address from the destination check: the address checked is the one used.
    this.agent = new Agent({ connect: { lookup: deps.destinations.lookup, timeout: this.timeoutMs } });
  }

  /** A lease outlives the longest attempt, so a live node never loses one it is still using. */
  private get leaseMs(): number {
    return this.timeoutMs + 30_000;
  }

  /** Polls every `pollMs`, and at once whenever a change with an event commits on this node. */
  start(pollMs = 1000): void {
    if (this.timer) return;
    this.stopping = new AbortController();
    this.timer = setInterval(() => this.kick(), pollMs);
    this.timer.unref();
    this.unsubscribe = this.deps.events.onCommitted(() => this.kick());
    this.kick();
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.tick();
        } catch (err) {
          this.deps.onError?.(err);
        }
      } while (this.again && this.timer);
    })().finally(() => {
      this.running = null;
    });
  }

  /**
   * Stops polling and abandons attempts in flight: their leases expire and another node (or this one,
   * restarted) makes them again. Nothing is lost; the receiver may hear an event twice.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.stopping.abort();
    await this.running;
    await this.agent.close().catch(() => undefined);
  }

  /** Claims the due head of every endpoint's queue; exported for tests, which drive it by hand. */
  async claim(): Promise<Claimed[]> {
    const now = this.deps.clock();
    const leaseUntil = new Date(now.getTime() + this.leaseMs);
    const token = randomBytes(12).toString("base64url");
    // The subquery finds each enabled endpoint's head (its oldest pending delivery) and takes the due
    // ones, longest waiting first, at most `batch` a round; the outer conditions are checked again on
    // the row PostgreSQL locks, so of two nodes racing for one head only the first gets it and the
    // other finds its lease taken.
    const { rows } = await sql<Claimed>`
      UPDATE webhook_deliveries AS d
      SET lease_until = ${leaseUntil}, lease_token = ${token}
      FROM webhook_endpoints AS w, events AS e
      WHERE d.id IN (
          SELECT head.id FROM (
            SELECT DISTINCT ON (q.endpoint_id) q.id, q.next_attempt_at, q.lease_until
            FROM webhook_deliveries AS q
            JOIN webhook_endpoints AS qw ON qw.id = q.endpoint_id AND qw.status = 'enabled'
            WHERE q.status = 'pending'
              -- An endpoint with an attempt in flight gets no other: a retried older delivery becomes
              -- the head while a later one is being sent, and must wait for it.
              AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries AS busy
                WHERE busy.endpoint_id = q.endpoint_id AND busy.status = 'pending'
                  AND busy.lease_until >= ${now}
              )
            ORDER BY q.endpoint_id, q.seq
          ) AS head
          WHERE head.next_attempt_at <= ${now} AND (head.lease_until IS NULL OR head.lease_until < ${now})
          ORDER BY head.next_attempt_at
          LIMIT ${this.batch}
        )
        AND w.id = d.endpoint_id AND w.status = 'enabled'
        AND e.id = d.event_id
        AND d.status = 'pending'
        AND d.next_attempt_at <= ${now}
        AND (d.lease_until IS NULL OR d.lease_until < ${now})
      RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.lease_token, w.url, w.company_id,
        w.environment, w.secret_sealed, w.previous_secret_sealed, w.previous_secret_expires_at,
        e.type AS event_type, e.data AS event_data, e.created_at AS event_created_at`.execute(this.deps.db);
    return rows;
  }

  /** One round: claims what is due and makes those attempts, one per endpoint, side by side. */
  async tick(): Promise<number> {
    const claimed = await this.claim();
    await Promise.all(claimed.map((c) => this.attempt(c)));
    return claimed.length;
  }

  private signatures(c: Claimed, id: string, at: Date, body: string): string {
    const secrets = [this.deps.box.open(c.secret_sealed)];
    const previousUntil = c.previous_secret_expires_at ? toDate(c.previous_secret_expires_at) : null;
    if (c.previous_secret_sealed && previousUntil && previousUntil > at) {
      secrets.push(this.deps.box.open(c.previous_secret_sealed));
    }
    return secrets.map((s) => new Webhook(s).sign(id, at, body)).join(" ");
  }

  private async send(c: Claimed, at: Date): Promise<Outcome> {
    const payload = {
      type: c.event_type,
      timestamp: toDate(c.event_created_at).toISOString(),
      data: typeof c.event_data === "string" ? JSON.parse(c.event_data) : c.event_data,
    };
    const body = JSON.stringify(payload);
    try {
      const url = new URL(c.url);
      this.deps.destinations.checkLiteral(url);
      const res = await request(url, {
        method: "POST",
        dispatcher: this.agent,
        headers: {
          "content-type": "application/json",
          "user-agent": "Latchkey-Webhooks/1",
          "webhook-id": c.event_id,
          "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
          "webhook-signature": this.signatures(c, c.event_id, at, body),
        },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]),
      });
      // The answer's body means nothing to Latchkey; it is read (up to a bound) to free the connection.
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const code = res.statusCode;
      if (code >= 200 && code < 300) return { statusCode: code, error: null, retryAfter: null };
      const header = res.headers["retry-after"];
      const retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header, this.deps.clock());
      const error =
        code >= 300 && code < 400
          ? `redirect (${code}) not followed`
          : code === 410
            ? "410 Gone: the endpoint asked not to be sent any more"
            : `HTTP ${code}`;
      return { statusCode: code, error, retryAfter };
    } catch (err) {
      return { statusCode: null, error: describe(err, this.timeoutMs), retryAfter: null };
    }
  }

  private async attempt(c: Claimed): Promise<void> {
    const at = this.deps.clock();
    const started = performance.now();
    const outcome = await this.send(c, at);
    // Stopped mid-attempt: its outcome is unknown, so it is not recorded; the lease lapses and the
    // attempt is made again.
    if (this.stopping.signal.aborted) return;
    const durationMs = Math.round(performance.now() - started);
    const now = this.deps.clock();
    const attempt = c.attempts + 1;
    const delivered = outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
    const gone = outcome.statusCode === 410;
    const next = delivered || gone ? null : nextAttemptAt(attempt, now, outcome.retryAfter);
    const status = delivered ? "delivered" : next === null ? "failed" : "pending";
    await this.deps.db.transaction().execute(async (tx) => {
      const updated = await tx
        .updateTable("webhook_deliveries")
        .set({
          status,
          attempts: attempt,
          next_attempt_at: next,
          lease_until: null,
          lease_token: null,
          last_status_code: outcome.statusCode,
          last_error: outcome.error,
          last_attempt_at: at,
          delivered_at: delivered ? now : null,
        })
        .where("id", "=", c.id)
        .where("lease_token", "=", c.lease_token)
        .executeTakeFirst();
      // The lease lapsed and another node took the attempt over: its record counts, not this one.
      if (Number(updated.numUpdatedRows) === 0) return;
      await tx
        .insertInto("webhook_attempts")
        .values({
          delivery_id: c.id,
          attempt,
          started_at: at,
          duration_ms: durationMs,
          status_code: outcome.statusCode,
          error: outcome.error,
          next_attempt_at: next,
        })
        .execute();
      if (status === "delivered" || status === "pending") return;
      const reason = gone
        ? "The endpoint answered 410 Gone."
        : `Deliveries kept failing for every retry (last: ${outcome.error ?? "unknown"}).`;
      const disabled = await tx
        .updateTable("webhook_endpoints")
        .set({ status: "disabled", disabled_reason: reason, disabled_at: now, updated_at: now })
        .where("id", "=", c.endpoint_id)
        .where("status", "=", "enabled")
        .executeTakeFirst();
      if (Number(disabled.numUpdatedRows) === 0) return;
      await this.deps.audit.append(tx, platformCtx(), {
        action: "webhook.disabled",
        companyId: c.company_id,
        environment: c.environment,
        target: { type: "webhook", id: c.endpoint_id },
        changes: { before: { status: "enabled" }, after: { status: "disabled", disabled_reason: reason } },
      });
    });
  }
}

/** An attempt's failure in a line for the console: never the request, its headers or its signature. */
function describe(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e?.name === "TimeoutError" || e?.code === "UND_ERR_CONNECT_TIMEOUT") {
    return `no answer within ${timeoutMs} ms`;
  }
  if (e?.name === "DestinationRefused") return `refused: ${e.message}`;
  const cause = e?.cause as { name?: string; code?: string; message?: string } | undefined;
  if (cause?.name === "DestinationRefused" || cause?.code === "EREFUSED") return `refused: ${cause.message}`;
  const text = `${e?.code ?? cause?.code ?? e?.name ?? "error"}: ${e?.message ?? String(err)}`;
  return text.slice(0, MAX_ERROR_LENGTH);
}
