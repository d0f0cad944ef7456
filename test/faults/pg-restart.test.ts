import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join, resolve } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { createRuntime } from "../../src/runtime.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import { isStoreUnavailable, openStore } from "../../src/store/store.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { freePort } from "../helpers/nodes.ts";
import { DisposablePostgres, postgresBinDir } from "./disposable-postgres.ts";

/**
 * A node on PostgreSQL while its database restarts and goes away: the process stays up, answers 503
 * STORE_UNAVAILABLE with Retry-After (and readiness 503, liveness 200) while the database is gone,
 * and works again within 2 s of it being back, with nothing it acknowledged lost.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/latchkey.js");
const ADMIN_TOKEN = "fault-test-admin-token-0123456789";
const BIN_DIR = postgresBinDir();
const RUN = BACKENDS.includes("postgres") && BIN_DIR !== null;
if (!RUN)
  console.warn(
    BIN_DIR === null
      ? "skipping the PostgreSQL fault tests: no initdb under /usr/lib/postgresql/*/bin"
      : "skipping the PostgreSQL fault tests: the postgres backend is not selected",
  );

/** The parent's environment without anything Latchkey reads, so only what the test sets applies. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(out))
    if (name.startsWith("LATCHKEY_") || name === "DATABASE_URL" || name === "PORT" || name === "REDIS_URL")
      delete out[name];
  delete out.NODE_OPTIONS;
  return { ...out, HOST: "127.0.0.1", ...extra };
}

interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server under test
  body: any;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL_MS = 1000;
const SECRET = "fault-test-secret-0123456789abcdef0123456789";

describe.runIf(RUN)("PostgreSQL restarts and outages", () => {
  let pg: DisposablePostgres;
  let node: ChildProcess;
  let output = "";
  let url = "";
  let mk = "";
  /** Every credential the node answered 201 for: each must still be there at the end. */
  const acknowledged: string[] = [];

  async function call(method: string, path: string, json?: unknown, key = mk): Promise<Answer> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(key ? { "x-api-key": key } : {}),
        ...(json !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  }

  let written = 0;
  async function write(): Promise<Answer> {
    written += 1;
    const res = await call("POST", "/v1/credentials", {
      name: `fault ${written}`,
      permissions: ["payin:read"],
    });
    if (res.status === 201) acknowledged.push(res.body.data.id);
    return res;
  }

  /** Writes until one succeeds; returns how long that took. */
  async function untilWritable(limitMs: number): Promise<number> {
    const started = Date.now();
    let last: Answer | null = null;
    while (Date.now() - started < limitMs) {
      last = await write().catch(() => null);
      if (last?.status === 201) return Date.now() - started;
      await sleep(50);
    }
    throw new Error(`no write succeeded within ${limitMs} ms: ${JSON.stringify(last?.body)}\n${output}`);
  }

  /** Several requests at once, so the pool holds several connections, idle afterwards. */
  async function fillPool() {
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => call("GET", "/v1/credentials?limit=1")),
    );
    for (const a of answers) expect(a.status).toBe(200);
  }

  const alive = () => node.exitCode === null && node.signalCode === null;

  /** Acknowledged credentials the node no longer lists. */
  async function lost(): Promise<string[]> {
    const listed = new Set<string>();
    let cursor: string | null = null;
    do {
      const page = await call("GET", `/v1/credentials?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      for (const c of page.body.data.credentials) listed.add(c.id);
      cursor = page.body.data.next_cursor;
    } while (cursor);
    return acknowledged.filter((id) => !listed.has(id));
  }

  beforeAll(async () => {
    pg = new DisposablePostgres(BIN_DIR as string, await freePort());
    await pg.init();
    await pg.start();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    node = spawn(process.execPath, [BIN, "serve"], {
      cwd: ROOT,
      env: env({
        PORT: String(port),
        DATABASE_URL: pg.url,
        LATCHKEY_SECRET: SECRET,
        LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN,
        // A short TTL, so the outage outlasts what is cached and only the grace can answer.
        LATCHKEY_CACHE_TTL_MS: String(TTL_MS),
      }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    node.stdout?.on("data", (d) => {
      output += d;
    });
    node.stderr?.on("data", (d) => {
      output += d;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!alive()) throw new Error(`serve exited:\n${output}`);
      if (Date.now() > deadline) throw new Error(`serve did not start:\n${output}`);
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      await sleep(100);
    }
    const company = await fetch(`${url}/v1/admin/companies`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Fault Co", owner_email: "owner@fault.example" }),
    });
    expect(company.status).toBe(201);
    mk = ((await company.json()) as { data: { management_key: { key: string } } }).data.management_key.key;
    expect((await write()).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    if (node && alive()) {
      node.kill("SIGTERM");
      await once(node, "exit");
    }
    await pg?.destroy();
  });

  it("survives a restart that ends a connection checked out between two statements of a transaction", async () => {
    const lines: string[] = [];
    const store = await openStore(
      { kind: "postgres", url: pg.url, poolSize: 2 },
      { warn: (m) => lines.push(m), info: (m) => lines.push(m) },
    );
    try {
      const inTransaction = store.db.transaction().execute(async (trx) => {
        await sql`SELECT 1`.execute(trx);
        // The connection is checked out and idle (the service is hashing, say) when the server goes.
        await pg.restart();
        await sleep(100);
        await sql`SELECT 1`.execute(trx);
      });
      await expect(inTransaction).rejects.toSatisfy(isStoreUnavailable);
      await store.ping(2_000);
      expect(lines[0]).toMatch(/PostgreSQL connection lost/);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("survives a restart (-m fast) with idle connections in the pool, and writes again within 2 s", async () => {
    await fillPool();
    await pg.restart();
    const took = await untilWritable(2_000);
    expect(alive(), output).toBe(true);
    expect(took).toBeLessThan(2_000);
    expect((await call("GET", "/readyz", undefined, "")).status).toBe(200);
  }, 60_000);

  it("answers 503 STORE_UNAVAILABLE with Retry-After while the database is down, readiness 503, liveness 200", async () => {
    const known = await call("POST", "/v1/keys", {
      name: "known",
      environment: "live",
      permissions: ["payin:read"],
    });
    expect(known.status).toBe(201);
    expect((await call("POST", "/v1/verify", { key: known.body.data.key })).body.data.code).toBe("VALID");
    await fillPool();
    await pg.stop("immediate");
    // Give the pool a moment to hear its connections end, as it would in production.
    await sleep(100);
    expect(alive(), output).toBe(true);

    for (let i = 0; i < 3; i++) {
      const res = await write();
      expect(res.status, JSON.stringify(res.body)).toBe(503);
      expect(res.body).toMatchObject({ success: false, error: { code: "STORE_UNAVAILABLE" } });
      expect(res.body.error.request_id).toMatch(/^req_/);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    // A verification the cache cannot answer, on the /v1/verify fast path: the same 503.
    const verified = await call("POST", "/v1/verify", { key: generateToken("lk", "live", "sk") });
    expect(verified.status, JSON.stringify(verified.body)).toBe(503);
    expect(verified.body.error.code).toBe("STORE_UNAVAILABLE");
    expect(Number(verified.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // A key it verified before the outage is still answered past its TTL (and so is the caller's own).
    await sleep(TTL_MS + 200);
    const cached = await call("POST", "/v1/verify", { key: known.body.data.key });
    expect(cached.status, JSON.stringify(cached.body)).toBe(200);
    expect(cached.body.data).toMatchObject({ valid: true, code: "VALID", key_id: known.body.data.id });
    const ready = await call("GET", "/readyz", undefined, "");
    expect(ready.status).toBe(503);
    expect(ready.body.error.code).toBe("STORE_UNAVAILABLE");
    expect(Number(ready.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const live = await call("GET", "/healthz", undefined, "");
    expect(live.status).toBe(200);
    expect(alive(), output).toBe(true);
  }, 60_000);

  it("works again when the database is back, and has lost nothing it acknowledged", async () => {
    await pg.start();
    const took = await untilWritable(2_000);
    expect(took).toBeLessThan(2_000);
    expect(alive(), output).toBe(true);
    expect((await call("GET", "/readyz", undefined, "")).status).toBe(200);

    expect(acknowledged.length).toBeGreaterThanOrEqual(3);
    expect(await lost()).toEqual([]);
    const keys = await call("GET", "/v1/keys");
    expect(keys.status).toBe(200);
    expect(keys.body.data.keys.length).toBeGreaterThan(0);
    // One line per outage (three restarts or stops here), not one per request or connection.
    const lostLines = output.match(/PostgreSQL connection lost/g)?.length ?? 0;
    expect(lostLines, output).toBeGreaterThanOrEqual(1);
    expect(lostLines, output).toBeLessThanOrEqual(3);
  }, 60_000);

  it("under load, through a restart and an immediate stop: only 2xx or 503, never a lost write, writable within 2 s of the database's return", async () => {
    const statuses = new Map<number, number>();
    const codes = new Set<string>();
    let running = true;
    const oks: number[] = [];
    const before = acknowledged.length;
    const worker = async (i: number) => {
      while (running) {
        const res =
          i % 2 === 0
            ? await write().catch(() => null)
            : await call("POST", "/v1/verify", { key: generateToken("lk", "live", "sk") }).catch(() => null);
        if (res === null) continue;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) codes.add(res.body?.error?.code);
        if (res.status < 300) oks.push(Date.now());
      }
    };
    const workers = Array.from({ length: 6 }, (_, i) => worker(i));
    try {
      await sleep(300);
      await pg.restart();
      await sleep(500);
      await pg.stop("immediate");
      await sleep(1000);
      expect(alive(), output).toBe(true);
      const starting = Date.now();
      await pg.start();
      const returned = Date.now();
      // The load itself must find the database again: no request of the test's own is needed.
      while (!oks.some((t) => t >= starting) && Date.now() < returned + 10_000) await sleep(20);
      const first = oks.find((t) => t >= starting);
      expect(first, "nothing succeeded after the database came back").toBeDefined();
      expect((first as number) - returned).toBeLessThan(2_000);
      await sleep(300);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(alive(), output).toBe(true);
    const bad = [...statuses.keys()].filter((s) => s >= 300 && s !== 503);
    expect(bad, JSON.stringify([...statuses])).toEqual([]);
    expect([...codes]).toEqual(["STORE_UNAVAILABLE"]);
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(acknowledged.length).toBeGreaterThan(before);
    expect(await lost()).toEqual([]);
  }, 60_000);

  it("answers known keys for the grace past their TTL while the database is gone, and never while the bus is deaf", async () => {
    let now = Date.parse("2026-12-01T12:00:00Z");
    const runtime = await createRuntime({
      store: { kind: "postgres", url: pg.url },
      secret: SECRET,
      catalog: readCatalog(undefined),
      keyPrefix: "lk",
      log: { info() {}, warn() {}, error() {} },
      services: { clock: () => new Date(now), cache: { ttlMs: 1000, graceMs: 4000 } },
    });
    const verify = (key: string) => runtime.services.verification.verify({ key }, PLATFORM_SCOPE);
    try {
      const made = await call("POST", "/v1/keys", {
        name: "grace",
        environment: "live",
        permissions: ["payin:read"],
      });
      expect(made.status).toBe(201);
      const key: string = made.body.data.key;
      const unknown = generateToken("lk", "live", "sk");
      expect((await verify(key)).code).toBe("VALID");

      await pg.stop("immediate");
      now += 1500;
      expect((await verify(key)).code).toBe("VALID");
      // A key it never saw is not answered from the past.
      await expect(verify(unknown)).rejects.toSatisfy(isStoreUnavailable);
      now += 4000;
      await expect(verify(key)).rejects.toSatisfy(isStoreUnavailable);

      await pg.start();
      await runtime.store.ping(5_000);
      // The cluster bus goes deaf: what this node caches may miss another node's change.
      runtime.services.verification.limitCacheTtl(500);
      expect((await verify(key)).code).toBe("VALID");
      await pg.stop("immediate");
      now += 600;
      await expect(verify(key)).rejects.toSatisfy(isStoreUnavailable);
    } finally {
      await pg.start();
      await runtime.close();
    }
  }, 60_000);
});
