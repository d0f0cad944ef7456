import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type Catalog, loadCatalog } from "./core/catalog.ts";
import defaultCatalog from "./core/default-catalog.json" with { type: "json" };
import { normalizeAllowlist } from "./core/ip.ts";
import { BRAND_PATTERN } from "./core/key-format.ts";
import { parseLimitList, type RateLimit } from "./core/rate-limit.ts";
import { parseScanningKeys } from "./core/secret-scanning.ts";

/** Everything Latchkey reads from its environment, checked once at start-up. */
export interface Config {
  port: number;
  host: string;
  /** Set: PostgreSQL. Unset: the embedded store in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** The HMAC secret for key hashes; on the embedded store a generated one is kept in the data dir. */
  secret: string | undefined;
  keyPrefix: string;
  catalog: Catalog;
  adminToken: string | undefined;
  trustedProxies: string[];
  bodyLimit: number;
  /** Milliseconds a request's headers and body have to arrive before it gets 408. */
  requestTimeoutMs: number;
  usageFlushMs: number;
  /** How often the expiry scheduler sweeps for notices to send and unused keys to revoke. */
  expirySweepMs: number;
  sessionIdleMinutes: number;
  sessionMaxHours: number;
  logLevel: string;
  /** Set: cluster mode (the change bus and shared rate limits go through this Redis). */
  redisUrl: string | undefined;
  redisPrefix: string;
  /** In cluster mode while Redis is away: count limits on this node ("open") or refuse ("closed"). */
  rateLimitWhenRedisDown: "open" | "closed";
  loginLimits: RateLimit[];
  loginIpLimits: RateLimit[];
  cacheTtlMs: number;
  /** The cache TTL while this node cannot hear the other nodes' changes. */
  degradedCacheTtlMs: number;
  cacheMaxKeys: number;
  /** How long past its TTL a cached key is still answered while the store cannot be reached. */
  cacheGraceMs: number;
  /** How long a Redis command, or the bus's heartbeat, may take before Redis counts as away. */
  redisTimeoutMs: number;
  /** GitHub's secret scanning public keys document; unset: POST /v1/leaks/github answers 404. */
  githubScanningKeys: string | undefined;
  /** Public leak reports (POST /v1/leaks) per client address. */
  leakReportLimits: RateLimit[];
  /** Special networks (loopback, private, …) webhooks may still be delivered to: CIDRs or addresses. */
  webhookAllowedNetworks: string[];
  /** How long a webhook attempt may take. */
  webhookTimeoutMs: number;
  /** Set: invitations, reset links and security notices go out by SMTP (`smtp://` or `smtps://`). */
  smtpUrl: string | undefined;
  /** The From of every message; required with `smtpUrl`. */
  smtpFrom: string | undefined;
  /** Where people reach the console: the base of reset and invitation links. */
  publicUrl: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** pino's levels (what Fastify's logger takes), and "silent" for none. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * A PostgreSQL connection string. node-postgres reads anything else as a socket path or a host name
 * ("localhost/db" becomes a lookup of the host "base"), so only a URL is taken (a socket directory
 * goes in `?host=`). A password in a bad value is not echoed.
 */
function databaseUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // not a URL at all
  }
  if (url === null || (url.protocol !== "postgres:" && url.protocol !== "postgresql:")) {
    const shown = raw.replace(/\/\/[^/@]*@/, "//…@");
    throw new ConfigError(
      `DATABASE_URL must be a postgres:// or postgresql:// URL such as postgres://user:password@host:5432/db (got "${shown}")`,
    );
  }
  return raw;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
  }
  return value;
}

/** A list such as "10/1m,100/1h"; "off" means none. */
function limitList(env: NodeJS.ProcessEnv, name: string, fallback: string): RateLimit[] {
  const raw = env[name] || fallback;
  if (raw.trim() === "off") return [];
  const limits = parseLimitList(raw);
  if (limits === null || limits.length === 0) {
    throw new ConfigError(
      `${name} must be comma-separated limit/window pairs such as "10/1m,100/1h", or "off" (got "${raw}")`,
    );
  }
  return limits;
}

function logLevel(raw: string | undefined): string {
  const level = raw || "info";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${level}")`);
  }
  return level;
}

export function readCatalog(path: string | undefined): Catalog {
  if (!path) return loadCatalog(defaultCatalog);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`LATCHKEY_CATALOG: cannot read ${path} as JSON: ${(err as Error).message}`);
  }
  try {
    return loadCatalog(doc);
  } catch (err) {
    throw new ConfigError(`LATCHKEY_CATALOG (${path}): ${(err as Error).message}`);
  }
}

/** The path of GitHub's public keys document, checked now so a bad file stops start-up, not a report. */
function scanningKeysPath(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const path = resolve(raw);
  const name = "LATCHKEY_GITHUB_SECRET_SCANNING_KEYS";
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path} as JSON: ${(err as Error).message}`);
  }
  try {
    parseScanningKeys(doc);
  } catch (err) {
    throw new ConfigError(`${name} (${path}): ${(err as Error).message}`);
  }
  return path;
}

/** SMTP_URL as nodemailer takes it; a password in a bad value is not echoed. */
function smtpUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // not a URL at all
  }
  if (url === null || (url.protocol !== "smtp:" && url.protocol !== "smtps:") || !url.hostname) {
    const shown = raw.replace(/\/\/[^/@]*@/, "//…@");
    throw new ConfigError(
      `SMTP_URL must be an smtp:// or smtps:// URL such as smtps://user:password@mail.example.com:465 (got "${shown}")`,
    );
  }
  return raw;
}

/**
 * The console's address as people reach it. Links in mail must work from a person's inbox, so with
 * SMTP it must be given; without, links are printed for the operator and the listen address will do.
 */
function publicUrl(raw: string | undefined, smtp: boolean, host: string, port: number): string {
  if (!raw) {
    if (smtp) {
      throw new ConfigError(
        "LATCHKEY_PUBLIC_URL is required with SMTP_URL: the address of the console in the links people get by email, e.g. https://keys.example.com",
      );
    }
    const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    return `http://${shown}:${port}`;
  }
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // not a URL at all
  }
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
    throw new ConfigError(
      `LATCHKEY_PUBLIC_URL must be an http:// or https:// URL with no query or fragment, e.g. https://keys.example.com (got "${raw}")`,
    );
  }
  return raw.replace(/\/+$/, "");
}

function smtpFrom(raw: string | undefined, smtp: boolean): string | undefined {
  if (!raw) {
    if (smtp)
      throw new ConfigError('SMTP_FROM is required with SMTP_URL, e.g. "Latchkey <keys@example.com>"');
    return undefined;
  }
  // An address alone, or a display name and <address>; no line breaks (they would start new headers).
  if (/[\r\n]/.test(raw) || !/^(?:[^<>@\s]+@[^<>@\s]+|[^<>]*<[^<>@\s]+@[^<>@\s]+>)$/.test(raw.trim())) {
    throw new ConfigError(`SMTP_FROM must be an email address or "Name <address>" (got "${raw}")`);
  }
  return raw.trim();
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const keyPrefix = env.LATCHKEY_KEY_PREFIX || "lk";
  if (!BRAND_PATTERN.test(keyPrefix)) {
    throw new ConfigError(
      `LATCHKEY_KEY_PREFIX must be 1-16 lowercase letters and digits, starting with a letter (got "${keyPrefix}")`,
    );
  }
  const secret = env.LATCHKEY_SECRET || undefined;
  if (secret !== undefined && secret.length < 32) {
    throw new ConfigError("LATCHKEY_SECRET must be at least 32 characters long");
  }
  const adminToken = env.LATCHKEY_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 24) {
    throw new ConfigError("LATCHKEY_ADMIN_TOKEN must be at least 24 characters long");
  }
  const proxies = (env.LATCHKEY_TRUSTED_PROXIES ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const trusted = normalizeAllowlist(proxies);
  if (!trusted.ok) {
    throw new ConfigError(`LATCHKEY_TRUSTED_PROXIES: "${trusted.invalid}" ${trusted.reason}`);
  }
  const whenDown = env.LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN || "open";
  if (whenDown !== "open" && whenDown !== "closed") {
    throw new ConfigError(
      `LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN must be "open" or "closed" (got "${whenDown}")`,
    );
  }
  const loginLimits = limitList(env, "LATCHKEY_LOGIN_RATE_LIMIT", "10/1m,100/1h");
  const loginIpLimits = limitList(env, "LATCHKEY_LOGIN_IP_RATE_LIMIT", "60/1m,600/1h");
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError(`REDIS_URL must start with redis:// or rediss:// (got "${redisUrl}")`);
  }
  const cacheTtlMs = integer(env, "LATCHKEY_CACHE_TTL_MS", 10_000, 0, 3_600_000);
  const webhookNetworks = normalizeAllowlist(
    (env.LATCHKEY_WEBHOOK_ALLOWED_NETWORKS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
  if (!webhookNetworks.ok) {
    throw new ConfigError(
      `LATCHKEY_WEBHOOK_ALLOWED_NETWORKS: "${webhookNetworks.invalid}" ${webhookNetworks.reason}`,
    );
  }
  const port = integer(env, "PORT", 8080, 0, 65535);
  const host = env.HOST || "0.0.0.0";
  const smtp = smtpUrl(env.SMTP_URL);
  return {
    port,
    host,
    databaseUrl: databaseUrl(env.DATABASE_URL),
    dataDir: resolve(env.LATCHKEY_DATA_DIR || ".latchkey"),
    secret,
    keyPrefix,
    catalog: readCatalog(env.LATCHKEY_CATALOG || undefined),
    adminToken,
    trustedProxies: trusted.entries,
    bodyLimit: integer(env, "LATCHKEY_BODY_LIMIT", 64 * 1024, 1024, 10 * 1024 * 1024),
    requestTimeoutMs: integer(env, "LATCHKEY_REQUEST_TIMEOUT_MS", 10_000, 1000, 3_600_000),
    usageFlushMs: integer(env, "LATCHKEY_USAGE_FLUSH_MS", 5000, 100, 3_600_000),
    expirySweepMs: integer(env, "LATCHKEY_EXPIRY_SWEEP_MS", 60_000, 1000, 86_400_000),
    sessionIdleMinutes: integer(env, "LATCHKEY_SESSION_IDLE_MINUTES", 30, 1, 24 * 60),
    sessionMaxHours: integer(env, "LATCHKEY_SESSION_MAX_HOURS", 12, 1, 24 * 30),
    logLevel: logLevel(env.LOG_LEVEL),
    redisUrl,
    redisPrefix: env.LATCHKEY_REDIS_PREFIX || "latchkey:",
    rateLimitWhenRedisDown: whenDown,
    loginLimits,
    loginIpLimits,
    cacheTtlMs,
    degradedCacheTtlMs: Math.min(cacheTtlMs, integer(env, "LATCHKEY_DEGRADED_CACHE_TTL_MS", 1000, 0, 60_000)),
    cacheMaxKeys: integer(env, "LATCHKEY_CACHE_MAX_KEYS", 100_000, 0, 10_000_000),
    cacheGraceMs: integer(env, "LATCHKEY_CACHE_GRACE_MS", 60_000, 0, 3_600_000),
    redisTimeoutMs: integer(env, "LATCHKEY_REDIS_TIMEOUT_MS", 500, 50, 10_000),
    githubScanningKeys: scanningKeysPath(env.LATCHKEY_GITHUB_SECRET_SCANNING_KEYS),
    leakReportLimits: limitList(env, "LATCHKEY_LEAK_REPORT_RATE_LIMIT", "10/1m,100/1h"),
    webhookAllowedNetworks: webhookNetworks.entries,
    webhookTimeoutMs: integer(env, "LATCHKEY_WEBHOOK_TIMEOUT_MS", 15_000, 1000, 60_000),
    smtpUrl: smtp,
    smtpFrom: smtpFrom(env.SMTP_FROM, smtp !== undefined),
    publicUrl: publicUrl(env.LATCHKEY_PUBLIC_URL, smtp !== undefined, host, port),
  };
}
