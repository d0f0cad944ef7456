// The SDK child: a LatchkeyVerifier (packages/sdk) on a Latchkey server child, in a process of its own
// as a gateway's would be. Answers one "run" message with its figures, then waits for "stop".
import { LatchkeyVerifier, type Verdict } from "../packages/sdk/src/index.ts";
import { IN_PROCESS_MS, median, percentile, RUNS } from "./stats.ts";

export interface SdkRun {
  type: "run";
  url: string;
  verifyKey: string;
  managementKey: string;
  permission: string;
  /** Kept in the SDK's cache for the throughput runs. */
  cached: { id: string; key: string }[];
  /** Revoked one by one for the propagation figure; the first `warmUp` are not counted. */
  revoked: { id: string; key: string }[];
  warmUp: number;
}

export interface SdkResult {
  type: "measured";
  /** Cached verifications per second: median of the runs. */
  ops: number;
  /** Milliseconds from the revoking request's 200 arriving to the SDK refusing the key. */
  fromAck: { p50: number; p99: number; max: number };
  /** The same, from sending the DELETE. */
  fromSend: { p50: number; p99: number; max: number };
  /** Refused already when the 200 arrived (counted as 0 ms from the ack). */
  beforeAck: number;
  timedOut: number;
  revocations: number;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Calls `verify` back to back for about `ms` over the cached keys, as a gateway's request handler does:
 * a cache hit answers synchronously (no promise), and a promise would be awaited. The clock is read,
 * and the event loop given a turn, every 1,024 calls; every verdict is checked, so no call can be left
 * out by the JIT.
 */
async function opsPerSecond(
  verifier: LatchkeyVerifier,
  requests: { key: string; permissions: string[] }[],
  ms: number,
) {
  const start = performance.now();
  const end = start + ms;
  let now = start;
  let n = 0;
  let wrong = 0;
  const count = requests.length;
  while (now < end) {
    for (let j = 0; j < 1024; j++) {
      let verdict = verifier.verify(requests[n % count] as { key: string; permissions: string[] });
      if (verdict instanceof Promise) verdict = await verdict;
      if (verdict.source !== "cache" || !verdict.valid) wrong++;
      n++;
    }
    now = performance.now();
    // A gateway's process does I/O between requests; the change stream (and its ping, which the
    // verifier's watchdog listens for) is read here, as it would be there.
    await turn();
  }
  if (wrong > 0) throw new Error(`${wrong} of ${n} cached verifications were not valid cache hits`);
  return n / ((now - start) / 1000);
}

/** Polls the SDK, a turn of the event loop apart (the change stream is read between polls), until it refuses. */
async function refusedBy(verifier: LatchkeyVerifier, key: string, permission: string, until: number) {
  for (;;) {
    let verdict: Verdict | Promise<Verdict> = verifier.verify({ key, permissions: [permission] });
    if (verdict instanceof Promise) verdict = await verdict;
    if (!verdict.valid) {
      if (verdict.code !== "REVOKED") throw new Error(`the SDK answered ${verdict.code}, not REVOKED`);
      return performance.now();
    }
    if (performance.now() > until) return null;
    await turn();
  }
}

async function run(message: SdkRun): Promise<SdkResult> {
  const verifier = new LatchkeyVerifier({ url: message.url, verifyKey: message.verifyKey });
  await verifier.start();
  if (verifier.streamState !== "live") throw new Error(`the change stream is ${verifier.streamState}`);
  try {
    const requests = message.cached.map((k) => ({ key: k.key, permissions: [message.permission] }));
    for (const request of requests) {
      const first = await verifier.verify(request);
      if (!first.valid) throw new Error(`a bench key did not verify: ${first.code}`);
    }
    await opsPerSecond(verifier, requests, Math.max(200, IN_PROCESS_MS / 2));
    const runs: number[] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await opsPerSecond(verifier, requests, IN_PROCESS_MS));

    if (verifier.streamState !== "live") throw new Error(`the change stream is ${verifier.streamState}`);
    const fromAck: number[] = [];
    const fromSend: number[] = [];
    let beforeAck = 0;
    let timedOut = 0;
    for (const [i, { id, key }] of message.revoked.entries()) {
      // Loaded from Latchkey, then answered from the cache: the key is cached when it is revoked.
      await verifier.verify({ key, permissions: [message.permission] });
      const cached = await verifier.verify({ key, permissions: [message.permission] });
      if (!cached.valid || cached.source !== "cache") throw new Error("a key to revoke was not cached");
      const sent = performance.now();
      let acked = Number.NaN;
      const deleted = fetch(`${message.url}/v1/keys/${id}`, {
        method: "DELETE",
        headers: { "x-api-key": message.managementKey },
      }).then(async (res) => {
        acked = performance.now();
        if (res.status !== 200) throw new Error(`DELETE answered ${res.status}: ${await res.text()}`);
      });
      const refused = await refusedBy(verifier, key, message.permission, sent + 5000);
      await deleted;
      if (i < message.warmUp) continue;
      if (refused === null) {
        timedOut++;
        continue;
      }
      if (refused <= acked) beforeAck++;
      fromAck.push(Math.max(0, refused - acked));
      fromSend.push(refused - sent);
    }
    const summary = (values: number[]) => ({
      p50: percentile(values, 50),
      p99: percentile(values, 99),
      max: Math.max(...values),
    });
    return {
      type: "measured",
      ops: median(runs),
      fromAck: summary(fromAck),
      fromSend: summary(fromSend),
      beforeAck,
      timedOut,
      revocations: message.revoked.length - message.warmUp,
    };
  } finally {
    verifier.close();
  }
}

process.on("message", async (message: SdkRun | { type: "stop" }) => {
  if (message.type === "stop") {
    process.disconnect();
    return;
  }
  process.send?.(await run(message));
});
process.send?.({ type: "ready" });
