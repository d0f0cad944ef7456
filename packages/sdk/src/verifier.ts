import { createHash } from "node:crypto";
import { EventSource } from "eventsource";
import { checkKey } from "./key-format.ts";

export interface VerifierOptions {
  /** Latchkey's base URL, such as `http://latchkey.internal:8080`. */
  url: string;
  /** A verify key (one holding `keys:verify`): the platform's, or a company's for its own keys. */
  verifyKey: string;
  /** How long an answer is kept while the change stream is live. Default 60 s. */
  ttlMs?: number;
  /** How long while the stream is down, or Latchkey says it cannot hear its other nodes. Default 1 s. */
  fallbackTtlMs?: number;
  /** "No such key" answers are kept at most this long (a new key's event drops them sooner). Default 2 s. */
  negativeTtlMs?: number;
  /** When Latchkey cannot be asked: refuse (the default), or let the request through. */
  failOpen?: boolean;
  /** How long a question to Latchkey may take. Default 2 s. */
  timeoutMs?: number;
  /** False: no change stream; answers then live `fallbackTtlMs`. Default true. */
  stream?: boolean;
  /** A stream that says nothing (not even its ping) for this long is taken for dead. Default 6 s. */
  streamSilenceMs?: number;
  clock?: () => number;
}

export type VerdictCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "DISABLED"
  | "IP_NOT_ALLOWED"
  | "ENVIRONMENT_MISMATCH"
  | "INSUFFICIENT_PERMISSIONS"
  | "RATE_LIMITED"
  /** The key's credits are spent (see `remaining`). */
  | "USAGE_EXCEEDED"
  /** Latchkey could not be asked (and `failOpen` is off). */
  | "UNAVAILABLE";

export interface Verdict {
  valid: boolean;
  code: VerdictCode;
  keyId: string | null;
  credentialId: string | null;
  companyId: string | null;
  environment: "live" | "test" | null;
  permissions: readonly string[];
  expiresAt: string | null;
  rateLimit: {
    limit: number;
    window: string;
    remaining: number;
    reset: number;
    retry_after: number | null;
  } | null;
  /** The key's credits left after this request; null: the key is unlimited. */
  remaining: number | null;
  /** The platform's own data on the key, and its id for the key's owner. */
  meta: Readonly<Record<string, unknown>> | null;
  externalId: string | null;
  /** The merchant account the key acts within; null: company-level (or an older Latchkey). */
  merchantAccountId: string | null;
  /** `cache`: answered here; `latchkey`: asked; `offline`: refused by the key's checksum; `fail-open`: let through unasked. */
  source: "cache" | "latchkey" | "offline" | "fail-open";
}

export interface VerifyRequest {
  key: string;
  /** The secret half of a key + secret pair. */
  secret?: string | undefined;
  /** Every one of these must be held. */
  permissions?: readonly string[] | undefined;
  /** The client's address, for keys with an IP allowlist. */
  ip?: string | undefined;
  /** Refuse a key of the other environment. */
  environment?: "live" | "test" | undefined;
  /** Credits this request spends, for a key that has credits (default 1; 0 checks without spending). */
  cost?: number | undefined;
}

/** What Latchkey answered about a key (without permissions: those are checked here). */
interface Answer {
  valid: boolean;
  code: VerdictCode;
  key_id: string | null;
  credential_id: string | null;
  company_id: string | null;
  environment: "live" | "test" | null;
  permissions: string[];
  expires_at: string | null;
  rate_limit: Verdict["rateLimit"];
  remaining?: number | null;
  meta?: Record<string, unknown> | null;
  external_id?: string | null;
  /** Absent from a Latchkey older than merchant accounts. */
  merchant_account_id?: string | null;
  /** False: the answer is the same from every address (no allowlist). Absent from an older Latchkey. */
  ip_restricted?: boolean;
}

interface Entry {
  verdict: Verdict;
  held: ReadonlySet<string>;
  expiresAtMs: number | null;
  until: number;
  fingerprint: string;
}

export type StreamState = "off" | "connecting" | "live" | "degraded" | "down";

const EMPTY: readonly string[] = Object.freeze([]);

function refusal(code: VerdictCode, source: Verdict["source"]): Verdict {
  return Object.freeze({
    valid: false,
    code,
    keyId: null,
    credentialId: null,
    companyId: null,
    environment: null,
    permissions: EMPTY,
    expiresAt: null,
    rateLimit: null,
    remaining: null,
    meta: null,
    externalId: null,
    merchantAccountId: null,
    source,
  });
}
const MALFORMED = refusal("MALFORMED", "offline");
const UNAVAILABLE = refusal("UNAVAILABLE", "latchkey");
const FAIL_OPEN: Verdict = Object.freeze({ ...refusal("VALID", "fail-open"), valid: true });

/** A key that is gone for good, or never was: nothing about it is metered any more. */
const DEAD = new Set<VerdictCode>(["NOT_FOUND", "MALFORMED", "REVOKED", "EXPIRED", "DISABLED"]);

/** Answers Latchkey gives about a key alone, whatever is asked of it: safe to keep and reuse. */
const KEEPABLE = new Set<VerdictCode>([
  "VALID",
  "NOT_FOUND",
  "MALFORMED",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
]);

/**
 * Verifies Latchkey keys in the gateway's own process. A key that fails its checksum is refused
 * without a request; a cached answer costs a map read; a miss asks Latchkey once, however many
 * requests miss on it at once. Latchkey pushes every change over its change stream
 * (`/v1/verify/changes`), so a revocation reaches this cache within milliseconds; while the stream is
 * down, or Latchkey cannot hear its other nodes, answers live only `fallbackTtlMs`. Keys with rate
 * limits are always asked, so their limits are counted by Latchkey across every gateway. An answer is
 * kept once per key, unless Latchkey says it depends on the address (an allowlist): then per address.
 */
export class LatchkeyVerifier {
  private readonly opts: Required<Omit<VerifierOptions, "clock">> & { clock: () => number };
  private readonly entries = new Map<string, Entry>();
  private readonly byKeyId = new Map<string, Set<string>>();
  private readonly byCredential = new Map<string, Set<string>>();
  private readonly byFingerprint = new Map<string, Set<string>>();
  private readonly pending = new Map<string, { stamp: number; answer: Promise<Verdict> }>();
  /**
   * Keys (by cache key) Latchkey said have credits. Each of their requests is asked on its own, with
   * its permissions, environment and cost, so Latchkey spends a credit only on a request it allows,
   * and concurrent requests never share one answer (one spend). Only the first ask about such a key,
   * before it is known to be metered, is the key-alone question.
   */
  private readonly metered = new Set<string>();
  /**
   * Bumped by every change. An answer asked for before a change that touches it (its key, its API
   * user, its fingerprint, or everything) arrived is not kept; `recent` says what the last ones touched.
   */
  private stamp = 0;
  private readonly recent: { stamp: number; touches: Record<string, string> | "all" }[] = [];
  private source: EventSource | null = null;
  private state: StreamState = "off";
  private degradedTtlMs: number | null = null;
  private lastHeard = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private readyWaiters: (() => void)[] = [];
  private readonly resetListeners = new Set<() => void>();
  /** Whether the stream has been ready before: a later `ready` is a reconnection. */
  private wasReady = false;

  constructor(options: VerifierOptions) {
    this.opts = {
      ttlMs: 60_000,
      fallbackTtlMs: 1_000,
      negativeTtlMs: 2_000,
      failOpen: false,
      timeoutMs: 2_000,
      stream: true,
      streamSilenceMs: 6_000,
      clock: Date.now,
      ...options,
      url: options.url.replace(/\/+$/, ""),
    };
  }

  /** Latchkey's base URL, as given (without a trailing slash): the middleware reads the catalog there. */
  get url(): string {
    return this.opts.url;
  }

  /** The stream's state: `live` means answers are kept for `ttlMs`. */
  get streamState(): StreamState {
    return this.state;
  }

  /** Opens the change stream; resolves once it is live (or after `timeoutMs`, still connecting). */
  async start(): Promise<void> {
    if (!this.opts.stream || this.source) return;
    this.connect();
    await new Promise<void>((resolve) => {
      this.readyWaiters.push(resolve);
      setTimeout(resolve, this.opts.timeoutMs).unref();
    });
  }

  /**
   * Calls `listener` when the change stream says to drop everything (`reset`) and when it is back after
   * being lost: Latchkey may have restarted meanwhile, with another catalog (the middleware reads it
   * again then). Returns a function that stops the calls.
   */
  onReset(listener: () => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  private notifyReset(): void {
    for (const listener of this.resetListeners) {
      try {
        listener();
      } catch {
        // A listener's failure is its own; the stream goes on.
      }
    }
  }

  close(): void {
    this.source?.close();
    this.source = null;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.state = "off";
  }

  private connect(): void {
    this.state = "connecting";
    const verifyKey = this.opts.verifyKey;
    const source = new EventSource(`${this.opts.url}/v1/verify/changes`, {
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          headers: { ...(init?.headers as Record<string, string>), "x-api-key": verifyKey },
        }),
    });
    this.source = source;
    const heard = () => {
      this.lastHeard = this.opts.clock();
    };
    source.addEventListener("ready", () => {
      heard();
      this.state = this.degradedTtlMs === null ? "live" : "degraded";
      for (const resolve of this.readyWaiters.splice(0)) resolve();
      if (this.wasReady) this.notifyReset();
      this.wasReady = true;
    });
    source.addEventListener("ping", heard);
    source.addEventListener("change", (event) => {
      heard();
      this.apply(JSON.parse(event.data) as Record<string, string>);
    });
    source.addEventListener("reset", () => {
      heard();
      this.degradedTtlMs = null;
      if (this.state === "degraded") this.state = "live";
      this.clear();
      this.notifyReset();
    });
    source.addEventListener("degraded", (event) => {
      heard();
      this.degradedTtlMs = (JSON.parse(event.data) as { ttl_ms: number }).ttl_ms;
      this.state = "degraded";
      this.clear();
    });
    // The stream reconnects by itself (with Last-Event-ID); until it is back nothing is heard, so
    // nothing kept may be trusted for long.
    source.onerror = () => this.lost();
    this.watchdog ??= setInterval(() => {
      if (this.state !== "off" && this.opts.clock() - this.lastHeard > this.opts.streamSilenceMs) {
        // Silent for too long (a half-open connection): start again.
        this.source?.close();
        this.lost();
        this.connect();
      }
    }, 1000);
    this.watchdog.unref();
  }

  private lost(): void {
    if (this.state === "down" || this.state === "off") return;
    this.state = "down";
    this.clear();
  }

  private ttl(): number {
    if (this.state === "live") return this.opts.ttlMs;
    return Math.min(this.opts.fallbackTtlMs, this.degradedTtlMs ?? Number.POSITIVE_INFINITY);
  }

  /** Is this key good for this request? Never throws: when Latchkey cannot be asked, see `failOpen`. */
  verify(request: VerifyRequest): Promise<Verdict> | Verdict {
    const { key, secret } = request;
    // An answer is kept once per key (and secret) when Latchkey said it is the same from every address,
    // else once per address too; see slots(). An address-independent one is looked for first.
    let ck = perKey(request);
    let entry = this.entries.get(ck);
    if (entry === undefined) {
      ck = perAddress(request);
      entry = this.entries.get(ck);
    }
    const now = this.opts.clock();
    // A kept answer was kept for a key (and secret) whose checksum held, so a hit skips the checksum,
    // which was most of a cached answer's cost. Only for a key and secret without a newline: then no
    // other key, secret and address build the same cache key (a key "K\nS" would be the pair's).
    if (
      entry !== undefined &&
      entry.until > now &&
      !key.includes("\n") &&
      (secret === undefined || !secret.includes("\n"))
    )
      return this.decide(entry, request, now);
    if (checkKey(key) === null || (secret !== undefined && checkKey(secret) === null)) return MALFORMED;
    if (entry !== undefined) {
      if (entry.until > now) return this.decide(entry, request, now);
      this.drop(ck);
    }
    return this.ask(request);
  }

  /** A kept answer, checked against this request's needs and the clock. */
  private decide(entry: Entry, request: VerifyRequest, now: number): Verdict {
    const verdict = entry.verdict;
    if (!verdict.valid) return verdict;
    if (entry.expiresAtMs !== null && entry.expiresAtMs <= now)
      return { ...verdict, valid: false, code: "EXPIRED" };
    if (
      request.environment !== undefined &&
      verdict.environment !== null &&
      request.environment !== verdict.environment
    )
      return { ...verdict, valid: false, code: "ENVIRONMENT_MISMATCH" };
    const wanted = request.permissions;
    if (wanted !== undefined) {
      for (const p of wanted)
        if (!entry.held.has(p)) return { ...verdict, valid: false, code: "INSUFFICIENT_PERMISSIONS" };
    }
    return verdict;
  }

  private ask(request: VerifyRequest): Promise<Verdict> {
    if (this.metered.has(perKey(request))) return this.askMetered(request);
    // Questions in flight are shared per address: whether the answer depends on it is not known yet.
    const ck = perAddress(request);
    const inFlight = this.pending.get(ck);
    if (inFlight !== undefined && inFlight.stamp === this.stamp)
      return inFlight.answer.then((v) => this.recheck(v, request));
    const stamp = this.stamp;
    const answer = this.fetchAnswer(request).then((a) => (a === null ? null : this.keep(a, request, stamp)));
    const verdict = answer.then((entry) => {
      if (entry === null) return this.opts.failOpen ? FAIL_OPEN : UNAVAILABLE;
      return entry.verdict;
    });
    const shared = verdict.finally(() => {
      if (this.pending.get(ck)?.answer === shared) this.pending.delete(ck);
    });
    this.pending.set(ck, { stamp, answer: shared });
    return shared.then((v) => this.recheck(v, request));
  }

  /** One request of a key with credits, decided and spent by Latchkey; nothing is kept. */
  private async askMetered(request: VerifyRequest): Promise<Verdict> {
    const a = await this.fetchAnswer(request, true);
    if (a === null) return this.opts.failOpen ? FAIL_OPEN : UNAVAILABLE;
    // A refusal before spending (permissions, address, a rate limit) says no balance, but the key is
    // still metered: only an allowed answer without one (its credits were lifted) or a dead key ends it.
    if ((a.valid && (a.remaining ?? null) === null) || DEAD.has(a.code)) this.metered.delete(perKey(request));
    return { ...this.keep(a, request, this.stamp).verdict, source: "latchkey" };
  }

  /** An answer about the key alone, checked against one request's permissions and environment. */
  private recheck(verdict: Verdict, request: VerifyRequest): Verdict {
    if (verdict === UNAVAILABLE || verdict === FAIL_OPEN) return verdict;
    const fresh = { ...verdict, source: "latchkey" as const };
    if (!fresh.valid) return fresh;
    const held = new Set(verdict.permissions);
    const expiresAtMs = verdict.expiresAt === null ? null : Date.parse(verdict.expiresAt);
    return this.decide(
      { verdict: fresh, held, expiresAtMs, until: 0, fingerprint: "" },
      request,
      this.opts.clock(),
    );
  }

  private async fetchAnswer(request: VerifyRequest, whole = false): Promise<Answer | null> {
    try {
      const res = await fetch(`${this.opts.url}/v1/verify`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": this.opts.verifyKey },
        body: JSON.stringify({
          key: request.key,
          ...(request.secret !== undefined ? { secret: request.secret } : {}),
          ...(request.ip !== undefined ? { ip: request.ip } : {}),
          ...(request.cost !== undefined ? { cost: request.cost } : {}),
          ...(whole && request.permissions !== undefined ? { permissions: request.permissions } : {}),
          ...(whole && request.environment !== undefined ? { environment: request.environment } : {}),
        }),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        return null;
      }
      return ((await res.json()) as { data: Answer }).data;
    } catch {
      return null;
    }
  }

  private keep(a: Answer, request: VerifyRequest, stamp: number): Entry {
    const verdict: Verdict = Object.freeze({
      valid: a.valid,
      code: a.code,
      keyId: a.key_id,
      credentialId: a.credential_id,
      companyId: a.company_id,
      environment: a.environment,
      permissions: Object.freeze([...a.permissions]),
      expiresAt: a.expires_at,
      rateLimit: a.rate_limit,
      remaining: a.remaining ?? null,
      meta: a.meta ?? null,
      externalId: a.external_id ?? null,
      merchantAccountId: a.merchant_account_id ?? null,
      source: "cache" as const,
    });
    const entry: Entry = {
      verdict,
      held: new Set(a.permissions),
      expiresAtMs: a.expires_at === null ? null : Date.parse(a.expires_at),
      until: 0,
      fingerprint: "",
    };
    // A key with rate limits is asked every time, so Latchkey counts every request; and nothing read
    // before a change arrived is kept.
    // A key with credits likewise: each request spends, so Latchkey must see every one.
    if ((a.remaining ?? null) !== null || a.code === "USAGE_EXCEEDED") {
      if (this.metered.size >= 100_000) this.metered.clear();
      // Credits belong to the key, whatever address asks.
      this.metered.add(perKey(request));
      return entry;
    }
    if (!KEEPABLE.has(a.code) || a.rate_limit !== null) return entry;
    const fingerprint = createHash("sha256").update(request.key).digest("base64url");
    if (this.changedSince(stamp, a, fingerprint)) return entry;
    const negative = a.code === "NOT_FOUND" || a.code === "MALFORMED";
    entry.until = this.opts.clock() + (negative ? Math.min(this.opts.negativeTtlMs, this.ttl()) : this.ttl());
    entry.fingerprint = fingerprint;
    // Only an answer Latchkey says is the same from everywhere is kept once for every address; an older
    // Latchkey, which does not say, is taken to mean it may not be.
    const ck = a.ip_restricted === false ? perKey(request) : perAddress(request);
    this.drop(ck);
    this.entries.set(ck, entry);
    index(this.byFingerprint, entry.fingerprint, ck);
    if (a.key_id !== null) index(this.byKeyId, a.key_id, ck);
    if (a.credential_id !== null) index(this.byCredential, a.credential_id, ck);
    return entry;
  }

  /** Whether a change since `stamp` touches this answer (or cannot be told apart: too long ago). */
  private changedSince(stamp: number, a: Answer, fingerprint: string): boolean {
    if (stamp === this.stamp) return false;
    const oldest = this.recent[0]?.stamp ?? this.stamp + 1;
    if (stamp + 1 < oldest) return true;
    return this.recent.some(
      ({ stamp: at, touches }) =>
        at > stamp &&
        (touches === "all" ||
          (touches.kind === "key" && touches.key_id === a.key_id) ||
          (touches.kind === "credential" && touches.credential_id === a.credential_id) ||
          // A new key only makes a "no such key" answer wrong.
          (touches.kind === "key_created" &&
            touches.fingerprint === fingerprint &&
            !a.valid &&
            a.key_id === null)),
    );
  }

  private noteChange(touches: Record<string, string> | "all"): void {
    this.stamp++;
    this.recent.push({ stamp: this.stamp, touches });
    if (this.recent.length > 1000) this.recent.shift();
  }

  private apply(change: Record<string, string>): void {
    this.noteChange(change);
    const ids =
      change.kind === "key"
        ? this.byKeyId.get(change.key_id as string)
        : change.kind === "credential"
          ? this.byCredential.get(change.credential_id as string)
          : this.byFingerprint.get(change.fingerprint as string);
    if (ids) for (const ck of [...ids]) this.drop(ck);
  }

  private drop(ck: string): void {
    const entry = this.entries.get(ck);
    if (entry === undefined) return;
    this.entries.delete(ck);
    unindex(this.byFingerprint, entry.fingerprint, ck);
    if (entry.verdict.keyId !== null) unindex(this.byKeyId, entry.verdict.keyId, ck);
    if (entry.verdict.credentialId !== null) unindex(this.byCredential, entry.verdict.credentialId, ck);
  }

  private clear(): void {
    this.noteChange("all");
    this.entries.clear();
    this.byKeyId.clear();
    this.byCredential.clear();
    this.byFingerprint.clear();
  }

  /** Answers kept now. */
  get size(): number {
    return this.entries.size;
  }
}

/**
 * The cache key of an answer that may depend on the address: key, secret and address, with two newlines
 * always, where an address-independent answer's ("K" or "K\nS") has at most one. Keys and secrets with a
 * newline never pass the checksum, so the two kinds never meet.
 */
/** The cache key of an answer that is the same from every address: the key (and its secret). */
function perKey(request: VerifyRequest): string {
  return request.secret === undefined ? request.key : `${request.key}\n${request.secret}`;
}

function perAddress(request: VerifyRequest): string {
  return `${request.key}\n${request.secret ?? ""}\n${request.ip ?? ""}`;
}

function index(map: Map<string, Set<string>>, id: string, ck: string): void {
  let set = map.get(id);
  if (!set) {
    set = new Set();
    map.set(id, set);
  }
  set.add(ck);
}

function unindex(map: Map<string, Set<string>>, id: string, ck: string): void {
  const set = map.get(id);
  set?.delete(ck);
  if (set?.size === 0) map.delete(id);
}
