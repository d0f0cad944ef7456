import { statfsSync } from "node:fs";
import type { Config } from "../config.ts";

/**
 * The CLI's one place that turns a failure into the line an operator reads: what went wrong and the
 * setting or resource to fix, without a stack trace (LOG_LEVEL=debug or trace adds it). Everything the
 * CLI reports goes through `failureLine`, so a new failure gets its line here and nowhere else.
 *
 * This file imports no store or server code: `latchkey --version` loads it too, and the errors are
 * told apart by their names and codes.
 */

/** What the CLI knew when it failed: the configuration once it was read. */
export interface FailureContext {
  config?: Config | undefined;
}

/** A platform call the running server answered with an error envelope (or a service's LatchkeyError). */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Our own errors whose message is already the line to print. */
const SAYS_WHAT_TO_FIX = new Set(["ConfigError", "DataDirLockedError", "MigrationError", "CommandError"]);

interface Described {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  address?: unknown;
  port?: unknown;
  message?: unknown;
  name?: unknown;
  errors?: unknown;
  cause?: unknown;
}

/** The error itself or, for Node's AggregateError (every address of a name refused), its first part. */
function parts(err: unknown): Described[] {
  if (typeof err !== "object" || err === null) return [];
  const e = err as Described;
  const nested = Array.isArray(e.errors) ? (e.errors as unknown[]).flatMap(parts) : [];
  return [e, ...nested, ...(e.cause ? parts(e.cause) : [])];
}

function codeOf(err: unknown): string | undefined {
  for (const p of parts(err)) if (typeof p.code === "string") return p.code;
  return undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Host, port and database of DATABASE_URL, never its password. */
function database(config: Config | undefined): { where: string; host: string; name: string } {
  try {
    const url = new URL(config?.databaseUrl ?? "");
    const host = decodeURIComponent(url.hostname) || url.searchParams.get("host") || "localhost";
    const name = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || "postgres";
    return { where: `${host}:${url.port || "5432"}`, host, name };
  } catch {
    return { where: "DATABASE_URL", host: "?", name: "?" };
  }
}

/** Bytes free for us on the file system of `path`, or null when it cannot be told. */
function bytesFree(path: string): number | null {
  try {
    const fs = statfsSync(path);
    return fs.bavail * fs.bsize;
  } catch {
    return null;
  }
}

/** Below this, an embedded store that fails to start is taken to have failed for want of space. */
const TOO_LITTLE_SPACE = 64 * 1024 * 1024;

function diskFull(config: Config | undefined): string {
  const where = config && !config.databaseUrl ? `${config.dataDir} (LATCHKEY_DATA_DIR)` : "the data dir";
  return `the disk holding ${where} is full: free some space there (or move LATCHKEY_DATA_DIR), then start again`;
}

/** The one line for a failure, without the "latchkey: " prefix. */
export function failureLine(err: unknown, { config }: FailureContext = {}): string {
  const name = err instanceof Error ? err.name : undefined;
  if (name && SAYS_WHAT_TO_FIX.has(name)) return messageOf(err);
  const code = codeOf(err);
  const first = parts(err)[0];

  if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
    const listen = parts(err).find((p) => p.syscall === "listen" || p.syscall === "bind");
    if (listen || code === "EADDRINUSE") {
      const at = `${config?.host ?? listen?.address ?? "?"}:${config?.port ?? listen?.port ?? "?"}`;
      if (code === "EADDRINUSE")
        return `port ${config?.port ?? listen?.port} is already in use (${at}; PORT, HOST): stop what holds it, or set PORT to a free port`;
      if (code === "EACCES")
        return `not allowed to listen on ${at} (PORT, HOST): ports below 1024 need privileges; set PORT to 1024 or more`;
      return `cannot listen on ${at}: HOST is not an address of this machine (PORT, HOST)`;
    }
  }

  const noSpace = code === "ENOSPC" || code === "EDQUOT" || /No space left on device/.test(messageOf(err));
  // SQLSTATE 53100 from PostgreSQL is the database server's disk, not this machine's.
  if (code === "53100" && config?.databaseUrl)
    return `the disk of PostgreSQL at ${database(config).where} is full (SQLSTATE 53100; DATABASE_URL): free space on the database server`;
  if (noSpace || code === "53100") return diskFull(config);

  if (config?.databaseUrl) {
    const db = database(config);
    switch (code) {
      case "3D000":
        return `the database "${db.name}" does not exist on ${db.where} (DATABASE_URL): create it (createdb ${db.name}), or point DATABASE_URL at one that does`;
      case "28P01":
      case "28000":
        return `PostgreSQL at ${db.where} refused the login (DATABASE_URL): ${messageOf(err)}`;
      case "ECONNREFUSED":
        return `PostgreSQL at ${db.where} refused the connection (DATABASE_URL): is it running, and is that its host and port?`;
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return `the PostgreSQL host "${db.host}" in DATABASE_URL cannot be resolved (${code}): check the host name`;
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return `PostgreSQL at ${db.where} cannot be reached (${code}; DATABASE_URL): check the address and the network`;
    }
    if (/^(timeout exceeded when trying to connect|Connection terminated)/.test(messageOf(err)))
      return `PostgreSQL at ${db.where} did not answer (DATABASE_URL): ${messageOf(err)}`;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code))
      return `PostgreSQL at ${db.where} refused (SQLSTATE ${code}; DATABASE_URL): ${messageOf(err)}`;
  } else if (config) {
    // PGlite ends its WebAssembly instance with "Aborted()" when a file it needs cannot be written; on a
    // full disk that is all it says.
    const aborted =
      /Aborted\(\)|initialising the embedded store/.test(messageOf(err)) || first?.name === "RuntimeError";
    if (aborted) {
      const free = bytesFree(config.dataDir);
      if (free !== null && free < TOO_LITTLE_SPACE) return diskFull(config);
      return `the embedded store in ${config.dataDir} (LATCHKEY_DATA_DIR) failed to start: ${messageOf(err).split("\n")[0]}`;
    }
  }
  return messageOf(err).split("\n")[0] ?? String(err);
}

/** Whether the operator asked for stack traces (LOG_LEVEL=debug or trace). */
export function wantsStacks(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LOG_LEVEL === "debug" || env.LOG_LEVEL === "trace";
}

/** What the CLI prints on stderr for a failure: one line, and the stack only when asked for. */
export function report(err: unknown, context: FailureContext = {}): string {
  const line = `latchkey: ${failureLine(err, context)}`;
  if (!wantsStacks()) return line;
  return `${line}\n${err instanceof Error ? (err.stack ?? "") : String(err)}`;
}
