// Issue 13's sections: forward auth through nginx, /v1/authorize against /v1/verify, and the SDK.
// Each starts its own children (a Latchkey server on the Web3pay catalog, which maps routes, an
// upstream, the load generator, the SDK) and stops them again.
import { type ChildProcess, execFileSync, spawn as spawnProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ask, type Child, spawn, stop } from "./child.ts";
import type { LoadRequest, LoadResult } from "./load.ts";
import type { SdkResult, SdkRun } from "./sdk.ts";
import { CONNECTIONS, GATEWAY_IP, HTTP_SECONDS, median, QUICK, RUNS } from "./stats.ts";

const ROOT = resolve(import.meta.dirname, "..");
const WEB3PAY = join(ROOT, "examples/catalogs/web3pay.json");
const NGINX_CONF = join(ROOT, "examples/gateways/nginx.conf");
/** Revocations the SDK figure is taken over, after a warm-up of 20. */
export const SDK_REVOCATIONS = QUICK ? 50 : 200;
const SDK_CACHED_KEYS = QUICK ? 100 : 1000;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface LatchkeyInfo {
  type: "ready";
  port: number;
  key: string;
  verifyKey: string;
  permission: string;
  managementKey: string;
}

/** The load generator the sections' loader child found (wrk or autocannon), for the tables' titles. */
export let loaderUsed = "autocannon";

export interface HttpFigure {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  /**
   * CPU time per request of each process taking part, in µs (median of the runs), from /proc; null
   * where /proc cannot be read. On 2 shared cores this says where a request's cost goes, which the
   * requests/s alone cannot.
   */
  cpu: Record<string, number> | null;
}

function summarise(runs: LoadResult[], cpu: Record<string, number>[]): HttpFigure {
  const names = Object.keys(cpu[0] ?? {});
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
    cpu:
      cpu.length === 0 ? null : Object.fromEntries(names.map((n) => [n, median(cpu.map((c) => c[n] ?? 0))])),
  };
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * The CPU a process has used, in clock ticks: its own (utime + stime) and, with `children`, that of
 * the children it has waited for (wrk, run by the loader child). Null without /proc.
 */
function cpuTicks(pid: number, children = false): number | null {
  const file = `/proc/${pid}/stat`;
  if (!existsSync(file)) return null;
  // The fields after the command's closing parenthesis: state is [0], utime [11], stime [12], cutime [13], cstime [14].
  const stat = readFileSync(file, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const own = Number(fields[11]) + Number(fields[12]);
  return children ? own + Number(fields[13]) + Number(fields[14]) : own;
}

/** The processes a figure's CPU is counted for: by name, their pids (and whether waited children count). */
type Processes = Record<string, { pids: number[]; children?: boolean }>;

function sample(processes: Processes): Record<string, number> | null {
  const out: Record<string, number> = {};
  for (const [name, { pids, children }] of Object.entries(processes)) {
    let sum = 0;
    for (const pid of pids) {
      const ticks = cpuTicks(pid, children);
      if (ticks === null) return null;
      sum += ticks;
    }
    out[name] = sum;
  }
  return out;
}

/** Warm-up for each request, then RUNS runs interleaved, so a slow spell of the machine is shared. */
async function interleaved(
  loader: Child<unknown>,
  requests: Omit<LoadRequest, "seconds" | "connections">[],
  names: string[],
  processes: Processes = {},
): Promise<HttpFigure[]> {
  loaderUsed = (loader.first as { loader: string }).loader;
  const counted: Processes = {
    ...processes,
    "load generator": { pids: [loader.process.pid ?? 0], children: true },
  };
  const load = (request: (typeof requests)[number], seconds: number) =>
    ask<LoadResult>(loader, { type: "load", ...request, seconds, connections: CONNECTIONS }, "loaded");
  for (const [i, request] of requests.entries()) {
    log(`  warm-up: ${names[i]}`);
    await load(request, Math.min(2, HTTP_SECONDS));
  }
  const runs: LoadResult[][] = requests.map(() => []);
  const cpu: Record<string, number>[][] = requests.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (const [i, request] of requests.entries()) {
      log(`  run ${r + 1}/${RUNS}: ${names[i]}`);
      const before = sample(counted);
      const result = await load(request, HTTP_SECONDS);
      const after = sample(counted);
      runs[i]?.push(result);
      if (before !== null && after !== null && result.rps > 0) {
        const requestsServed = result.rps * HTTP_SECONDS;
        const perRequest = (name: string) =>
          (((after[name] ?? 0) - (before[name] ?? 0)) / CLOCK_TICKS / requestsServed) * 1e6;
        cpu[i]?.push(Object.fromEntries(Object.keys(counted).map((name) => [name, perRequest(name)])));
      }
    }
  }
  return runs.map((figures, i) => summarise(figures, cpu[i] ?? []));
}

/** Latchkey on PGlite with the Web3pay catalog, whose routes the forward-auth requests name. */
const latchkeyServer = () => spawn<LatchkeyInfo>("./server.ts", ["latchkey", "pglite", WEB3PAY]);

/** Resolves once something accepts connections on the port. */
async function listening(port: number, proc: ChildProcess, output: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${output()}`);
    const up = await new Promise<boolean>((done) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        done(true);
      });
      socket.once("error", () => done(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${port}: ${output()}`);
}

/** A free port, from the kernel. */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    import("node:net").then(({ createServer }) => {
      const server = createServer();
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        const port = typeof address === "object" && address ? address.port : 0;
        server.close(() => done(port));
      });
    });
  });
}

export interface ForwardAuthResult {
  plain: HttpFigure;
  authorized: HttpFigure;
  /** The upstream's answer, for the table's title. */
  upstreamBytes: number;
}

/**
 * (a) One nginx (Debian's, one worker) with two servers over the same upstream: one proxying as it is,
 * and the shipped examples/gateways/nginx.conf, which asks Latchkey (`auth_request` to /v1/authorize)
 * before proxying. The same GET goes to both, with the client's key; runs are interleaved.
 */
export async function forwardAuth(): Promise<ForwardAuthResult | string> {
  log("# forward auth through nginx");
  const upstreamBody = JSON.stringify({ ok: true });
  const upstream = await spawn<{ port: number }>("./server.ts", ["bare", upstreamBody]);
  const latchkey = await latchkeyServer();
  const dir = mkdtempSync(join(tmpdir(), "latchkey-bench-nginx-"));
  let nginx: ChildProcess | null = null;
  const loader = await spawn("./load.ts");
  try {
    const [authPort, plainPort] = [await freePort(), await freePort()];
    // The ${NAME} values the configuration's header says to fill in (as envsubst would).
    const values: Record<string, string> = {
      LISTEN_ADDR: `127.0.0.1:${authPort}`,
      LATCHKEY_ADDR: `127.0.0.1:${latchkey.first.port}`,
      UPSTREAM_ADDR: `127.0.0.1:${upstream.first.port}`,
      LATCHKEY_VERIFY_KEY: latchkey.first.verifyKey,
    };
    const site = readFileSync(NGINX_CONF, "utf8").replace(
      /\$\{(\w+)\}/g,
      (all, name: string) => values[name] ?? all,
    );
    writeFileSync(join(dir, "latchkey.conf"), site);
    for (const sub of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, sub));
    // The no-auth server proxies to the shipped configuration's own upstream block, keepalive and all.
    writeFileSync(
      join(dir, "nginx.conf"),
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/latchkey.conf;
  server {
    listen 127.0.0.1:${plainPort};
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_pass http://platform_api;
    }
  }
}
`,
    );
    let output = "";
    const proc = spawnProcess("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    nginx = proc;
    proc.stdout?.on("data", (d) => {
      output += d;
    });
    proc.stderr?.on("data", (d) => {
      output += d;
    });
    const spawned = await new Promise<Error | null>((done) => {
      proc.once("spawn", () => done(null));
      proc.once("error", done);
    });
    if (spawned)
      return `not run: nginx could not be started (${spawned.message}; apt-get install nginx-light)`;
    await listening(authPort, proc, () => output);
    await listening(plainPort, proc, () => output);

    const request = (port: number) => ({
      url: `http://127.0.0.1:${port}/v1/transactions`,
      method: "GET",
      headers: { "x-api-key": latchkey.first.key },
      body: "",
    });
    // Both must answer the upstream's 200: a refusal would be counted as failed, and be much cheaper.
    for (const port of [authPort, plainPort]) {
      const res = await fetch(request(port).url, { headers: request(port).headers });
      const text = await res.text();
      if (res.status !== 200 || text !== upstreamBody) throw new Error(`nginx probe: ${res.status} ${text}`);
    }
    // nginx's own processes: the master and its worker(s).
    const nginxPids = [
      proc.pid ?? 0,
      ...execFileSync("ps", ["--ppid", String(proc.pid), "-o", "pid="], { encoding: "utf8" })
        .split(/\s+/)
        .filter((pid) => pid !== "")
        .map(Number),
    ];
    const [plain, authorized] = await interleaved(
      loader,
      [request(plainPort), request(authPort)],
      ["nginx → upstream", "nginx → auth_request → upstream"],
      {
        nginx: { pids: nginxPids },
        Latchkey: { pids: [latchkey.process.pid ?? 0] },
        upstream: { pids: [upstream.process.pid ?? 0] },
      },
    );
    return {
      plain: plain as HttpFigure,
      authorized: authorized as HttpFigure,
      upstreamBytes: upstreamBody.length,
    };
  } finally {
    if (nginx !== null && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx?.once("exit", r));
      nginx.kill("SIGQUIT");
      await exited;
    }
    await stop(loader);
    await stop(latchkey);
    await stop(upstream);
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface AuthorizeResult {
  verify: HttpFigure;
  authorize: HttpFigure;
}

/**
 * (b) One Latchkey, one key, one verify key, the same load: `POST /v1/verify` (the key and the
 * permission in the body) against `GET /v1/authorize` as nginx's auth_request sends it (the route in
 * X-Original-*, the key in X-API-Key, the verify key in Latchkey-Verify-Key, no body).
 */
export async function authorizeVsVerify(): Promise<AuthorizeResult> {
  log("# /v1/authorize against /v1/verify");
  const latchkey = await latchkeyServer();
  const loader = await spawn("./load.ts");
  try {
    const base = `http://127.0.0.1:${latchkey.first.port}`;
    const verify = {
      url: `${base}/v1/verify`,
      headers: { "content-type": "application/json", "x-api-key": latchkey.first.verifyKey },
      body: JSON.stringify({ key: latchkey.first.key, permissions: ["transactions:read"], ip: GATEWAY_IP }),
    };
    const authorize = {
      url: `${base}/v1/authorize`,
      method: "GET",
      headers: {
        "latchkey-verify-key": latchkey.first.verifyKey,
        "x-original-method": "GET",
        "x-original-uri": "/v1/transactions",
        "x-api-key": latchkey.first.key,
        "latchkey-gateway": "nginx",
      },
      body: "",
    };
    const probe = await fetch(authorize.url, { headers: authorize.headers });
    if (probe.status !== 200) throw new Error(`authorize probe: ${probe.status} ${await probe.text()}`);
    const checked = await fetch(verify.url, { method: "POST", headers: verify.headers, body: verify.body });
    const answer = (await checked.json()) as { data?: { valid?: boolean } };
    if (answer.data?.valid !== true) throw new Error(`verify probe: ${JSON.stringify(answer)}`);
    const [v, a] = await interleaved(loader, [verify, authorize], ["POST /v1/verify", "GET /v1/authorize"], {
      Latchkey: { pids: [latchkey.process.pid ?? 0] },
    });
    return { verify: v as HttpFigure, authorize: a as HttpFigure };
  } finally {
    await stop(loader);
    await stop(latchkey);
  }
}

/** (c) The SDK in a process of its own against a Latchkey server: cached verifications, then revocations. */
export async function sdk(): Promise<SdkResult> {
  log("# the SDK: cached verification and revocation propagation");
  const latchkey = await latchkeyServer();
  const child = await spawn<{ type: "ready" }>("./sdk.ts");
  try {
    const made = await ask<{ keys: { id: string; key: string }[] }>(
      latchkey,
      { type: "keys", n: SDK_CACHED_KEYS + SDK_REVOCATIONS + 20 },
      "keys",
    );
    const run: SdkRun = {
      type: "run",
      url: `http://127.0.0.1:${latchkey.first.port}`,
      verifyKey: latchkey.first.verifyKey,
      managementKey: latchkey.first.managementKey,
      permission: "transactions:read",
      cached: made.keys.slice(0, SDK_CACHED_KEYS),
      revoked: made.keys.slice(SDK_CACHED_KEYS),
      warmUp: 20,
    };
    return await ask<SdkResult>(child, run as unknown as Record<string, unknown>, "measured");
  } finally {
    await stop(child);
    await stop(latchkey);
  }
}
