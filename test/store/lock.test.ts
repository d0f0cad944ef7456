import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, describe, expect, it } from "vitest";
import { acquireDataDirLock, DataDirLockedError, lockPath, readLock } from "../../src/store/lock.ts";
import { openStore } from "../../src/store/store.ts";

const dirs: string[] = [];
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-lock-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The pid of a process that has exited, so no live process owns it (barring reuse, which is rare). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    child.once("exit", () => resolve());
    child.once("error", reject);
  });
  if (child.pid === undefined) throw new Error("no pid");
  return child.pid;
}

/** Runs fn and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("acquireDataDirLock", () => {
  it("creates latchkey.lock, mode 0600, naming this process", () => {
    const dir = freshDir();
    const lock = acquireDataDirLock(dir, "serve");
    try {
      const path = join(dir, "latchkey.lock");
      expect(lockPath(dir)).toBe(path);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const info = JSON.parse(readFileSync(path, "utf8"));
      expect(info).toMatchObject({ pid: process.pid, command: "serve" });
      expect(Number.isNaN(Date.parse(info.started_at))).toBe(false);
      expect(readLock(dir)).toMatchObject({ pid: process.pid, command: "serve" });
    } finally {
      lock.release();
    }
  });

  it("creates a missing data dir, private to its owner", () => {
    const dir = join(freshDir(), "nested", "data");
    const lock = acquireDataDirLock(dir, "serve");
    try {
      expect(statSync(dir).isDirectory()).toBe(true);
      expect(statSync(dir).mode & 0o077).toBe(0);
    } finally {
      lock.release();
    }
  });

  it("refuses a second acquire with an error naming the command, pid and url", () => {
    const dir = freshDir();
    const lock = acquireDataDirLock(dir, "serve");
    try {
      lock.update({ url: "http://127.0.0.1:45678", control_token: "t".repeat(43) });
      expect(statSync(lockPath(dir)).mode & 0o777).toBe(0o600);
      const err = thrown(() => acquireDataDirLock(dir, "migrate"));
      expect(err).toBeInstanceOf(DataDirLockedError);
      const message = (err as Error).message;
      expect(message).toContain('"latchkey serve"');
      expect(message).toContain(`pid ${process.pid}`);
      expect(message).toContain("http://127.0.0.1:45678");
      expect(message).toContain(dir);
      // The control token lets a caller act as the platform operator: it must not leak into messages.
      expect(message).not.toContain("t".repeat(43));
      expect((err as DataDirLockedError).holder).toMatchObject({ pid: process.pid, command: "serve" });
      // The refused attempt leaves the holder's lock in place.
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8")).url).toBe("http://127.0.0.1:45678");
    } finally {
      lock.release();
    }
  });

  it("names no url before the holder listens", () => {
    const dir = freshDir();
    const lock = acquireDataDirLock(dir, "bootstrap");
    try {
      const err = thrown(() => acquireDataDirLock(dir, "serve"));
      expect(err).toBeInstanceOf(DataDirLockedError);
      expect((err as Error).message).toContain('"latchkey bootstrap"');
      expect((err as Error).message).not.toContain("serving");
    } finally {
      lock.release();
    }
  });

  it("takes over a stale lock left by a process that died", async () => {
    const dir = freshDir();
    const pid = await deadPid();
    writeFileSync(
      lockPath(dir),
      JSON.stringify({ pid, command: "serve", started_at: new Date().toISOString(), url: "http://x" }),
      { mode: 0o600 },
    );
    expect(readLock(dir)).toBeNull();
    const lock = acquireDataDirLock(dir, "migrate");
    try {
      const info = JSON.parse(readFileSync(lockPath(dir), "utf8"));
      expect(info.pid).toBe(process.pid);
      expect(info.command).toBe("migrate");
      expect(info.url).toBeUndefined();
      expect(statSync(lockPath(dir)).mode & 0o777).toBe(0o600);
    } finally {
      lock.release();
    }
  });

  it("release removes the lock file, is idempotent, and frees the dir", () => {
    const dir = freshDir();
    const lock = acquireDataDirLock(dir, "serve");
    lock.release();
    expect(existsSync(lockPath(dir))).toBe(false);
    expect(readLock(dir)).toBeNull();
    lock.release();
    const again = acquireDataDirLock(dir, "serve");
    expect(existsSync(lockPath(dir))).toBe(true);
    again.release();
    expect(existsSync(lockPath(dir))).toBe(false);
  });
});

describe("openStore on a locked data dir", () => {
  it("refuses a second opener and leaves the first working", { timeout: 120_000 }, async () => {
    const dir = freshDir();
    const first = await openStore({ kind: "pglite", dataDir: dir });
    try {
      expect(first.lock).not.toBeNull();
      await expect(openStore({ kind: "pglite", dataDir: dir, command: "migrate" })).rejects.toBeInstanceOf(
        DataDirLockedError,
      );
      await expect(openStore({ kind: "pglite", dataDir: dir })).rejects.toThrow(`pid ${process.pid}`);
      await sql`CREATE TABLE t (n int)`.execute(first.db);
      await sql`INSERT INTO t VALUES (42)`.execute(first.db);
      const { rows } = await sql<{ n: number }>`SELECT n FROM t`.execute(first.db);
      expect(rows).toEqual([{ n: 42 }]);
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8")).pid).toBe(process.pid);
    } finally {
      await first.close();
    }
    expect(existsSync(lockPath(dir))).toBe(false);
  });
});
