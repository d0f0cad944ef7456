// Two (or more) real Latchkey nodes in child processes (bench/node.ts) on one fresh PostgreSQL schema and
// one Redis under a prefix of their own, and the HTTP calls the cluster benches make against them.
// Used by the revocation-propagation section of `npm run bench` and by `npm run bench:load`.
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { Redis } from "ioredis";
import pg from "pg";
import { type Child, spawn, stop } from "./child.ts";
import { DATABASE_URL, SECRET } from "./fixture.ts";

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
export const ADMIN_TOKEN = "bench-admin-token-0123456789abcdef";

interface NodeInfo {
  type: "ready";
  url: string;
  node: string | null;
  redis: string | null;
}

export interface ClusterNode {
  name: string;
  child: Child<NodeInfo>;
  url: string;
  host: string;
  port: number;
}

/** Whether Redis answers PING within a second. */
export async function redisReachable(url = REDIS_URL): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface ClusterEnv {
  schema: string;
  /** DATABASE_URL for the nodes: the bench database with search_path set to the schema. */
  databaseUrl: string;
  redisPrefix: string;
  nodes: ClusterNode[];
  /** Runs a query in the schema (for the load test's checks after the fact). */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  /** Stops the nodes in order (each flushes its usage counts), the first one first. */
  stopNodes(): Promise<void>;
  /** Stops whatever still runs, drops the schema and deletes the Redis keys under the prefix. */
  close(): Promise<void>;
}

/**
 * A fresh schema, then `count` nodes started one after the other with the same settings plus `env`.
 * Each node child's log (warnings and errors) goes to stderr.
 */
export async function startCluster(count: number, env: Record<string, string> = {}): Promise<ClusterEnv> {
  const schema = `bench_${randomBytes(6).toString("hex")}`;
  const redisPrefix = `latchkey-bench-${randomBytes(4).toString("hex")}:`;
  await admin((c) => c.query(`CREATE SCHEMA ${schema}`));
  const sep = DATABASE_URL.includes("?") ? "&" : "?";
  const databaseUrl = `${DATABASE_URL}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const nodes: ClusterNode[] = [];
  let pool: pg.Pool | null = null;
  let closed = false;
  const cluster: ClusterEnv = {
    schema,
    databaseUrl,
    redisPrefix,
    nodes,
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      pool ??= new pg.Pool({ connectionString: databaseUrl, max: 2 });
      return (await pool.query<R>(text, values)).rows;
    },
    async stopNodes() {
      for (const n of nodes) await stop(n.child);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const n of nodes) {
        if (n.child.process.exitCode === null) n.child.process.kill();
      }
      await pool?.end();
      await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      redis.on("error", () => {});
      try {
        await redis.connect();
        let cursor = "0";
        do {
          const [next, found] = await redis.scan(cursor, "MATCH", `${redisPrefix}*`, "COUNT", 1000);
          cursor = next;
          if (found.length > 0) await redis.del(...found);
        } while (cursor !== "0");
      } catch {
        // Best effort: rate-limit counters expire by themselves.
      } finally {
        redis.disconnect();
      }
    },
  };
  try {
    for (let i = 0; i < count; i++) {
      const nodeEnv = {
        DATABASE_URL: databaseUrl,
        LATCHKEY_SECRET: SECRET,
        LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN,
        REDIS_URL,
        LATCHKEY_REDIS_PREFIX: redisPrefix,
        HOST: "127.0.0.1",
        PORT: "0",
        ...env,
      };
      const child = await spawn<NodeInfo>("./node.ts", [JSON.stringify(nodeEnv)], { quietStdout: true });
      const url = new URL(child.first.url);
      nodes.push({
        name: String.fromCharCode(65 + i),
        child,
        url: child.first.url,
        host: url.hostname,
        port: Number(url.port),
      });
    }
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** Each node's /healthz cluster report once its bus is connected; throws after `ms`. */
export async function waitConnected(nodes: ClusterNode[], ms = 5000): Promise<void> {
  const until = performance.now() + ms;
  for (const n of nodes) {
    for (;;) {
      const health = await call(n, "GET", "/healthz");
      if (health.body?.cluster?.redis === "connected") break;
      if (performance.now() > until) {
        throw new Error(`node ${n.name}: cluster bus not connected: ${JSON.stringify(health.body)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// ---------------------------------------------------------------------------------------------------

/** Keep-alive connections, as a gateway holds them. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by the caller
  body: any;
}

/** One HTTP call; rejects only on a connection error (any status resolves). */
export function call(
  node: Pick<ClusterNode, "host" | "port">,
  method: string,
  path: string,
  opts: { key?: string; admin?: boolean; json?: unknown } = {},
): Promise<Reply> {
  const payload = opts.json === undefined ? undefined : Buffer.from(JSON.stringify(opts.json));
  const headers: Record<string, string | number> = {};
  if (opts.key) headers["x-api-key"] = opts.key;
  if (opts.admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  if (payload) {
    headers["content-type"] = "application/json";
    headers["content-length"] = payload.length;
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: node.host, port: node.port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = text === "" ? null : JSON.parse(text);
        } catch {
          // Not JSON: kept as text for the report.
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

export function closeAgent(): void {
  agent.destroy();
}

export interface Tenant {
  companyId: string;
  managementKey: string;
  credentialId: string;
  /** A platform verify key (verifies any company's keys). */
  verifyKey: string;
}

function expectStatus(reply: Reply, status: number, what: string): void {
  if (reply.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${reply.status} ${JSON.stringify(reply.body)}`);
  }
}

/** A company (with its management key and default API user) and a platform verify key, over HTTP. */
export async function createTenant(node: ClusterNode, name: string): Promise<Tenant> {
  const company = await call(node, "POST", "/v1/admin/companies", {
    admin: true,
    json: { name, owner_email: `owner-${randomBytes(4).toString("hex")}@bench.test` },
  });
  expectStatus(company, 201, "create company");
  const verify = await call(node, "POST", "/v1/admin/verify-keys", {
    admin: true,
    json: { name: "gateway" },
  });
  expectStatus(verify, 201, "create verify key");
  return {
    companyId: company.body.data.company.id,
    managementKey: company.body.data.management_key.key,
    credentialId: company.body.data.default_credential.id,
    verifyKey: verify.body.data.key,
  };
}

export const PERMISSION = "payin:read";

/** The body of POST /v1/keys the benches use. */
export function keyBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "bench", environment: "live", permissions: [PERMISSION], ...extra };
}

export async function createKey(
  node: ClusterNode,
  t: Tenant,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; key: string }> {
  const reply = await call(node, "POST", "/v1/keys", { key: t.managementKey, json: keyBody(extra) });
  expectStatus(reply, 201, "create key");
  return { id: reply.body.data.id, key: reply.body.data.key };
}

/** POST /v1/verify with the platform verify key; the answer's code. */
export async function verifyCode(node: ClusterNode, t: Tenant, key: string): Promise<string> {
  const reply = await call(node, "POST", "/v1/verify", {
    key: t.verifyKey,
    json: { key, permissions: [PERMISSION] },
  });
  expectStatus(reply, 200, "verify");
  return reply.body.data.code;
}
