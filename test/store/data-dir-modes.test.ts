import { spawnSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { baseEnv, killChildren, run, type Server, serve } from "../helpers/cli.ts";

/**
 * A data dir that already exists wide open (a mounted volume, 0777): after `latchkey serve` starts in
 * it, nothing under it is open to other users, the HMAC secret and the lock (which carries a token
 * that acts as the platform operator) least of all.
 */

const SLOW = { timeout: 180_000 };
const root = mkdtempSync(join(tmpdir(), "latchkey-modes-"));
const dataDir = join(root, "volume");

/** Every path under `dir` with its permission bits. */
function modes(dir: string): [string, number][] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const stat = lstatSync(path);
    const here: [string, number] = [path, stat.mode & 0o777];
    return stat.isDirectory() ? [here, ...modes(path)] : [here];
  });
}

/** Whether the user `nobody` can do `sh` (as root, the test can ask), or null where runuser is missing. */
function asNobody(script: string): boolean | null {
  const result = spawnSync("runuser", ["-u", "nobody", "--", "sh", "-c", script]);
  if (result.error) return null;
  return result.status === 0;
}

afterAll(() => {
  killChildren();
  rmSync(root, { recursive: true, force: true });
});

describe("the embedded data dir is owner-only", () => {
  let server: Server | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it(
    "after serve starts in a pre-made 0777 dir: 0700 dirs, no file open to group or world",
    SLOW,
    async () => {
      mkdirSync(dataDir);
      chmodSync(dataDir, 0o777);
      chmodSync(root, 0o755);
      server = await serve(baseEnv({ LATCHKEY_DATA_DIR: dataDir }));
      expect(lstatSync(dataDir).mode & 0o777).toBe(0o700);
      const all = modes(dataDir);
      expect(all.length).toBeGreaterThan(100);
      expect(all.filter(([, mode]) => mode & 0o077).map(([p, m]) => `${p} ${m.toString(8)}`)).toEqual([]);
      expect(lstatSync(join(dataDir, "secret")).mode & 0o777).toBe(0o600);
      expect(lstatSync(join(dataDir, "latchkey.lock")).mode & 0o777).toBe(0o600);
    },
  );

  it("keeps another user out of what the running store writes next", SLOW, async () => {
    const s = server as Server;
    const result = await run(
      ["bootstrap", "--company", "Modes Co", "--owner-email", "owner@modes.test", "--json"],
      baseEnv({ LATCHKEY_DATA_DIR: dataDir }),
    );
    expect(result.code, result.stderr).toBe(0);
    // Files PGlite makes from now on may carry 0666, but every directory above them is 0700.
    for (const [path, mode] of modes(dataDir))
      if (lstatSync(path).isDirectory()) expect(mode, path).toBe(0o700);
    const pgVersion = join(dataDir, "pgdata", "PG_VERSION");
    const can = asNobody(
      `cat ${join(dataDir, "secret")} || cat ${pgVersion} || ls ${dataDir} || : > ${pgVersion}`,
    );
    if (can === null) console.warn("runuser is missing: the check as another user is skipped");
    else expect(can).toBe(false);
    expect(await s.stop()).toBe(0);
    server = undefined;
  });

  it("tightens what an earlier start left open, at the next start", SLOW, async () => {
    // As a release before this one left it: PGlite's files 0666, the data dir 0777.
    chmodSync(dataDir, 0o777);
    chmodSync(join(dataDir, "pgdata", "PG_VERSION"), 0o666);
    // Something of the operator's beside Latchkey's files is not Latchkey's to change.
    const notes = join(dataDir, "operator-notes.txt");
    writeFileSync(notes, "backed up nightly\n");
    chmodSync(notes, 0o644);
    server = await serve(baseEnv({ LATCHKEY_DATA_DIR: dataDir }));
    expect(modes(dataDir).filter(([path, mode]) => mode & 0o077 && path !== notes)).toEqual([]);
    expect(lstatSync(dataDir).mode & 0o777).toBe(0o700);
    expect(lstatSync(notes).mode & 0o777).toBe(0o644);
  });
});
