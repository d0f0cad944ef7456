import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LOG_LEVELS } from "../../src/config.ts";
import { BACKENDS, TEST_DATABASE_URL } from "../helpers/backends.ts";
import { BIN, baseEnv, killChildren, type Result, ROOT, run } from "../helpers/cli.ts";
import { freePort } from "../helpers/nodes.ts";

/**
 * What an operator sees when `latchkey serve` or `bootstrap` cannot start: one line on stderr that
 * names the setting or resource to fix, exit 1, and no stack trace (unless LOG_LEVEL=debug).
 */

const SLOW = { timeout: 120_000 };
const SECRET = randomBytes(36).toString("base64url");

const dirs: string[] = [];
const mounts: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-start-"));
  dirs.push(dir);
  return dir;
};

afterAll(() => {
  killChildren();
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The one line a failed start printed, after checking that it is one line, exit 1, no stack. */
function oneLine(result: Result): string {
  expect(result.code, result.stderr).toBe(1);
  const text = result.stderr.trim();
  expect(text.split("\n"), text).toHaveLength(1);
  expect(text).toMatch(/^latchkey: /);
  expect(text).not.toMatch(/\n\s+at |Error: /);
  return text;
}

/** A small tmpfs of the test's own, or null where mounting is not permitted. */
function tmpfs(size: string): string | null {
  const dir = tempDir();
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (mounted.status !== 0) return null;
  mounts.push(dir);
  return dir;
}
const CAN_MOUNT = (() => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-mount-probe-"));
  const ok = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).status === 0;
  if (ok) spawnSync("umount", [dir]);
  rmSync(dir, { recursive: true, force: true });
  if (!ok) console.warn("skipping the disk-full start-up tests: mount -t tmpfs is not permitted here");
  return ok;
})();

describe("serve refuses to start, in one line", () => {
  let holder: NetServer | undefined;
  afterAll(() => holder?.close());

  it("when its port is taken, before it initialises a fresh data dir", SLOW, async () => {
    const port = await freePort();
    holder = createServer();
    await new Promise<void>((r) => holder?.listen(port, "127.0.0.1", r));
    const dataDir = join(tempDir(), "fresh");
    const result = await run(["serve"], baseEnv({ LATCHKEY_DATA_DIR: dataDir, PORT: String(port) }));
    const line = oneLine(result);
    expect(line).toContain(`port ${port} is already in use`);
    expect(line).toContain("PORT");
    // Found before the slow work: the data dir was not initialised (nor even created).
    expect(existsSync(join(dataDir, "pgdata"))).toBe(false);
  });

  it("when DATABASE_URL is not a URL (localhost/db), naming it", SLOW, async () => {
    const line = oneLine(await run(["serve"], baseEnv({ DATABASE_URL: "localhost/db", PORT: "0" })));
    expect(line).toContain("DATABASE_URL must be a postgres:// or postgresql:// URL");
    expect(line).toContain('"localhost/db"');
  });

  it("does not echo the password of a DATABASE_URL it refuses", SLOW, async () => {
    const line = oneLine(
      await run(["serve"], baseEnv({ DATABASE_URL: "mysql://app:hunter2secret@db/x", PORT: "0" })),
    );
    expect(line).toContain("DATABASE_URL");
    expect(line).not.toContain("hunter2secret");
  });

  it("when nothing listens at DATABASE_URL's port", SLOW, async () => {
    const port = await freePort();
    const line = oneLine(
      await run(
        ["serve"],
        baseEnv({
          DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test`,
          LATCHKEY_SECRET: SECRET,
          PORT: "0",
        }),
      ),
    );
    expect(line).toContain(`PostgreSQL at 127.0.0.1:${port} refused the connection (DATABASE_URL)`);
  });

  it("prints the stack as well with LOG_LEVEL=debug", SLOW, async () => {
    const port = await freePort();
    const result = await run(
      ["serve"],
      baseEnv({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test`,
        LATCHKEY_SECRET: SECRET,
        PORT: "0",
        LOG_LEVEL: "debug",
      }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^latchkey: PostgreSQL at .* refused the connection/);
    expect(result.stderr).toMatch(/\n\s+at /);
  });

  it.runIf(BACKENDS.includes("postgres"))("when DATABASE_URL's database does not exist", SLOW, async () => {
    const url = new URL(TEST_DATABASE_URL);
    const name = `latchkey_missing_${randomBytes(4).toString("hex")}`;
    url.pathname = `/${name}`;
    const line = oneLine(
      await run(["serve"], baseEnv({ DATABASE_URL: url.href, LATCHKEY_SECRET: SECRET, PORT: "0" })),
    );
    expect(line).toContain(`the database "${name}" does not exist on ${url.hostname}:${url.port || 5432}`);
    expect(line).toContain("DATABASE_URL");
  });

  it("when DATABASE_URL's host name is unknown", SLOW, (ctx) => {
    // The name is looked up with no name server configured (an empty resolv.conf in a mount namespace
    // of its own), so the lookup fails on this machine and no query leaves it.
    const resolv = join(tempDir(), "resolv.conf");
    writeFileSync(resolv, "");
    const env = baseEnv({
      DATABASE_URL: "postgres://postgres@no-such-db-host.invalid:5432/test",
      LATCHKEY_SECRET: SECRET,
      PORT: "0",
    });
    const script = `mount --bind ${resolv} /etc/resolv.conf && exec "${process.execPath}" "${BIN}" serve`;
    const probe = spawnSync("unshare", ["-m", "sh", "-c", `mount --bind ${resolv} /etc/resolv.conf`]);
    if (probe.status !== 0) {
      console.warn("skipping the unknown-host start-up test: unshare -m is not permitted here");
      ctx.skip();
    }
    const result = spawnSync("unshare", ["-m", "sh", "-c", script], {
      cwd: ROOT,
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    const line = oneLine({ code: result.status, signal: null, stdout: result.stdout, stderr: result.stderr });
    expect(line).toMatch(
      /the PostgreSQL host "no-such-db-host\.invalid" in DATABASE_URL cannot be resolved \((ENOTFOUND|EAI_AGAIN)\)/,
    );
  });

  it("when LOG_LEVEL is not a level, listing the levels", SLOW, async () => {
    const line = oneLine(await run(["serve"], baseEnv({ LOG_LEVEL: "verbose", PORT: "0" })));
    expect(line).toContain("LOG_LEVEL");
    expect(line).toContain('"verbose"');
    for (const level of LOG_LEVELS) expect(line).toContain(level);
  });

  it.runIf(CAN_MOUNT)("when the disk of a fresh data dir is too small to initialise it", SLOW, async () => {
    const disk = tmpfs("5m") as string;
    const dataDir = join(disk, "data");
    const line = oneLine(await run(["serve"], baseEnv({ LATCHKEY_DATA_DIR: dataDir, PORT: "0" })));
    expect(line).toContain(`the disk holding ${dataDir} (LATCHKEY_DATA_DIR) is full`);
    // Nothing half-made is left to fail the next start.
    expect(existsSync(join(dataDir, "pgdata"))).toBe(false);
  });

  it.runIf(CAN_MOUNT)("when the disk is full before the lock can be written", SLOW, async () => {
    const disk = tmpfs("1m") as string;
    const dataDir = join(disk, "data");
    mkdirSync(dataDir);
    spawnSync("dd", ["if=/dev/zero", `of=${join(disk, "filler")}`, "bs=64k"]);
    const line = oneLine(await run(["serve"], baseEnv({ LATCHKEY_DATA_DIR: dataDir, PORT: "0" })));
    expect(line).toContain(`the disk holding ${dataDir} (LATCHKEY_DATA_DIR) is full`);
  });
});

describe("bootstrap refuses bad input in one line", () => {
  it("names --owner-email when it is not an email address, before touching any store", SLOW, async () => {
    const dataDir = join(tempDir(), "none");
    const result = await run(
      ["bootstrap", "--company", "Acme", "--owner-email", "notanemail", "--create-store"],
      baseEnv({ LATCHKEY_DATA_DIR: dataDir }),
    );
    const line = oneLine(result);
    expect(line).toBe('latchkey: --owner-email "notanemail" is not an email address');
    expect(result.stdout).toBe("");
    expect(existsSync(dataDir)).toBe(false);
  });
});
