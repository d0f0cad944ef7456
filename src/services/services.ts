import type { Kysely } from "kysely";
import { Changes } from "../cluster/changes.ts";
import { LocalRateLimiter, type RateLimiter } from "../cluster/rate-limiter.ts";
import type { Catalog } from "../core/catalog.ts";
import { compileStored, type RateLimit } from "../core/rate-limit.ts";
import { SecretBox } from "../core/secret-box.ts";
import type { Database } from "../store/schema.ts";
import { AccessGuard } from "./access.ts";
import { AuditService } from "./audit.ts";
import { AuthorizationService } from "./authorization.ts";
import { ChangeStream } from "./change-stream.ts";
import { CompanyService } from "./companies.ts";
import { CredentialService } from "./credentials.ts";
import { CreditService } from "./credits.ts";
import { EventOutbox } from "./events.ts";
import { ExpiryPolicyService } from "./expiry-policies.ts";
import { ExpiryScheduler } from "./expiry-scheduler.ts";
import { KeyNoticeMail } from "./key-notice-mail.ts";
import { KeyService } from "./keys.ts";
import { LeakService } from "./leaks.ts";
import { type Mailer, type MailLog, MailOutbox, OperatorLogMailer } from "./mailer.ts";
import { MerchantAccountService } from "./merchant-accounts.ts";
import { NodeStats } from "./node-stats.ts";
import { PeopleService } from "./people/index.ts";
import { ScanningKeyFile } from "./scanning-keys.ts";
import { UsageRecorder } from "./usage.ts";
import { VerificationService } from "./verification.ts";
import { WebhookDeliverer } from "./webhook-deliverer.ts";
import { WebhookDestinations } from "./webhook-destinations.ts";
import { WebhookService } from "./webhooks.ts";

export interface ServiceOptions {
  db: Kysely<Database>;
  catalog: Catalog;
  /** The HMAC secret keys, secrets and passwords are hashed with. */
  secret: string;
  keyPrefix: string;
  /** Injected so tests can move time; defaults to the wall clock. */
  clock?: () => Date;
  usageFlushMs?: number;
  onBackgroundError?: (err: unknown) => void;
  sessionIdleMinutes?: number;
  sessionMaxHours?: number;
  /** Counts rate limits: this node's own counters unless cluster mode gives a shared one. */
  limiter?: RateLimiter;
  /** Limits on sign-in attempts per address and per email, e.g. 10 per minute. */
  loginLimits?: readonly RateLimit[];
  /** Limits on sign-in attempts per address; defaults to `loginLimits`. */
  loginIpLimits?: readonly RateLimit[];
  cache?: { max?: number; ttlMs?: number; negativeTtlMs?: number; graceMs?: number };
  /** The cache TTL while the cluster bus is deaf, told to change-stream subscribers. */
  degradedCacheTtlMs?: number;
  /** What this node counts for /metrics; the runtime shares it with the cluster bus. */
  stats?: NodeStats;
  /** Path of GitHub's secret scanning public keys document; unset: GitHub's reports are not taken. */
  githubScanningKeys?: string;
  /** Public leak reports per client address (default 10 a minute, 100 an hour); [] for none. */
  leakReportLimits?: readonly RateLimit[];
  /** How often the expiry scheduler sweeps; unset: it does not run on its own (tests call runOnce). */
  expirySweepMs?: number;
  /** Webhook delivery: the attempt timeout, and the special networks the operator allows (SSRF). */
  webhooks?: { timeoutMs?: number; allowedNetworks?: readonly string[] };
  /** Mail to people: SMTP when configured; unset, messages are printed to `mailLog` for the operator. */
  mailer?: Mailer;
  /** Where mail without SMTP is printed, and failed sends are logged; default: nowhere. */
  mailLog?: MailLog;
  /** The console's address, the base of links in mail (LATCHKEY_PUBLIC_URL). */
  publicUrl?: string;
}

export interface Services {
  catalog: Catalog;
  companies: CompanyService;
  credentials: CredentialService;
  /** A company's merchant accounts, within which their API users and keys act. */
  merchantAccounts: MerchantAccountService;
  keys: KeyService;
  /** Keys found in public: GitHub's and anyone's reports, and each company's policy for them. */
  leaks: LeakService;
  audit: AuditService;
  /** The webhook outbox, written in the transaction of each change. */
  events: EventOutbox;
  people: PeopleService;
  verification: VerificationService;
  /** Forward auth: may a gateway's client make this request? */
  authorization: AuthorizationService;
  /** Every change this node hears, for verify keys that cache answers themselves (the SDK). */
  changeStream: ChangeStream;
  usage: UsageRecorder;
  /** Announced after every committed change; caches listen (and, in cluster mode, a bus). */
  changes: Changes;
  limiter: RateLimiter;
  stats: NodeStats;
  /** Each company's expiry policy per environment, and how its keys stand against it. */
  expiryPolicies: ExpiryPolicyService;
  /** Expiry notices and the revocation of unused keys, swept every `expirySweepMs`. */
  expiryScheduler: ExpiryScheduler;
  /** Webhook endpoints, their secrets and delivery logs. */
  webhooks: WebhookService;
  /** Sends the queued deliveries; `latchkey serve` starts it, tests drive it with `tick()`. */
  webhookDeliverer: WebhookDeliverer;
  /** Mail to people, sent after each change commits; `settled()` waits for what is on its way. */
  mail: MailOutbox;
  /** Mails a company's owners of its leaked and expiring keys, from the outbox. */
  keyNoticeMail: KeyNoticeMail;
  /** Flushes what is batched in memory; the store is closed by whoever opened it. */
  close(): Promise<void>;
}

const DEFAULT_LEAK_REPORT_LIMITS: readonly RateLimit[] = [
  { limit: 10, window: "1m" },
  { limit: 100, window: "1h" },
];

/** Builds every service once, in one place. */
export function createServices(opts: ServiceOptions): Services {
  const clock = opts.clock ?? (() => new Date());
  const base = { db: opts.db, catalog: opts.catalog, clock };
  const usage = new UsageRecorder(opts.db, opts.onBackgroundError);
  if (opts.usageFlushMs !== undefined) usage.start(opts.usageFlushMs);
  const audit = new AuditService({ db: opts.db, clock });
  const events = new EventOutbox({ clock });
  const changes = new Changes();
  const limiter = opts.limiter ?? new LocalRateLimiter();
  const stats = opts.stats ?? new NodeStats();
  // Step-up codes are checked by the people service; the key and credential services ask through it.
  const guard = new AccessGuard((actor, code, ctx) => people.stepUp(actor, code, ctx));
  const credentials = new CredentialService({ ...base, secret: opts.secret, audit, events, changes, guard });
  const expiryPolicies = new ExpiryPolicyService({ db: opts.db, clock, audit, guard });
  const keys = new KeyService({
    ...base,
    secret: opts.secret,
    keyPrefix: opts.keyPrefix,
    audit,
    events,
    changes,
    guard,
    expiryPolicies,
  });
  const expiryScheduler = new ExpiryScheduler({
    ...base,
    audit,
    events,
    changes,
    ...(opts.onBackgroundError ? { onError: opts.onBackgroundError } : {}),
  });
  if (opts.expirySweepMs !== undefined) expiryScheduler.start(opts.expirySweepMs);
  const mailLog: MailLog = opts.mailLog ?? { info() {}, error() {} };
  const mail = new MailOutbox(opts.mailer ?? new OperatorLogMailer(mailLog), mailLog);
  const keyNoticeMail = new KeyNoticeMail({
    db: opts.db,
    clock,
    events,
    mail,
    ...(opts.onBackgroundError ? { onError: opts.onBackgroundError } : {}),
  });
  const people = new PeopleService({
    mail,
    publicUrl: opts.publicUrl ?? "http://127.0.0.1:8080",
    ...base,
    secret: opts.secret,
    audit,
    events,
    ...(opts.sessionIdleMinutes ? { sessionIdleMinutes: opts.sessionIdleMinutes } : {}),
    ...(opts.sessionMaxHours ? { sessionMaxHours: opts.sessionMaxHours } : {}),
    loginLimits: compileStored(opts.loginLimits),
    ...(opts.loginIpLimits ? { loginIpLimits: compileStored(opts.loginIpLimits) } : {}),
    limiter,
  });
  const leaks = new LeakService({
    ...base,
    secret: opts.secret,
    audit,
    events,
    changes,
    guard,
    limiter,
    reportLimits: compileStored(opts.leakReportLimits ?? DEFAULT_LEAK_REPORT_LIMITS),
    scanningKeys: opts.githubScanningKeys
      ? new ScanningKeyFile(opts.githubScanningKeys, (message) =>
          opts.onBackgroundError?.(new Error(message)),
        )
      : null,
    onBackgroundError: opts.onBackgroundError,
  });
  const verification = new VerificationService({
    db: opts.db,
    catalog: opts.catalog,
    secret: opts.secret,
    usage,
    clock,
    changes,
    limiter,
    credits: new CreditService({ db: opts.db, events }),
    stats,
    ...(opts.cache ? { cache: opts.cache } : {}),
  });
  const box = new SecretBox(opts.secret, "webhook-secret");
  const destinations = new WebhookDestinations(opts.webhooks?.allowedNetworks ?? []);
  const webhooks = new WebhookService({ db: opts.db, clock, audit, events, guard, box, destinations });
  const webhookDeliverer = new WebhookDeliverer({
    db: opts.db,
    clock,
    audit,
    events,
    box,
    destinations,
    ...(opts.webhooks?.timeoutMs !== undefined ? { timeoutMs: opts.webhooks.timeoutMs } : {}),
    ...(opts.onBackgroundError ? { onError: opts.onBackgroundError } : {}),
  });
  return {
    catalog: opts.catalog,
    companies: new CompanyService({
      ...base,
      credentials,
      keys,
      audit,
      offerMembership: (tx, user, companyId) => people.recovery.issue(tx, user, "membership", companyId),
    }),
    audit,
    events,
    people,
    credentials,
    merchantAccounts: new MerchantAccountService({ db: opts.db, clock, audit, changes, events }),
    keys,
    leaks,
    verification,
    authorization: new AuthorizationService({ catalog: opts.catalog, verification }),
    changeStream: new ChangeStream(changes, {
      ...(opts.degradedCacheTtlMs !== undefined ? { degradedTtlMs: opts.degradedCacheTtlMs } : {}),
    }),
    usage,
    changes,
    limiter,
    stats,
    expiryPolicies,
    expiryScheduler,
    webhooks,
    webhookDeliverer,
    mail,
    keyNoticeMail,
    // Public leak reports still being handled are finished first: each was promised a 202.
    async close() {
      await webhookDeliverer.stop();
      await expiryScheduler.stop();
      await leaks.settled();
      keyNoticeMail.close();
      await keyNoticeMail.settled();
      await mail.settled();
      await usage.stop();
    },
  };
}
