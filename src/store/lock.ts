import { linkSync, mkdirSync, readFileSync, readlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** What the holder of a data dir writes into its lock file, so a second opener can name it. */
export interface LockInfo {
  pid: number;
  command: string;
  started_at: string;
  /**
   * Who the pid is beyond its number, where Linux says (absent in older locks): the kernel's boot id and
   * the process's start time in clock ticks since boot (/proc/<pid>/stat field 22). A pid alive with
   * another start time, or after another boot, is a different process that reused the number.
   */
  boot_id?: string;
  proc_start?: number;
  /** Set once the server listens: where CLI commands reach it instead of opening the store. */
  url?: string;
  /** A per-process token that lets a local CLI call the running server's admin routes. */
  control_token?: string;
}

export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
  constructor(
    readonly dataDir: string,
    readonly holder: LockInfo,
  ) {
    super(
      `the data dir ${dataDir} is in use by "latchkey ${holder.command}" (pid ${holder.pid}` +
        `${holder.url ? `, serving ${holder.url}` : ""}, since ${holder.started_at}). ` +
        "Two processes on one embedded store lose writes, so only one may open it: stop that process, " +
        "or let the CLI talk to it over HTTP.",
    );
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The start time of a pid in clock ticks since boot, or undefined where /proc cannot say. A /proc that
 * belongs to another PID namespace (a new namespace without its own mount) names other processes, so it
 * is used only when /proc/self is this process.
 */
function startTicks(pid: number): number | undefined {
  try {
    if (readlinkSync("/proc/self") !== String(process.pid)) return undefined;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 is the command in parentheses and may hold spaces or ")": count from the last ")".
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    return Number.isSafeInteger(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/** Lock files this process holds, so its own pid in a lock without a start time can still be told apart. */
const heldHere = new Set<string>();

/** Whether the process a lock names is still the one that wrote it. */
function holderLive(info: LockInfo, path: string): boolean {
  if (!alive(info.pid)) return false;
  const boot = bootId();
  if (info.boot_id && boot && info.boot_id !== boot) return false;
  const start = startTicks(info.pid);
  if (info.proc_start !== undefined && start !== undefined) return info.proc_start === start;
  // No start time to compare (an older lock, or no /proc): our own pid is a holder only if this process
  // holds the lock. Otherwise it was left by an earlier process with our number, as every restart of a
  // container's PID 1 is.
  if (info.pid === process.pid) return heldHere.has(resolve(path));
  return true;
}

export function lockPath(dataDir: string): string {
  return join(dataDir, "latchkey.lock");
}

/** Reads the lock of a data dir; null when nobody alive holds it. */
export function readLock(dataDir: string): LockInfo | null {
  const path = lockPath(dataDir);
  try {
    const info = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
    return typeof info.pid === "number" && holderLive(info, path) ? info : null;
  } catch {
    return null;
  }
}

export interface DataDirLock {
  update(patch: Partial<LockInfo>): void;
  release(): void;
}

/**
 * Takes the data dir for this process alone. The lock file is created with O_EXCL; a lock left by a
 * process that died, or whose pid now belongs to another process (this one included), is taken over.
 */
export function acquireDataDirLock(dataDir: string, command: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = lockPath(dataDir);
  const boot_id = bootId();
  const proc_start = startTicks(process.pid);
  let info: LockInfo = {
    pid: process.pid,
    command,
    started_at: new Date().toISOString(),
    ...(boot_id === undefined ? {} : { boot_id }),
    ...(proc_start === undefined ? {} : { proc_start }),
  };
  // The lock is written in full to a private file and then hard-linked into place: link() fails if the
  // lock exists, and a reader never sees a half-written lock.
  const tmp = `${path}.${process.pid}.${Date.now()}`;
  writeFileSync(tmp, JSON.stringify(info), { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const holder = readLock(dataDir);
        if (holder) throw new DataDirLockedError(dataDir, holder);
        if (attempt > 0) throw err;
        unlinkSync(path);
      }
    }
  } finally {
    unlinkSync(tmp);
  }
  heldHere.add(resolve(path));
  let released = false;
  return {
    update(patch) {
      info = { ...info, ...patch };
      writeFileSync(path, JSON.stringify(info), { mode: 0o600 });
    },
    release() {
      if (released) return;
      released = true;
      heldHere.delete(resolve(path));
      try {
        const current = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
        if (current.pid === process.pid && current.proc_start === info.proc_start) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
