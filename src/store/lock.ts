import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** What the holder of a data dir writes into its lock file, so a second opener can name it. */
export interface LockInfo {
  pid: number;
  command: string;
  started_at: string;
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

export function lockPath(dataDir: string): string {
  return join(dataDir, "latchkey.lock");
}

/** Reads the lock of a data dir; null when nobody alive holds it. */
export function readLock(dataDir: string): LockInfo | null {
  try {
    const info = JSON.parse(readFileSync(lockPath(dataDir), "utf8")) as LockInfo;
    return typeof info.pid === "number" && alive(info.pid) ? info : null;
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
 * process that died is taken over.
 */
export function acquireDataDirLock(dataDir: string, command: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = lockPath(dataDir);
  let info: LockInfo = { pid: process.pid, command, started_at: new Date().toISOString() };
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
  let released = false;
  return {
    update(patch) {
      info = { ...info, ...patch };
      writeFileSync(path, JSON.stringify(info), { mode: 0o600 });
    },
    release() {
      if (released) return;
      released = true;
      try {
        const current = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
        if (current.pid === process.pid) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
