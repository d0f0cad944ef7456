import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { sql } from "kysely";
import { afterAll, afterEach, describe, expect, it } from "vitest";
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

const ROOT = resolve(import.meta.dirname, "../..");
const LOCK_MODULE = pathToFileURL(join(ROOT, "src/store/lock.ts")).href;
const LINUX = process.platform === "linux";

/** Field n of /proc/<pid>/stat (counted from 1, as proc(5) does), read here independently of lock.ts. */
function statField(pid: number | "self", n: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[n - 3] as string;
}
const startOf = (pid: number | "self") => Number(statField(pid, 22));
const bootId = () => readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

/** A process that only stays alive, standing for whatever now owns a reused pid. */
async function bystander(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  if (child.pid === undefined) throw new Error("no pid");
  return child.pid;
}

// Opens the lock of a data dir in a process of its own and says so on stdout; "hold" keeps it (until
// SIGTERM releases it or SIGKILL ends the process), "once" releases it and exits.
const OPENER = `
const [url, dir, command, mode] = process.argv.slice(1);
const { acquireDataDirLock } = await import(url);
const lock = acquireDataDirLock(dir, command);
console.log(JSON.stringify({ held: process.pid }));
if (mode === "once") { lock.release(); process.exit(0); }
process.on("SIGTERM", () => { lock.release(); process.exit(0); });
setInterval(() => {}, 1000);
`;

interface Opener {
  child: ChildProcess;
  /** The pid the opener saw as its own (1 in a fresh PID namespace). */
  held: Promise<number>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

function opener(dir: string, command: string, mode: "hold" | "once", prefix: string[] = []): Opener {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const [bin = process.execPath, ...rest] = [
    ...prefix,
    process.execPath,
    ...["--import", "tsx", "--input-type=module", "-e", OPENER, LOCK_MODULE, dir, command, mode],
  ];
  const child = spawn(bin, rest, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stderr })),
  );
  const held = new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (d) => {
      stdout += d;
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { held: number }).held);
    });
    void exit.then(({ code }) => reject(new Error(`opener exited ${code} before holding: ${stderr}`)));
  });
  return { child, held, exit };
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
      if (LINUX) expect(info).toMatchObject({ boot_id: bootId(), proc_start: startOf("self") });
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

  it("takes over a lock in the old format naming our own pid, left by an earlier process", () => {
    // A container's PID 1 restarted after a kill -9 finds its own pid in the lock: that is not a holder.
    const dir = freshDir();
    writeFileSync(
      lockPath(dir),
      JSON.stringify({ pid: process.pid, command: "serve", started_at: "2026-01-01T00:00:00.000Z" }),
      { mode: 0o600 },
    );
    expect(readLock(dir)).toBeNull();
    const lock = acquireDataDirLock(dir, "serve");
    try {
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8")).started_at).not.toBe("2026-01-01T00:00:00.000Z");
      expect(readLock(dir)).toMatchObject({ pid: process.pid, command: "serve" });
    } finally {
      lock.release();
    }
  });

  it.runIf(LINUX)("takes over a lock naming our own pid with another start time", () => {
    const dir = freshDir();
    const stale = {
      pid: process.pid,
      command: "serve",
      started_at: "2026-01-01T00:00:00.000Z",
      boot_id: bootId(),
      proc_start: startOf("self") - 1,
    };
    writeFileSync(lockPath(dir), JSON.stringify(stale), { mode: 0o600 });
    expect(readLock(dir)).toBeNull();
    const lock = acquireDataDirLock(dir, "migrate");
    try {
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8"))).toMatchObject({
        pid: process.pid,
        command: "migrate",
        proc_start: startOf("self"),
      });
    } finally {
      lock.release();
    }
  });

  it.runIf(LINUX)("takes over a lock whose live pid started at another time or in another boot", async () => {
    // The pid is alive, but it is not the process that wrote the lock: the number was reused.
    const pid = await bystander();
    for (const who of [
      { boot_id: bootId(), proc_start: startOf(pid) + 1 },
      { boot_id: "00000000-0000-4000-8000-000000000000", proc_start: startOf(pid) },
    ]) {
      const dir = freshDir();
      writeFileSync(
        lockPath(dir),
        JSON.stringify({ pid, command: "serve", started_at: new Date().toISOString(), ...who }),
        { mode: 0o600 },
      );
      expect(readLock(dir)).toBeNull();
      const lock = acquireDataDirLock(dir, "serve");
      try {
        expect(JSON.parse(readFileSync(lockPath(dir), "utf8")).pid).toBe(process.pid);
      } finally {
        lock.release();
      }
    }
  });

  it("refuses a second acquire in this process when the lock carries no start time", () => {
    // Where /proc cannot say when a process started, this process still knows which locks it holds.
    const dir = freshDir();
    const lock = acquireDataDirLock(dir, "serve");
    try {
      writeFileSync(
        lockPath(dir),
        JSON.stringify({ pid: process.pid, command: "serve", started_at: new Date().toISOString() }),
      );
      expect(thrown(() => acquireDataDirLock(dir, "migrate"))).toBeInstanceOf(DataDirLockedError);
    } finally {
      lock.release();
    }
  });

  it("refuses while another live process holds the dir, and takes over once it is killed", async () => {
    const dir = freshDir();
    const first = opener(dir, "serve", "hold");
    const pid = await first.held;
    expect(pid).toBe(first.child.pid);
    const err = thrown(() => acquireDataDirLock(dir, "migrate"));
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect((err as Error).message).toContain(`"latchkey serve" (pid ${pid}`);
    expect(readLock(dir)).toMatchObject({ pid, command: "serve" });
    first.child.kill("SIGKILL");
    await first.exit;
    expect(existsSync(lockPath(dir))).toBe(true);
    const lock = acquireDataDirLock(dir, "migrate");
    try {
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8"))).toMatchObject({
        pid: process.pid,
        command: "migrate",
      });
    } finally {
      lock.release();
    }
  });

  it("still refuses a lock in the old format naming another live process", async () => {
    const dir = freshDir();
    const pid = await bystander();
    writeFileSync(
      lockPath(dir),
      JSON.stringify({ pid, command: "serve", started_at: new Date().toISOString() }),
      { mode: 0o600 },
    );
    const err = thrown(() => acquireDataDirLock(dir, "migrate"));
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect((err as Error).message).toContain(`pid ${pid}`);
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

/** Why this sandbox cannot run a process as PID 1 of a new PID namespace, or null when it can. */
function unshareProblem(): string | null {
  if (!LINUX) return "not Linux";
  const probe = spawnSync("unshare", ["-pf", "--mount-proc", "true"], { encoding: "utf8" });
  if (probe.error) return `unshare: ${probe.error.message}`;
  if (probe.status !== 0) return `unshare -pf --mount-proc: ${probe.stderr.trim() || `exit ${probe.status}`}`;
  return null;
}
const NO_UNSHARE = unshareProblem();

/** The pids of the processes whose parent is pid, from /proc. */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statField(Number(entry), 4)) === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe.skipIf(NO_UNSHARE !== null)(
  `a container's PID 1${NO_UNSHARE ? ` (skipped: ${NO_UNSHARE})` : ""}`,
  () => {
    it("starts again as PID 1 after a kill -9 left its lock", { timeout: 60_000 }, async () => {
      const dir = freshDir();
      const UNSHARE = ["unshare", "-pf", "--mount-proc"];
      const first = opener(dir, "serve", "hold", UNSHARE);
      expect(await first.held).toBe(1);
      // unshare -f forks the namespace's PID 1: kill that process, as a crash would, not unshare.
      const [init] = childPids(first.child.pid as number);
      expect(init).toBeDefined();
      process.kill(init as number, "SIGKILL");
      await first.exit;
      expect(JSON.parse(readFileSync(lockPath(dir), "utf8"))).toMatchObject({ pid: 1, command: "serve" });

      const second = opener(dir, "serve", "once", UNSHARE);
      expect(await second.held).toBe(1);
      expect((await second.exit).code).toBe(0);
      expect(existsSync(lockPath(dir))).toBe(false);
    });
  },
);

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
