import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isStoreFull, isStoreUnavailable } from "../../src/store/store.ts";
import { baseEnv, killChildren, run, type Server, serve } from "../helpers/cli.ts";

/**
 * The embedded store's disk fills up under a running node (a tmpfs of the test's own as
 * LATCHKEY_DATA_DIR): writes answer 503 STORE_FULL with Retry-After and the envelope, reads go on, the
 * log says it once (no stack per request), the process lives on, and once space is back writes work
 * again with every acknowledged write still there, across a restart too.
 */

const SLOW = { timeout: 180_000 };
const ADMIN_TOKEN = randomBytes(24).toString("base64url");
const root = mkdtempSync(join(tmpdir(), "latchkey-disk-"));
const disk = join(root, "disk");
const MOUNTED = (() => {
  spawnSync("mkdir", ["-p", disk]);
  const ok = spawnSync("mount", ["-t", "tmpfs", "-o", "size=96m", "tmpfs", disk]).status === 0;
  if (!ok) console.warn("skipping the disk-full tests: mount -t tmpfs is not permitted here");
  return ok;
})();
const filler = join(disk, "filler");
const fill = () => spawnSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k"]);
const free = () => rmSync(filler, { force: true });

interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server under test
  body: any;
}

describe("PostgreSQL's disk_full is classified as a full store", () => {
  it("53100 and ENOSPC are a full disk, not an unreachable store", () => {
    const pgFull = Object.assign(
      new Error('could not extend file "base/16384/16385": No space left on device'),
      {
        code: "53100",
      },
    );
    expect(isStoreFull(pgFull)).toBe(true);
    expect(isStoreUnavailable(pgFull)).toBe(false);
    expect(
      isStoreFull(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })),
    ).toBe(true);
    expect(isStoreFull(new Error("wrapped", { cause: pgFull }))).toBe(true);
    expect(isStoreFull(Object.assign(new Error("unique violation"), { code: "23505" }))).toBe(false);
    expect(isStoreFull(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }))).toBe(false);
  });
});

describe.runIf(MOUNTED)("the embedded store's disk fills up while it runs", () => {
  const dataDir = join(disk, "data");
  const env = baseEnv({ LATCHKEY_DATA_DIR: dataDir, LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN });
  let server: Server;
  let key = "";
  /** Every credential the node answered 201 for. */
  const acknowledged: string[] = [];

  async function call(method: string, path: string, json?: unknown): Promise<Answer> {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { "x-api-key": key, ...(json === undefined ? {} : { "content-type": "application/json" }) },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    return { status: res.status, headers: res.headers, body: await res.json() };
  }
  let n = 0;
  async function write(): Promise<Answer> {
    n += 1;
    const res = await call("POST", "/v1/credentials", {
      name: `disk ${n} ${"x".repeat(150)}`,
      permissions: ["payin:read"],
    });
    if (res.status === 201) acknowledged.push(res.body.data.id);
    return res;
  }

  beforeAll(async () => {
    server = await serve(env);
    const res = await fetch(`${server.url}/v1/admin/companies`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Disk Co", owner_email: "owner@disk.test" }),
    });
    key = ((await res.json()) as { data: { management_key: { key: string } } }).data.management_key.key;
  }, SLOW.timeout);

  afterAll(() => {
    killChildren();
    free();
    spawnSync("umount", ["-l", disk]);
    rmSync(root, { recursive: true, force: true });
  });

  it("answers writes 503 STORE_FULL, says so once, and recovers with nothing lost", SLOW, async () => {
    for (let i = 0; i < 5; i++) expect((await write()).status).toBe(201);
    fill();
    const refused: Answer[] = [];
    for (let i = 0; i < 400 && refused.length < 20; i++) {
      const res = await write();
      if (res.status !== 201) refused.push(res);
    }
    expect(refused.length).toBe(20);
    for (const res of refused) {
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ success: false, error: { code: "STORE_FULL" } });
      expect(res.body.error.request_id).toMatch(/^req_/);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    // Reads and verifications go on, and the process lives.
    expect((await call("GET", "/v1/credentials")).status).toBe(200);
    const verified = await call("POST", "/v1/verify", { key, permissions: ["keys:manage"] });
    expect(verified.body.data).toMatchObject({ valid: true });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    // Once per episode, not once per refused write. A checkpoint can free a page between two writes, so
    // the disk may come back and fill again inside the burst: each episode is then told exactly once.
    const out = server.output();
    const full = (out.match(/is full: writes answer 503 STORE_FULL/g) ?? []).length;
    const recovered = (out.match(/has space again: writes work/g) ?? []).length;
    expect(full, out).toBe(recovered + 1);
    expect(full, out).toBeLessThanOrEqual(3);
    expect(out).not.toMatch(/\n\s+at /);
    expect(out).not.toContain("unhandled error");

    free();
    let back: Answer | undefined;
    for (let i = 0; i < 50; i++) {
      back = await write();
      if (back.status === 201) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(back?.status).toBe(201);
    for (let i = 0; i < 5; i++) expect((await write()).status).toBe(201);
    expect(server.output()).toMatch(/has space again: writes work/);

    for (const id of acknowledged) expect((await call("GET", `/v1/credentials/${id}`)).status, id).toBe(200);
  });

  it("keeps every acknowledged write across a restart", SLOW, async () => {
    expect(await server.stop()).toBe(0);
    server = await serve(env);
    for (const id of acknowledged) expect((await call("GET", `/v1/credentials/${id}`)).status, id).toBe(200);
    expect(acknowledged.length).toBeGreaterThan(10);
  });

  it("refuses to start on the full disk in one line, and starts once space is back", SLOW, async () => {
    expect(await server.stop()).toBe(0);
    fill();
    const result = await run(["serve"], { ...env, PORT: "0" });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `latchkey: the disk holding ${dataDir} (LATCHKEY_DATA_DIR) is full: free some space there (or move LATCHKEY_DATA_DIR), then start again`,
    );
    free();
    server = await serve(env);
    for (const id of acknowledged) expect((await call("GET", `/v1/credentials/${id}`)).status, id).toBe(200);
    expect(await server.stop()).toBe(0);
  });
});
