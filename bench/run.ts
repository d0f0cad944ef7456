// `npm run bench`: runs each section in fresh processes and prints Markdown tables of medians.
// Progress goes to stderr, figures to stdout.
import { cpus } from "node:os";
import { ask, type Child, exited, killAll, spawn, stop } from "./child.ts";
import { type BenchStoreKind, DATABASE_URL } from "./fixture.ts";
import type { InProcessResult } from "./inprocess.ts";
import type { LoadRequest, LoadResult } from "./load.ts";
import {
  CONNECTIONS,
  CREATE_MS,
  fmt,
  GATEWAY_IP,
  HTTP_SECONDS,
  IN_PROCESS_MS,
  MEMORY_KEYS,
  median,
  QUICK,
  RUNS,
  table,
} from "./stats.ts";

const DEFAULT_CACHE_MAX = 100_000;
const HAS_GC = typeof (globalThis as { gc?: unknown }).gc === "function";
const STORES = ["pglite", "postgres"] as const;

const log = (line: string) => process.stderr.write(`${line}\n`);
const storeName: Record<BenchStoreKind, string> = {
  pglite: "PGlite (in memory)",
  "pglite-disk": "PGlite (data dir)",
  postgres: "PostgreSQL",
};

interface ServerInfo {
  type: "ready";
  port: number;
  startupRss: number;
  rss: number;
  key?: string;
  verifyKey?: string;
  permission?: string;
}
interface HttpRow {
  server: string;
  rps: number;
  p50: number;
  p99: number;
  failed: number;
}
const memory: { what: string; store: string; bytes: number; unit: "MB" | "B" }[] = [];

async function inProcess(): Promise<InProcessResult[]> {
  const results: InProcessResult[] = [];
  for (const kind of STORES) {
    log(`# in-process, ${storeName[kind]}`);
    const child = await spawn<InProcessResult>("./inprocess.ts", [kind]);
    await exited(child);
    results.push(child.first);
  }
  return results;
}

async function http(): Promise<HttpRow[]> {
  log("# HTTP");
  const targets: { name: string; kind: BenchStoreKind; child: Child<ServerInfo> }[] = [];
  for (const kind of STORES) {
    log(`  starting Latchkey on ${storeName[kind]}`);
    targets.push({
      name: `Latchkey, ${storeName[kind]}`,
      kind,
      child: await spawn<ServerInfo>("./server.ts", ["latchkey", kind]),
    });
  }
  const pglite = (targets[0] as (typeof targets)[number]).child;
  // The bare server gets exactly the request Latchkey on PGlite gets.
  const requestFor = (child: Child<ServerInfo>) => {
    const source = child.first.verifyKey === undefined ? pglite : child;
    return {
      url: `http://127.0.0.1:${child.first.port}/v1/verify`,
      headers: { "content-type": "application/json", "x-api-key": source.first.verifyKey as string },
      body: JSON.stringify({ key: source.first.key, permissions: [source.first.permission], ip: GATEWAY_IP }),
    };
  };
  const { url, ...probeRequest } = requestFor(pglite);
  const probe = await fetch(url, { method: "POST", ...probeRequest });
  const answer = await probe.text();
  if (probe.status !== 200 || JSON.parse(answer).data?.valid !== true) {
    throw new Error(`probe verify failed: ${probe.status} ${answer}`);
  }
  log(`  starting bare node:http (${answer.length}-byte JSON body)`);
  const bare = {
    name: `bare node:http (same ${answer.length}-byte JSON body)`,
    child: await spawn<ServerInfo>("./server.ts", ["bare", answer]),
  };
  const all = [bare, ...targets];
  const loader = await spawn("./load.ts");
  const load = (child: Child<ServerInfo>, seconds: number) =>
    ask<LoadResult>(
      loader,
      { type: "load", ...requestFor(child), seconds, connections: CONNECTIONS } satisfies LoadRequest & {
        type: string;
      },
      "loaded",
    );

  for (const t of all) {
    log(`  warm-up: ${t.name}`);
    await load(t.child, Math.min(2, HTTP_SECONDS));
  }
  const runs = new Map<Child<ServerInfo>, LoadResult[]>(all.map((t) => [t.child, []]));
  // Interleaved, so a slow spell of the machine is shared rather than landing on one server.
  for (let r = 0; r < RUNS; r++) {
    for (const t of all) {
      log(`  run ${r + 1}/${RUNS}: ${t.name}`);
      runs.get(t.child)?.push(await load(t.child, HTTP_SECONDS));
    }
  }
  await stop(loader);

  memory.push({
    what: "RSS after start-up",
    store: "bare node:http",
    bytes: bare.child.first.rss,
    unit: "MB",
  });
  for (const t of targets) {
    const after = await ask<{ rss: number }>(t.child, { type: "rss" }, "rss");
    memory.push({
      what: "RSS after start-up (listening, no data)",
      store: storeName[t.kind],
      bytes: t.child.first.startupRss,
      unit: "MB",
    });
    memory.push({ what: "RSS after the HTTP runs", store: storeName[t.kind], bytes: after.rss, unit: "MB" });
  }
  for (const t of all) await stop(t.child);

  return all.map((t) => {
    const rs = runs.get(t.child) ?? [];
    return {
      server: t.name,
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      failed: rs.reduce((sum, x) => sum + x.failed, 0),
    };
  });
}

async function diskStartupRss() {
  log("# RSS of the embedded store on a data dir");
  const child = await spawn<ServerInfo>("./server.ts", ["latchkey", "pglite-disk"]);
  memory.push({
    what: "RSS after start-up (listening, no data)",
    store: storeName["pglite-disk"],
    bytes: child.first.startupRss,
    unit: "MB",
  });
  await stop(child);
}

process.on("SIGINT", () => {
  killAll();
  process.exit(130);
});

const started = new Date();
let local: InProcessResult[] = [];
let web: HttpRow[] = [];
try {
  local = await inProcess();
  web = await http();
  await diskStartupRss();
} finally {
  killAll();
}

// ---------------------------------------------------------------------------------------------------

const out: string[] = [];
out.push(
  `Latchkey bench, ${started.toISOString().slice(0, 10)}: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}; ` +
    `each figure the median of ${RUNS} run${RUNS === 1 ? "" : "s"}${QUICK ? " (BENCH_QUICK: a smoke run, not figures to quote)" : ""}; ` +
    `PostgreSQL at ${DATABASE_URL.replace(/\/\/[^@]*@/, "//")}.`,
);

out.push(
  "",
  `### 1. In-process verification (services.verification.verify, one call at a time, ${IN_PROCESS_MS / 1000} s per run)`,
  "",
);
const verifyRows = local.flatMap((r) => r.verify.map((v) => ({ ...v, store: r.store })));
out.push(
  table(
    ["case", "store", "verifications/s", "µs per call"],
    verifyRows.map((r) => [r.case, storeName[r.store], fmt.int(r.ops), fmt.us(1e6 / r.ops)]),
    [2, 3],
  ),
);
const cached = Math.min(...verifyRows.filter((r) => r.case === "cached hit").map((r) => r.ops));
out.push(
  "",
  `Target: cached hit ≥ 300,000/s: ${cached >= 300_000 ? "met" : "not met"} (${fmt.int(cached)}/s on the slower store).`,
);

const bareRow = web[0];
out.push(
  "",
  `### 2. HTTP POST /v1/verify, cached valid key (autocannon, ${CONNECTIONS} keep-alive connections, ${HTTP_SECONDS} s per run)`,
  "",
);
out.push(
  table(
    ["server", "requests/s", "p50 ms", "p99 ms", "vs bare", "failed"],
    web.map((r) => [
      r.server,
      fmt.int(r.rps),
      String(r.p50),
      String(r.p99),
      bareRow ? fmt.two(r.rps / bareRow.rps) : "",
      fmt.int(r.failed),
    ]),
    [1, 2, 3, 4, 5],
  ),
);
const ratio = Math.min(...web.slice(1).map((r) => r.rps / (bareRow?.rps ?? Number.NaN)));
out.push(
  "",
  `Target: ≥ 0.60 of bare node:http: ${ratio >= 0.6 ? "met" : "not met"} (${fmt.two(ratio)} at worst).`,
);

out.push("", `### 3. Key creation (services.keys.create, one at a time, ${CREATE_MS / 1000} s per run)`, "");
out.push(
  table(
    ["store", "keys/s", "ms per key"],
    local.map((r) => [storeName[r.store], fmt.int(r.createOps), fmt.two(1000 / r.createOps)]),
    [1, 2],
  ),
);

for (const r of local) {
  memory.push({
    what: `heap per cached key (${fmt.int(MEMORY_KEYS)} keys${HAS_GC ? "" : ", no --expose-gc: rough"})`,
    store: storeName[r.store],
    bytes: r.bytesPerCachedKey,
    unit: "B",
  });
}
for (const r of local) {
  memory.push({
    what: `→ a full default cache (${fmt.int(DEFAULT_CACHE_MAX)} keys)`,
    store: storeName[r.store],
    bytes: r.bytesPerCachedKey * DEFAULT_CACHE_MAX,
    unit: "MB",
  });
}
out.push("", "### 4. Memory", "");
out.push(
  table(
    ["what", "store", "value"],
    memory.map((m) => [m.what, m.store, m.unit === "MB" ? fmt.mb(m.bytes) : `${fmt.int(m.bytes)} B`]),
    [2],
  ),
);
const embedded = Math.max(
  ...memory.filter((m) => m.what.startsWith("RSS") && m.store.startsWith("PGlite")).map((m) => m.bytes),
);
out.push(
  "",
  `Target: embedded server RSS < 400 MB: ${embedded < 400 * 1024 * 1024 ? "met" : "not met"} (${fmt.mb(embedded)} at most).`,
);

process.stdout.write(`${out.join("\n")}\n`);
