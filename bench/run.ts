// `npm run bench`: runs each section in fresh processes and prints Markdown tables of medians.
// Progress goes to stderr, figures to stdout.
import { cpus } from "node:os";
import { ask, type Child, exited, killAll, spawn, stop } from "./child.ts";
import { closeAgent, REDIS_URL, redisReachable } from "./cluster.ts";
import { type BenchStoreKind, DATABASE_URL } from "./fixture.ts";
import {
  type AuthorizeResult,
  authorizeVsVerify,
  type ForwardAuthResult,
  forwardAuth,
  type HttpFigure,
  loaderUsed,
  sdk,
} from "./forward-auth.ts";
import type { InProcessResult } from "./inprocess.ts";
import type { LoadRequest, LoadResult } from "./load.ts";
import type { PeerInProcessResult } from "./peer-inprocess.ts";
import { measurePropagation, type PropagationResult } from "./propagation.ts";
import type { ScaleGrown, ScaleMeasured } from "./scale.ts";
import type { SdkResult } from "./sdk.ts";
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
  REVOCATIONS,
  RUNS,
  table,
} from "./stats.ts";

const DEFAULT_CACHE_MAX = 100_000;
const HAS_GC = typeof (globalThis as { gc?: unknown }).gc === "function";
const STORES = ["pglite", "postgres"] as const;

/**
 * `--keys N` (or BENCH_KEYS=N): also measure with N keys in the store, beside 1,000. Off by default:
 * filling PGlite with 1,000,000 keys alone takes about 2.5 minutes on 2 cores.
 */
function keysArg(): number {
  const i = process.argv.indexOf("--keys");
  const raw = i >= 0 ? process.argv[i + 1] : process.env.BENCH_KEYS;
  if (raw === undefined || raw === "") return 0;
  const n = Number(raw.replaceAll("_", "").replaceAll(",", ""));
  if (!Number.isInteger(n) || n <= 1000)
    throw new Error(`--keys wants a whole number above 1,000, not ${raw}`);
  return n;
}
const SCALE_KEYS = keysArg();

/**
 * `--only a,b` runs only those sections: "classic" (sections 1 to 8, issue 4's), "forward-auth",
 * "authorize", "sdk" (issue 13's, sections 9 to 11). The whole bench takes about 8 minutes; one
 * section is a quicker check of one change.
 */
const SECTIONS = ["classic", "forward-auth", "authorize", "sdk"] as const;
function onlyArg(): Set<string> {
  const i = process.argv.indexOf("--only");
  if (i < 0) return new Set(SECTIONS);
  const asked = (process.argv[i + 1] ?? "").split(",").filter((name) => name !== "");
  const unknown = asked.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (asked.length === 0 || unknown.length > 0)
    throw new Error(`--only wants some of ${SECTIONS.join(", ")}, not ${process.argv[i + 1] ?? "nothing"}`);
  return new Set(asked);
}
const ONLY = onlyArg();
const want = (section: (typeof SECTIONS)[number]) => ONLY.has(section);

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
  /** better-auth's server: its keys and the permission asked for. */
  keys?: string[];
  permissions?: Record<string, string[]>;
}
interface HttpRow {
  server: string;
  rps: number;
  p50: number;
  p99: number;
  failed: number;
}
const memory: { what: string; store: string; bytes: number; unit: "MB" | "B" }[] = [];
/** The load generator bench/load.ts found: wrk, or autocannon without it. */
let loaderName = "autocannon";

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

async function peerInProcess(): Promise<PeerInProcessResult[]> {
  const results: PeerInProcessResult[] = [];
  for (const kind of STORES) {
    log(`# in-process, better-auth on ${storeName[kind]}`);
    const child = await spawn<PeerInProcessResult>("./peer-inprocess.ts", [kind]);
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
  const peers: typeof targets = [];
  for (const kind of STORES) {
    log(`  starting better-auth on ${storeName[kind]}`);
    peers.push({
      name: `better-auth api-key, ${storeName[kind]}`,
      kind,
      child: await spawn<ServerInfo>("./server.ts", ["better-auth", kind]),
    });
  }
  const pglite = (targets[0] as (typeof targets)[number]).child;
  const requestFor = (child: Child<ServerInfo>): Omit<LoadRequest, "seconds" | "connections"> => {
    const url = `http://127.0.0.1:${child.first.port}/v1/verify`;
    const { keys, permissions } = child.first;
    if (keys !== undefined) {
      // better-auth: the same question (a key and one permission), spread over its 1,000 keys.
      const bodies = keys.map((key) => JSON.stringify({ key, permissions }));
      return { url, headers: { "content-type": "application/json" }, body: bodies[0] as string, bodies };
    }
    // The bare server gets exactly the request Latchkey on PGlite gets.
    const source = child.first.verifyKey === undefined ? pglite : child;
    return {
      url,
      headers: { "content-type": "application/json", "x-api-key": source.first.verifyKey as string },
      body: JSON.stringify({ key: source.first.key, permissions: [source.first.permission], ip: GATEWAY_IP }),
    };
  };
  const { url, headers, body } = requestFor(pglite);
  const probe = await fetch(url, { method: "POST", headers, body });
  const answer = await probe.text();
  if (probe.status !== 200 || JSON.parse(answer).data?.valid !== true) {
    throw new Error(`probe verify failed: ${probe.status} ${answer}`);
  }
  log(`  starting bare node:http (${answer.length}-byte JSON body)`);
  const bare = {
    name: `bare node:http (same ${answer.length}-byte JSON body)`,
    child: await spawn<ServerInfo>("./server.ts", ["bare", answer]),
  };
  const all = [bare, ...targets, ...peers];
  const loader = await spawn<{ loader: string }>("./load.ts");
  loaderName = loader.first.loader;
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

interface ScaleResult {
  store: BenchStoreKind;
  small: ScaleMeasured;
  large: ScaleMeasured;
  grown: ScaleGrown;
  httpSmall: number;
  httpLarge: number;
}

/** Each store filled from 1,000 keys to SCALE_KEYS, measured in-process and over HTTP at both sizes. */
async function scale(): Promise<ScaleResult[]> {
  const results: ScaleResult[] = [];
  for (const kind of STORES) {
    log(`# ${fmt.int(SCALE_KEYS)} keys, ${storeName[kind]}`);
    const child = await spawn<ServerInfo & { keys: number }>("./scale.ts", [kind]);
    const loader = await spawn("./load.ts");
    // Cached HTTP verification of one sample key, as in the HTTP section: warm-up, then RUNS runs.
    const httpAt = async (key: string) => {
      const request = {
        type: "load",
        url: `http://127.0.0.1:${child.first.port}/v1/verify`,
        headers: { "content-type": "application/json", "x-api-key": child.first.verifyKey as string },
        body: JSON.stringify({ key, permissions: [child.first.permission], ip: GATEWAY_IP }),
        connections: CONNECTIONS,
      };
      await ask<LoadResult>(loader, { ...request, seconds: Math.min(2, HTTP_SECONDS) }, "loaded");
      const rps: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        log(`  HTTP run ${r + 1}/${RUNS}`);
        const result = await ask<LoadResult>(loader, { ...request, seconds: HTTP_SECONDS }, "loaded");
        if (result.failed > 0) throw new Error(`${result.failed} HTTP verifications failed`);
        rps.push(result.rps);
      }
      return median(rps);
    };
    // The first pass in a fresh process runs while the JIT and the store's caches are still warming
    // up, and came out up to 80 % slower than the same figures a minute later: it is not counted.
    await ask<ScaleMeasured>(child, { type: "inprocess" }, "measured");
    const small = await ask<ScaleMeasured>(child, { type: "inprocess" }, "measured");
    const httpSmall = await httpAt(child.first.key as string);
    log(`  filling to ${fmt.int(SCALE_KEYS)} keys`);
    const grown = await ask<ScaleGrown>(child, { type: "grow", to: SCALE_KEYS }, "grown");
    log(`  filled in ${fmt.one(grown.seconds)} s`);
    const large = await ask<ScaleMeasured>(child, { type: "inprocess" }, "measured");
    const httpLarge = await httpAt(grown.key);
    await stop(loader);
    await stop(child);
    results.push({ store: kind, small, large, grown, httpSmall, httpLarge });
  }
  return results;
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

/** Revocation propagation between two nodes; a string says why it was not measured. */
async function propagation(): Promise<PropagationResult | string> {
  log(`# two nodes on PostgreSQL + Redis: ${fmt.int(REVOCATIONS)} revocations`);
  if (!(await redisReachable())) {
    log(`  Redis at ${REDIS_URL} does not answer: skipped`);
    return `not run: Redis at ${REDIS_URL} does not answer (set BENCH_REDIS_URL)`;
  }
  try {
    return await measurePropagation(REVOCATIONS);
  } catch (err) {
    log(`  failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
    return `failed: ${(err as Error).message}`;
  } finally {
    closeAgent();
  }
}

process.on("SIGINT", () => {
  killAll();
  process.exit(130);
});

const started = new Date();
let local: InProcessResult[] = [];
let peerLocal: PeerInProcessResult[] = [];
let web: HttpRow[] = [];
let sized: ScaleResult[] = [];
let spread: PropagationResult | string = "not run";
let gateway: ForwardAuthResult | string = "not run";
let authorizing: AuthorizeResult | null = null;
let inSdk: SdkResult | null = null;
try {
  if (want("classic")) {
    local = await inProcess();
    peerLocal = await peerInProcess();
    web = await http();
    await diskStartupRss();
    if (SCALE_KEYS > 0) sized = await scale();
    spread = await propagation();
  }
  if (want("forward-auth")) gateway = await forwardAuth();
  if (want("authorize")) authorizing = await authorizeVsVerify();
  if (want("sdk")) inSdk = await sdk();
} finally {
  killAll();
}

// ---------------------------------------------------------------------------------------------------

/** One line per target of issue 4, collected as the sections are printed and summed up at the end. */
const targets: [string, string, string][] = [];
const verdict = (met: boolean) => (met ? "met" : "**not met**");

const out: string[] = [];
out.push(
  `Latchkey bench, ${started.toISOString().slice(0, 10)}: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}; ` +
    `each figure the median of ${RUNS} run${RUNS === 1 ? "" : "s"}${QUICK ? " (BENCH_QUICK: a smoke run, not figures to quote)" : ""}; ` +
    `PostgreSQL at ${DATABASE_URL.replace(/\/\/[^@]*@/, "//")}.`,
);

if (want("classic")) {
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
  const opsOf = (store: BenchStoreKind, name: string) =>
    verifyRows.find((r) => r.store === store && r.case === name)?.ops ?? Number.NaN;
  const cached = Math.min(...verifyRows.filter((r) => r.case === "cached hit").map((r) => r.ops));
  targets.push([
    "in-process cached verification ≥ 300,000/s",
    `${fmt.int(cached)}/s (slower store)`,
    verdict(cached >= 300_000),
  ]);

  const bareRow = web[0];
  const webRow = (name: string) => web.find((r) => r.server === name);
  out.push(
    "",
    `### 2. HTTP POST /v1/verify (${loaderName}, ${CONNECTIONS} keep-alive connections, ${HTTP_SECONDS} s per run)`,
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
  const latchkeyHttp = STORES.map((k) => webRow(`Latchkey, ${storeName[k]}`)?.rps ?? Number.NaN);
  const ratio = Math.min(...latchkeyHttp.map((rps) => rps / (bareRow?.rps ?? Number.NaN)));
  targets.push([
    "cached HTTP verification ≥ 0.6 × bare node:http",
    `${fmt.two(ratio)} × (slower store)`,
    verdict(ratio >= 0.6),
  ]);

  out.push(
    "",
    "### 3. Latchkey against better-auth's api-key plugin (rate limit off, same database kind)",
    "",
  );
  const peerRows: string[][] = [];
  const ratios: number[] = [];
  for (const kind of STORES) {
    const peer = peerLocal.find((p) => p.store === kind);
    const peerHttp = webRow(`better-auth api-key, ${storeName[kind]}`)?.rps ?? Number.NaN;
    const rows: [string, number, number, boolean][] = [
      [
        "in-process, valid key (Latchkey: cached hit)",
        opsOf(kind, "cached hit"),
        peer?.validOps ?? Number.NaN,
        true,
      ],
      [
        "in-process, valid key (Latchkey: cache miss)",
        opsOf(kind, "cache miss (one indexed query)"),
        peer?.validOps ?? Number.NaN,
        false,
      ],
      [
        "in-process, unknown key (Latchkey: uncached)",
        opsOf(kind, "negative, uncached (distinct unknown keys)"),
        peer?.unknownOps ?? Number.NaN,
        false,
      ],
      [
        "HTTP, valid key (Latchkey: cached; 50 connections)",
        latchkeyHttp[STORES.indexOf(kind)] as number,
        peerHttp,
        true,
      ],
    ];
    for (const [what, ours, theirs, counts] of rows) {
      if (counts) ratios.push(ours / theirs);
      peerRows.push([what, storeName[kind], fmt.int(ours), fmt.int(theirs), `${fmt.one(ours / theirs)} ×`]);
    }
  }
  out.push(
    table(
      ["verification", "store", "Latchkey /s", "better-auth /s", "Latchkey ÷ better-auth"],
      peerRows,
      [2, 3, 4],
    ),
  );
  const worstPeer = Math.min(...ratios);
  targets.push([
    "≥ 20 × the better-auth figure (cached, in-process and HTTP)",
    `${fmt.one(worstPeer)} × at worst`,
    verdict(worstPeer >= 20),
  ]);

  out.push("", `### 4. Key creation (one at a time, ${CREATE_MS / 1000} s per run)`, "");
  out.push(
    table(
      ["service", "store", "keys/s", "ms per key"],
      [
        ...local.map((r) => [
          "Latchkey keys.create",
          storeName[r.store],
          fmt.int(r.createOps),
          fmt.two(1000 / r.createOps),
        ]),
        ...peerLocal.map((r) => [
          "better-auth createApiKey",
          storeName[r.store],
          fmt.int(r.createOps),
          fmt.two(1000 / r.createOps),
        ]),
      ],
      [2, 3],
    ),
  );

  out.push(
    "",
    `### 5. Store size: 1,000 keys against ${SCALE_KEYS > 0 ? fmt.int(SCALE_KEYS) : "more"} keys`,
    "",
  );
  if (sized.length === 0) {
    out.push("Not run: `npm run bench -- --keys 1000000` (about 10 more minutes) adds this section.");
    targets.push(["figures within 20 % from 1,000 to 1,000,000 keys", "not run (--keys)", "—"]);
  } else {
    const rows: string[][] = [];
    let worst = 0;
    for (const r of sized) {
      const pairs: [string, number, number][] = [
        ...r.small.verify.map((v): [string, number, number] => [
          `in-process, ${v.case}`,
          v.ops,
          r.large.verify.find((w) => w.case === v.case)?.ops ?? Number.NaN,
        ]),
        ["HTTP, cached valid key (50 connections)", r.httpSmall, r.httpLarge],
      ];
      for (const [what, small, large] of pairs) {
        const change = large / small - 1;
        worst = Math.max(worst, Math.abs(change));
        rows.push([
          what,
          storeName[r.store],
          fmt.int(small),
          fmt.int(large),
          `${change >= 0 ? "+" : "−"}${fmt.one(Math.abs(change) * 100)} %`,
          Math.abs(change) <= 0.2 ? "yes" : "**no**",
        ]);
      }
    }
    out.push(
      table(
        [
          "verification/s",
          "store",
          `${fmt.int(sized[0]?.small.keys ?? 0)} keys`,
          `${fmt.int(sized[0]?.large.keys ?? 0)} keys`,
          "change",
          "within 20 %",
        ],
        rows,
        [2, 3, 4],
      ),
    );
    out.push(
      "",
      sized
        .map(
          (r) =>
            `${storeName[r.store]}: filled to ${fmt.int(r.grown.keys)} keys in ${fmt.one(r.grown.seconds)} s (bulk INSERT … SELECT unnest), RSS then ${fmt.mb(r.grown.rss)}.`,
        )
        .join(" "),
    );
    targets.push([
      `figures within 20 % from 1,000 to ${fmt.int(SCALE_KEYS)} keys`,
      `${fmt.one(worst * 100)} % at worst`,
      verdict(worst <= 0.2),
    ]);
  }

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
  out.push("", "### 6. Memory", "");
  out.push(
    table(
      ["what", "store", "value"],
      memory.map((m) => [m.what, m.store, m.unit === "MB" ? fmt.mb(m.bytes) : `${fmt.int(m.bytes)} B`]),
      [2],
    ),
  );
  // The embedded server is what `latchkey serve` runs: PGlite on a data dir. The in-memory rows are the
  // bench's and the tests' store (initdb runs in-process there), shown for comparison.
  const embedded = Math.max(
    ...memory
      .filter((m) => m.what.startsWith("RSS") && m.store === storeName["pglite-disk"])
      .map((m) => m.bytes),
  );
  targets.push([
    "embedded server RSS < 400 MB (`latchkey serve`, data dir)",
    `${fmt.mb(embedded)} at most`,
    verdict(embedded < 400 * 1024 * 1024),
  ]);
  out.push(
    "",
    `### 7. Two nodes on PostgreSQL + Redis: revocation propagation (${fmt.int(REVOCATIONS)} revocations)`,
    "",
  );
  if (typeof spread === "string") {
    out.push(`${spread[0]?.toUpperCase()}${spread.slice(1)}.`);
    targets.push(["p99 revocation propagation < 100 ms (two nodes)", spread, "—"]);
  } else {
    const ms = (n: number) => fmt.one(n);
    out.push(
      table(
        ["time until the other node answers REVOKED", "p50 ms", "p99 ms", "max ms"],
        [
          [
            "from the revoking node's 200 (ack)",
            ms(spread.fromAck.p50),
            ms(spread.fromAck.p99),
            ms(spread.fromAck.max),
          ],
          [
            "from sending the DELETE",
            ms(spread.fromSend.p50),
            ms(spread.fromSend.p99),
            ms(spread.fromSend.max),
          ],
          ["one poll of the other node (the resolution)", ms(spread.poll.p50), ms(spread.poll.p99), ""],
        ],
        [1, 2, 3],
      ),
    );
    out.push(
      "",
      `Cache TTL 10 minutes, so only the Redis bus explains a REVOKED answer. ` +
        `${fmt.int(spread.beforeAck)} of ${fmt.int(spread.revocations)} were already REVOKED on the other node ` +
        `before the 200 arrived (counted as 0 ms from the ack); ` +
        `${fmt.int(spread.timedOut)} never turned REVOKED within 5 s.`,
    );
    const worst = spread.timedOut > 0 ? Number.POSITIVE_INFINITY : spread.fromAck.p99;
    targets.push([
      "p99 revocation propagation < 100 ms (two nodes)",
      spread.timedOut > 0
        ? `${fmt.int(spread.timedOut)} revocations never propagated`
        : `${ms(worst)} ms from the ack (${ms(spread.fromSend.p99)} ms from sending)`,
      verdict(worst < 100),
    ]);
  }

  out.push("", "### 8. Issue 4's targets", "");
  out.push(table(["target", "measured", "status"], targets));
}
// Issue 13's sections.
const goals: [string, string, string][] = [];
const httpRow = (
  name: string,
  f: { rps: number; p50: number; p99: number; failed: number },
  base?: number,
) => [
  name,
  fmt.int(f.rps),
  fmt.two(f.p50),
  fmt.two(f.p99),
  base === undefined ? "1.00" : fmt.two(f.rps / base),
  fmt.int(f.failed),
];
/** Where each request's CPU went (µs per request, by process), under a section's requests/s table. */
function cpuTable(rows: [name: string, figure: HttpFigure][]): string[] {
  const names = Object.keys(rows[0]?.[1].cpu ?? {});
  if (names.length === 0 || rows.some(([, f]) => f.cpu === null)) return [];
  return [
    "",
    table(
      ["CPU µs per request (median of the runs)", ...names, "all"],
      rows.map(([name, f]) => {
        const cpu = f.cpu as Record<string, number>;
        return [
          name,
          ...names.map((n) => fmt.one(cpu[n] ?? 0)),
          fmt.one(names.reduce((sum, n) => sum + (cpu[n] ?? 0), 0)),
        ];
      }),
      names.map((_, i) => i + 1).concat(names.length + 1),
    ),
  ];
}
if (want("forward-auth")) {
  out.push(
    "",
    `### 9. Forward auth through nginx (${loaderUsed}, ${CONNECTIONS} keep-alive connections, ${HTTP_SECONDS} s per run)`,
    "",
  );
  if (typeof gateway === "string") {
    out.push(`${gateway[0]?.toUpperCase()}${gateway.slice(1)}.`);
    goals.push(["forward auth through nginx ≥ 0.5 × no auth (aim 0.7)", gateway, "—"]);
  } else {
    out.push(
      table(
        ["GET /v1/transactions through", "requests/s", "p50 ms", "p99 ms", "vs no auth", "failed"],
        [
          httpRow(`nginx → upstream (node:http, ${gateway.upstreamBytes}-byte body), no auth`, gateway.plain),
          httpRow(
            "nginx → auth_request to Latchkey (shipped nginx.conf) → upstream",
            gateway.authorized,
            gateway.plain.rps,
          ),
        ],
        [1, 2, 3, 4, 5],
      ),
      ...cpuTable([
        ["no auth", gateway.plain],
        ["auth_request", gateway.authorized],
      ]),
    );
    const ratio = gateway.authorized.rps / gateway.plain.rps;
    goals.push([
      "forward auth through nginx ≥ 0.5 × no auth (aim 0.7)",
      `${fmt.two(ratio)} ×`,
      verdict(ratio >= 0.5),
    ]);
  }
}
if (want("authorize") && authorizing !== null) {
  out.push(
    "",
    `### 10. GET /v1/authorize against POST /v1/verify (${loaderUsed}, ${CONNECTIONS} keep-alive connections, ${HTTP_SECONDS} s per run)`,
    "",
  );
  out.push(
    table(
      ["request (same key, same verify key)", "requests/s", "p50 ms", "p99 ms", "vs /v1/verify", "failed"],
      [
        httpRow("POST /v1/verify (key and permission in the JSON body)", authorizing.verify),
        httpRow(
          "GET /v1/authorize (nginx's form: route in X-Original-*, no body)",
          authorizing.authorize,
          authorizing.verify.rps,
        ),
      ],
      [1, 2, 3, 4, 5],
    ),
    ...cpuTable([
      ["POST /v1/verify", authorizing.verify],
      ["GET /v1/authorize", authorizing.authorize],
    ]),
  );
  const ratio = authorizing.authorize.rps / authorizing.verify.rps;
  goals.push(["/v1/authorize ≥ 0.9 × /v1/verify over HTTP", `${fmt.two(ratio)} ×`, verdict(ratio >= 0.9)]);
}
if (want("sdk") && inSdk !== null) {
  const ms = (n: number) => fmt.one(n);
  out.push("", "### 11. The SDK (packages/sdk): cached verification and revocation propagation", "");
  out.push(
    table(
      ["figure", "value"],
      [["cached verifications/s, in-process (one process, 1,000 keys, one permission)", fmt.int(inSdk.ops)]],
      [1],
    ),
  );
  out.push("");
  out.push(
    table(
      [
        `time until the SDK refuses a revoked key (${fmt.int(inSdk.revocations)} revocations)`,
        "p50 ms",
        "p99 ms",
        "max ms",
      ],
      [
        [
          "from the revoking request's 200",
          ms(inSdk.fromAck.p50),
          ms(inSdk.fromAck.p99),
          ms(inSdk.fromAck.max),
        ],
        ["from sending the DELETE", ms(inSdk.fromSend.p50), ms(inSdk.fromSend.p99), ms(inSdk.fromSend.max)],
      ],
      [1, 2, 3],
    ),
  );
  out.push(
    "",
    `${fmt.int(inSdk.beforeAck)} of ${fmt.int(inSdk.revocations)} were refused before the 200 arrived (0 ms from it); ` +
      `${fmt.int(inSdk.timedOut)} were never refused within 5 s.`,
  );
  goals.push([
    "SDK cached verification ≥ 1,000,000/s",
    `${fmt.int(inSdk.ops)}/s`,
    verdict(inSdk.ops >= 1_000_000),
  ]);
  const worst = inSdk.timedOut > 0 ? Number.POSITIVE_INFINITY : inSdk.fromAck.p99;
  goals.push([
    "revocation seen by the SDK, p99 < 100 ms",
    inSdk.timedOut > 0 ? `${fmt.int(inSdk.timedOut)} never refused` : `${ms(worst)} ms from the 200`,
    verdict(worst < 100),
  ]);
}
if (goals.length > 0) {
  out.push("", "### 12. Issue 13's goals", "");
  out.push(table(["goal", "measured", "status"], goals));
}

process.stdout.write(`${out.join("\n")}\n`);
