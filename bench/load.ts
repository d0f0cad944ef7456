// The load generator in a process of its own: wrk when it is installed, autocannon otherwise.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";

export interface LoadRequest {
  url: string;
  /** POST unless told; a request with an empty body is sent with none (no Content-Length). */
  method?: string;
  headers: Record<string, string>;
  body: string;
  /**
   * When given, each request takes the next of these bodies instead of `body` (round robin over all
   * connections), so a peer that writes to the key's row on every verify is not measured queueing on one
   * row lock.
   */
  bodies?: string[];
  seconds: number;
  connections: number;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
}

type Message = ({ type: "load" } & LoadRequest) | { type: "stop" };

/**
 * wrk (Debian's `wrk` package), when installed, is the load generator: it is written in C and used about
 * 70 % of autocannon's CPU per request here (18 µs against 25 µs, both against the bare server). With
 * server and load generator on the same 2 cores, that CPU comes out of the server's share.
 * BENCH_LOADER=autocannon chooses autocannon anyway.
 */
function hasWrk(): boolean {
  if (process.env.BENCH_LOADER === "autocannon") return false;
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" });
    return true;
  } catch (err) {
    // wrk --version prints its banner and exits 1; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}
const LOADER = hasWrk() ? "wrk" : "autocannon";

/** Sends the request's method, headers and body(s); bodies round robin, as autocannon does. */
const WRK_SCRIPT = `
wrk.method = os.getenv("BENCH_METHOD")
local headers = {}
for line in io.lines(os.getenv("BENCH_HEADERS")) do
  local name, value = line:match("^([^:]+): (.*)$")
  headers[name] = value
end
wrk.headers = headers
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  if bodies[i] == "" then return wrk.format(nil, nil, nil, nil) end
  return wrk.format(nil, nil, nil, bodies[i])
end
`;

/** wrk's latency figures ("1.23ms", "850.00us", "1.02s") in milliseconds. */
function ms(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text ?? "");
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

async function runWrk(request: LoadRequest): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-wrk-"));
  try {
    writeFileSync(join(dir, "load.lua"), WRK_SCRIPT);
    writeFileSync(
      join(dir, "headers"),
      Object.entries(request.headers)
        .map(([name, value]) => `${name}: ${value}\n`)
        .join(""),
    );
    // One body per line: JSON.stringify never writes a raw newline.
    writeFileSync(join(dir, "bodies"), `${(request.bodies ?? [request.body]).join("\n")}\n`);
    const args = ["-t1", `-c${request.connections}`, `-d${request.seconds}s`, "--latency"];
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "wrk",
        [...args, "-s", join(dir, "load.lua"), request.url],
        {
          env: {
            ...process.env,
            BENCH_HEADERS: join(dir, "headers"),
            BENCH_BODIES: join(dir, "bodies"),
            BENCH_METHOD: request.method ?? "POST",
          },
        },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      ),
    );
    const total = Number(/(\d+) requests in/.exec(out)?.[1]);
    const seconds = Number(/requests in ([\d.]+)s/.exec(out)?.[1]) || request.seconds;
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const socketErrors = errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
    return {
      rps: total / seconds,
      p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
      p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
      failed: non2xx + socketErrors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runAutocannon(request: LoadRequest): Promise<LoadResult> {
  const bodies = request.bodies;
  let next = 0;
  const result = await autocannon({
    url: request.url,
    connections: request.connections,
    duration: request.seconds,
    pipelining: 1,
    method: (request.method ?? "POST") as "POST",
    headers: request.headers,
    ...(request.body === "" ? {} : { body: request.body }),
    // autocannon rebuilds every request when bodies vary, which costs it CPU: only for slow servers.
    ...(bodies && bodies.length > 0
      ? { requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }] }
      : {}),
  });
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failed: result.non2xx + result.errors + result.timeouts,
  };
}

process.on("message", async (message: Message) => {
  if (message.type === "stop") {
    process.disconnect();
    return;
  }
  const loaded = LOADER === "wrk" ? await runWrk(message) : await runAutocannon(message);
  process.send?.({ type: "loaded", ...loaded });
});
process.send?.({ type: "ready", loader: LOADER });
