import { type Kysely, sql } from "kysely";
import { keyExpiringMail, keyLeakedMail } from "../core/mail-texts.ts";
import type { Database } from "../store/schema.ts";
import type { EventOutbox } from "./events.ts";
import type { Mail, MailOutbox } from "./mailer.ts";

/** The outbox events that are also mailed to the company's owners (and the key's API user's email). */
const MAILED = ["key.leaked", "key.expiring"] as const;

/** How many events one pass claims; more are left for the next. */
const BATCH = 100;

export interface KeyNoticeMailOptions {
  db: Kysely<Database>;
  clock: () => Date;
  events: EventOutbox;
  mail: MailOutbox;
  onError?: (err: unknown) => void;
}

const POLL_MS = 60_000;

/**
 * Mails a company's active owners when one of its keys leaks or is about to expire, and the key's API
 * user's email for notices when it has one. It reads the
 * webhook outbox (the leak and expiry services write those events with their change), so it needs no
 * hook in them: a pass runs whenever an emitting transaction has committed on this node. Each event is
 * claimed by inserting its row in `event_mails`, so of several nodes one mails it, once.
 */
export class KeyNoticeMail {
  private running: Promise<void> | null = null;
  private again = false;
  private readonly stop: () => void;
  private readonly poll: NodeJS.Timeout;

  constructor(private readonly o: KeyNoticeMailOptions) {
    this.stop = o.events.onCommitted(() => this.kick());
    // A slow poll too: a pass that failed (the store away) or an event committed on another node
    // would otherwise wait for the next change on this one.
    this.poll = setInterval(() => this.kick(), POLL_MS);
    this.poll.unref();
  }

  /** Runs a pass now, or once more after the one running. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.runOnce();
        } catch (err) {
          this.o.onError?.(err);
        }
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
  }

  /** Claims and mails the events not mailed yet; returns how many it claimed. */
  async runOnce(): Promise<number> {
    const now = this.o.clock();
    const mails: Mail[] = [];
    const claimed = await this.o.db.transaction().execute(async (tx) => {
      const rows = await tx
        .selectFrom("events")
        .innerJoin("companies", "companies.id", "events.company_id")
        .select(["events.id", "events.company_id", "events.type", "events.data", "companies.name as company"])
        .where("events.type", "in", [...MAILED])
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom("event_mails").select("event_id").whereRef("event_id", "=", "events.id"))),
        )
        .orderBy("events.seq", "asc")
        .limit(BATCH)
        .execute();
      let won = 0;
      for (const row of rows) {
        const claim = await sql<{ event_id: string }>`
          INSERT INTO event_mails (event_id, sent_at) VALUES (${row.id}, ${now})
          ON CONFLICT (event_id) DO NOTHING RETURNING event_id`.execute(tx);
        if (claim.rows.length === 0) continue;
        won++;
        const owners = await tx
          .selectFrom("memberships")
          .innerJoin("users", "users.id", "memberships.user_id")
          .select("users.email")
          .where("memberships.company_id", "=", row.company_id)
          .where("memberships.role", "=", "owner")
          .where("memberships.status", "=", "active")
          .execute();
        const data = row.data as Record<string, unknown>;
        const message =
          row.type === "key.leaked"
            ? keyLeakedMail({
                company: row.company,
                key: data,
                url: (data.found as Record<string, unknown> | undefined)?.url,
                action: data.action,
              })
            : keyExpiringMail({
                company: row.company,
                key: (data.key as Record<string, unknown> | undefined) ?? {},
                expiresAt: data.expires_at,
              });
        const kind = row.type === "key.leaked" ? "key_leaked" : "key_expiring";
        const key = (row.type === "key.leaked" ? data : data.key) as Record<string, unknown> | undefined;
        const to = new Set(owners.map((o) => o.email));
        // Its API user's address, looked up now (not copied into the event) so a cleared one gets nothing;
        // within the event's company, so no other tenant's API user can be reached.
        if (typeof key?.credential_id === "string") {
          const cred = await tx
            .selectFrom("credentials")
            .select("email")
            .where("company_id", "=", row.company_id)
            .where("id", "=", key.credential_id)
            .executeTakeFirst();
          if (cred?.email) to.add(cred.email);
        }
        for (const address of to) mails.push({ kind, to: address, ...message });
      }
      return won;
    });
    // Sent once the claims have committed; a send that fails is logged, not retried (see MailOutbox).
    for (const m of mails) this.o.mail.deliver(m);
    return claimed;
  }

  /** Waits for the pass running, if any (on close, and in tests). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  close(): void {
    this.stop();
    clearInterval(this.poll);
  }
}
