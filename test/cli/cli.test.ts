import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, TEST_DATABASE_URL } from "../helpers/backends.ts";
import { baseEnv, killChildren, type Result, ROOT, run, type Server, serve } from "../helpers/cli.ts";

const SLOW = { timeout: 180_000 };

// Response bodies are read field by field in assertions; a full type per route would add nothing here.
// biome-ignore lint/suspicious/noExplicitAny: JSON from the server under test
type Json = any;

async function http(
  url: string,
  init: { method?: string; headers?: Record<string, string>; json?: unknown } = {},
): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method: init.method ?? (init.json === undefined ? "GET" : "POST"),
    headers: { ...(init.json === undefined ? {} : { "content-type": "application/json" }), ...init.headers },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
  return { status: res.status, body: await res.json() };
}

interface Bootstrapped {
  company: { id: string; name: string; slug: string };
  owner: { id: string; email: string; temporary_password: string };
  default_credential: { id: string; username: string };
  default_test_credential: { id: string; username: string };
  management_key: { id: string; key: string; credential_id: string };
}

function expectBootstrapped(result: Result, name: string, email: string): Bootstrapped {
  expect(result.code, result.stderr).toBe(0);
  const data = JSON.parse(result.stdout) as Bootstrapped;
  expect(data.company).toMatchObject({ name });
  expect(data.company.id).toMatch(/^co_/);
  expect(data.owner.email).toBe(email);
  expect(data.owner.temporary_password.length).toBeGreaterThanOrEqual(12);
  expect(data.default_credential.username).toMatch(/^ws_\d{6}@Company\.[A-Za-z0-9]+$/);
  expect(data.management_key.key).toMatch(/^lk_live_sk_[0-9A-Za-z]{38}$/);
  expect(data.management_key.credential_id).toBe(data.default_credential.id);
  return data;
}

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-cli-"));
  dirs.push(dir);
  return dir;
};

afterAll(() => {
  killChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("latchkey on the embedded store", () => {
  const dataDir = tempDir();
  const env = baseEnv({ LATCHKEY_DATA_DIR: dataDir });
  const lockFile = join(dataDir, "latchkey.lock");
  let server: Server | undefined;
  let first: Bootstrapped;
  let second: Bootstrapped;

  afterAll(async () => {
    await server?.stop();
  });

  /** A server of this data dir, after stopping one an earlier failed test may have left running. */
  async function restart(e: NodeJS.ProcessEnv): Promise<Server> {
    await server?.stop();
    server = await serve(e);
    return server;
  }

  it("serve answers /healthz on a fresh data dir", SLOW, async () => {
    server = await serve(env);
    const res = await http(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok", store: "pglite" });
    const lock = JSON.parse(readFileSync(lockFile, "utf8"));
    expect(lock).toMatchObject({ pid: server.pid, command: "serve", url: server.url });
    // The lock carries a token that acts as the platform operator; the data dir keeps the HMAC secret.
    expect(statSync(lockFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "secret")).mode & 0o777).toBe(0o600);
  });

  it("bootstrap goes through the running server's HTTP API", SLOW, async () => {
    const s = server as Server;
    const result = await run(
      ["bootstrap", "--company", "Acme Payments", "--owner-email", "owner@acme.test", "--json"],
      env,
    );
    first = expectBootstrapped(result, "Acme Payments", "owner@acme.test");
    // The server still holds the store, and what bootstrap made is in it.
    expect(JSON.parse(readFileSync(lockFile, "utf8")).pid).toBe(s.pid);
    const creds = await http(`${s.url}/v1/credentials`, {
      headers: { "x-api-key": first.management_key.key },
    });
    expect(creds.status).toBe(200);
    expect(creds.body.data.credentials.map((c: { username: string }) => c.username).sort()).toEqual(
      [first.default_credential.username, first.default_test_credential.username].sort(),
    );
  });

  it("bootstrap prints a human summary without --json", SLOW, async () => {
    const result = await run(["bootstrap", "--company", "Plain Co", "--owner-email", "plain@co.test"], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Management key +lk_live_sk_[0-9A-Za-z]{38}/);
    expect(result.stdout).toMatch(/API credential +ws_\d{6}@Company\.PlainCo/);
  });

  it("migrate refuses while serve runs, naming it and its pid", SLOW, async () => {
    const s = server as Server;
    const result = await run(["migrate"], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("latchkey serve");
    expect(result.stderr).toContain(`pid ${s.pid}`);
    expect(result.stderr).toContain(s.url);
    expect(result.stderr).not.toMatch(/\n\s+at /); // a clear message, not a stack trace
    expect((await http(`${s.url}/healthz`)).status).toBe(200);
    expect(JSON.parse(readFileSync(lockFile, "utf8")).pid).toBe(s.pid);
  });

  it("admin routes answer 404 to a random bearer when LATCHKEY_ADMIN_TOKEN is unset", SLOW, async () => {
    const s = server as Server;
    const body = { name: "Intruder", owner_email: "x@intruder.test" };
    const random = await http(`${s.url}/v1/admin/companies`, {
      headers: { authorization: `Bearer ${randomBytes(32).toString("base64url")}` },
      json: body,
    });
    expect(random.status).toBe(404);
    const none = await http(`${s.url}/v1/admin/companies`, { json: body });
    expect(none.status).toBe(404);
    const verifyKeys = await http(`${s.url}/v1/admin/verify-keys`, {
      headers: { authorization: `Bearer ${randomBytes(32).toString("base64url")}` },
      json: { name: "x" },
    });
    expect(verifyKeys.status).toBe(404);
  });

  it("SIGTERM stops serve with exit 0 and removes the lock", SLOW, async () => {
    const code = await (server as Server).stop();
    server = undefined;
    expect(code).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  });

  it("bootstrap opens the store itself when no server runs", SLOW, async () => {
    await server?.stop();
    server = undefined;
    const result = await run(
      ["bootstrap", "--company", "Café Zoë", "--owner-email", "zoe@cafe.test", "--json"],
      env,
    );
    second = expectBootstrapped(result, "Café Zoë", "zoe@cafe.test");
    expect(existsSync(lockFile)).toBe(false);
  });

  it("keeps its data across a restart", SLOW, async () => {
    const s = await restart(env);
    for (const company of [first, second]) {
      const keys = await http(`${s.url}/v1/keys`, {
        headers: { "x-api-key": company.management_key.key },
      });
      expect(keys.status).toBe(200);
      const verify = await http(`${s.url}/v1/verify`, {
        headers: { "x-api-key": company.management_key.key },
        json: { key: company.management_key.key, permissions: ["keys:manage"] },
      });
      expect(verify.body.data).toMatchObject({ valid: true, code: "VALID", company_id: company.company.id });
    }
    expect(await s.stop()).toBe(0);
    server = undefined;
  });

  it(
    "with LATCHKEY_ADMIN_TOKEN, POST /v1/admin/companies works over HTTP with it, and only with it",
    SLOW,
    async () => {
      const token = randomBytes(24).toString("base64url");
      const s = await restart({ ...env, LATCHKEY_ADMIN_TOKEN: token });
      const body = { name: "Admin Made", owner_email: "owner@admin-made.test" };
      const wrong = await http(`${s.url}/v1/admin/companies`, {
        headers: { authorization: `Bearer ${token}x` },
        json: body,
      });
      expect([401, 404]).toContain(wrong.status);
      const ok = await http(`${s.url}/v1/admin/companies`, {
        headers: { authorization: `Bearer ${token}` },
        json: body,
      });
      expect(ok.status).toBe(201);
      expect(ok.body.data.company.name).toBe("Admin Made");
      const key = ok.body.data.management_key.key as string;
      expect((await http(`${s.url}/v1/keys`, { headers: { "x-api-key": key } })).status).toBe(200);
      expect(await s.stop()).toBe(0);
      server = undefined;
    },
  );
});

describe("latchkey --version", () => {
  it("prints the package's version", SLOW, async () => {
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    const result = await run(["--version"], baseEnv({}));
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });
});

describe("the CLI never guesses a store", () => {
  it(
    "bootstrap and audit verify refuse a data dir with no store, naming what they would have used",
    SLOW,
    async () => {
      const dataDir = join(tempDir(), "not-there");
      const env = baseEnv({ LATCHKEY_DATA_DIR: dataDir });
      for (const args of [
        ["bootstrap", "--company", "Lost Co", "--owner-email", "lost@co.test", "--json"],
        ["audit", "verify"],
      ]) {
        const result = await run(args, env);
        expect(result.code, args.join(" ")).toBe(1);
        expect(result.stderr).toContain(dataDir);
        expect(result.stderr).toContain("DATABASE_URL");
        expect(result.stderr).not.toMatch(/\n\s+at /);
        expect(result.stdout).toBe("");
        expect(existsSync(join(dataDir, "pgdata")), args.join(" ")).toBe(false);
      }
      const created = await run(
        ["bootstrap", "--company", "New Co", "--owner-email", "new@co.test", "--json", "--create-store"],
        env,
      );
      expectBootstrapped(created, "New Co", "new@co.test");
      expect(existsSync(join(dataDir, "pgdata", "PG_VERSION"))).toBe(true);
    },
  );
});

describe("latchkey refuses a bad configuration", () => {
  const env = () => baseEnv({ LATCHKEY_DATA_DIR: tempDir() });

  it("serve on PostgreSQL without LATCHKEY_SECRET exits 1 naming it", SLOW, async () => {
    const result = await run(["serve"], {
      ...env(),
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
      PORT: "0",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("LATCHKEY_SECRET");
  });

  it.each([
    ["LATCHKEY_KEY_PREFIX", "Bad-Prefix"],
    ["LATCHKEY_KEY_PREFIX", "1lk"],
    ["LATCHKEY_CATALOG", "/nonexistent/catalog.json"],
    ["LATCHKEY_CATALOG", join(ROOT, "package.json")],
  ])("serve with a bad %s (%s) exits 1 naming it", SLOW, async (name, value) => {
    const result = await run(["serve"], { ...env(), PORT: "0", [name]: value });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(name);
  });

  it("migrate and bootstrap check the configuration too", SLOW, async () => {
    const bad = { ...env(), LATCHKEY_KEY_PREFIX: "UPPER" };
    const migrate = await run(["migrate"], bad);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toContain("LATCHKEY_KEY_PREFIX");
    const bootstrap = await run(["bootstrap", "--company", "X", "--owner-email", "x@x.test", "--json"], bad);
    expect(bootstrap.code).toBe(1);
    expect(bootstrap.stderr).toContain("LATCHKEY_KEY_PREFIX");
    expect(bootstrap.stdout).toBe("");
  });
});

describe.runIf(BACKENDS.includes("postgres"))("latchkey on PostgreSQL", () => {
  const schema = `cli_${randomBytes(6).toString("hex")}`;
  const databaseUrl = `${TEST_DATABASE_URL}${TEST_DATABASE_URL.includes("?") ? "&" : "?"}options=-c%20search_path%3D${schema}`;
  const env = baseEnv({
    LATCHKEY_DATA_DIR: tempDir(),
    DATABASE_URL: databaseUrl,
    LATCHKEY_SECRET: randomBytes(36).toString("base64url"),
  });
  let server: Server | undefined;

  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };

  beforeAll(() => admin((c) => c.query(`CREATE SCHEMA ${schema}`)));
  afterAll(async () => {
    await server?.stop();
    await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
  });

  it("serve migrates into the configured schema and answers /healthz with store postgres", SLOW, async () => {
    server = await serve(env);
    const res = await http(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok", store: "postgres" });
    const tables = await admin((c) =>
      c.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        [schema],
      ),
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(["companies", "api_keys"]));
  });

  it("migrate on the migrated database says it is already up to date", SLOW, async () => {
    const result = await run(["migrate"], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("already up to date");
  });

  it("admin routes answer 404 with no LATCHKEY_ADMIN_TOKEN", SLOW, async () => {
    const s = server as Server;
    const res = await http(`${s.url}/v1/admin/companies`, {
      headers: { authorization: `Bearer ${randomBytes(32).toString("base64url")}` },
      json: { name: "Intruder", owner_email: "x@intruder.test" },
    });
    expect(res.status).toBe(404);
  });

  it("bootstrap works beside the running server, which then accepts the key", SLOW, async () => {
    const s = server as Server;
    const result = await run(
      ["bootstrap", "--company", "Pg Co", "--owner-email", "owner@pg.test", "--json"],
      env,
    );
    const data = expectBootstrapped(result, "Pg Co", "owner@pg.test");
    const keys = await http(`${s.url}/v1/keys`, { headers: { "x-api-key": data.management_key.key } });
    expect(keys.status, s.output()).toBe(200);
  });

  it("SIGTERM stops it with exit 0", SLOW, async () => {
    expect(await (server as Server).stop()).toBe(0);
    server = undefined;
  });
});
