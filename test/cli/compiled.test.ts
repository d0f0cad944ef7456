import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseEnv, killChildren, ROOT, run, serve } from "../helpers/cli.ts";

/**
 * `npm start` runs the compiled CLI (tsconfig.build.json, as `npm run build:server` makes it), not
 * TypeScript through tsx. This builds it the same way into a directory of its own beside dist/ (so the
 * paths it finds package.json, node_modules and the console by are the same) and runs it with plain
 * node, which cannot run a .ts file: if anything still needed tsx, it would fail to start.
 */

const SLOW = { timeout: 240_000 };
const out = mkdtempSync(join(ROOT, "dist-test-"));
const entry = join(out, "cli/main.js");

beforeAll(() => {
  execFileSync(
    process.execPath,
    [
      join(ROOT, "node_modules/typescript/bin/tsc"),
      "-p",
      join(ROOT, "tsconfig.build.json"),
      "--outDir",
      out,
      "--tsBuildInfoFile",
      join(out, ".tsbuildinfo"),
    ],
    { cwd: ROOT, stdio: "inherit" },
  );
}, SLOW.timeout);

afterAll(() => {
  killChildren();
  rmSync(out, { recursive: true, force: true });
});

describe("the compiled CLI", () => {
  it("is JavaScript only, with the catalog it imports beside it", () => {
    expect(existsSync(entry)).toBe(true);
    expect(readFileSync(entry, "utf8")).not.toMatch(/from "\.[^"]*\.ts"|import\("\.[^"]*\.ts"\)/);
    expect(existsSync(join(out, "core/default-catalog.json"))).toBe(true);
  });

  it("prints its version", SLOW, async () => {
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    const result = await run(["--version"], baseEnv({}), 30_000, entry);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });

  it("serves: /healthz answers on a fresh embedded store, and SIGTERM exits 0", SLOW, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "latchkey-compiled-"));
    try {
      const server = await serve(baseEnv({ LATCHKEY_DATA_DIR: dataDir }), entry);
      const res = await fetch(`${server.url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ok", store: "pglite" });
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect(await server.stop()).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
