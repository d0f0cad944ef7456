// Store size: one Latchkey server on one store, measured in-process and over HTTP with 1,000 keys in
// the store, then again after the store has been filled to many more (issue 4: 1,000,000).
// argv: <store kind>. Tells the parent {type:"ready", port, verifyKey, key, permission, keys} once
// listening; answers "inprocess" (→ "measured"), "grow" {to} (→ "grown"), and "stop".
import type { AddressInfo } from "node:net";
import { buildApp } from "../src/http/app.ts";
import { PLATFORM_SCOPE, type VerifyInput } from "../src/services/verification.ts";
import {
  analyze,
  type BenchStoreKind,
  benchRuntime,
  countKeys,
  insertKeys,
  openBenchStore,
  seed,
  uncachedRuntime,
  unknownKey,
} from "./fixture.ts";
import { GATEWAY_IP, IN_PROCESS_MS, medianOps } from "./stats.ts";

/** Keys the in-process cases cycle through, at every size. */
const SAMPLE = 1000;

export interface ScaleMeasured {
  type: "measured";
  keys: number;
  verify: { case: string; ops: number }[];
}
export interface ScaleGrown {
  type: "grown";
  keys: number;
  seconds: number;
  rss: number;
  /** A sample key from the middle of the newly inserted rows, for the HTTP load. */
  key: string;
}
type Message = { type: "inprocess" } | { type: "grow"; to: number } | { type: "stop" };

const log = (line: string) => process.stderr.write(`${line}\n`);
const kind = process.argv[2] as BenchStoreKind;

const bench = await openBenchStore(kind);
const runtime = await benchRuntime(bench);
const services = runtime.services;
const uncachedAll = await uncachedRuntime(bench);
const uncached = uncachedAll.services;
const app = await buildApp({ services, logger: false, health: () => ({ store: bench.store.kind }) });
await app.listen({ port: 0, host: "127.0.0.1" });
const fx = await seed(services);

// The keys measured are always bulk-inserted ones, so at every size they are the same kind of row.
let sample = await insertKeys(bench, fx, SAMPLE);
await analyze(bench);

const input = (key: string): VerifyInput => ({ key, permissions: [fx.permission], ip: GATEWAY_IP });

async function measure(): Promise<ScaleMeasured> {
  const keys = await countKeys(bench);
  const valid = sample.map(input);
  const unknown = Array.from({ length: SAMPLE }, () => input(unknownKey()));
  for (const i of valid) {
    const result = await services.verification.verify(i, PLATFORM_SCOPE);
    if (!result.valid) throw new Error(`a sample key did not verify at ${keys} keys: ${result.code}`);
  }
  const n = valid.length;
  const cases: [string, (i: number) => Promise<unknown>][] = [
    ["cached hit", (i) => services.verification.verify(valid[i % n] as VerifyInput, PLATFORM_SCOPE)],
    [
      "cache miss (one indexed query)",
      (i) => uncached.verification.verify(valid[i % n] as VerifyInput, PLATFORM_SCOPE),
    ],
    [
      "negative, uncached (distinct unknown keys)",
      (i) => uncached.verification.verify(unknown[i % n] as VerifyInput, PLATFORM_SCOPE),
    ],
  ];
  const verify: ScaleMeasured["verify"] = [];
  for (const [name, fn] of cases) {
    log(`  ${kind}, ${keys.toLocaleString("en-US")} keys: verify, ${name}`);
    verify.push({ case: name, ops: await medianOps(fn, IN_PROCESS_MS) });
  }
  return { type: "measured", keys, verify };
}

async function grow(to: number): Promise<ScaleGrown> {
  const start = performance.now();
  const more = to - (await countKeys(bench));
  // A new sample spread evenly over the inserted rows: early, middle and late pages and index leaves.
  const keepEvery = Math.max(1, Math.floor(more / SAMPLE));
  let reported = 0;
  const kept = await insertKeys(bench, fx, more, {
    keepEvery,
    progress: (done) => {
      if (done - reported >= 100_000 || done === more) {
        reported = done;
        log(`  ${kind}: ${done.toLocaleString("en-US")} / ${more.toLocaleString("en-US")} keys inserted`);
      }
    },
  });
  sample = kept.slice(0, SAMPLE);
  // What autovacuum would do on PostgreSQL after a load this size; PGlite has no autovacuum.
  await analyze(bench);
  const keys = await countKeys(bench);
  return {
    type: "grown",
    keys,
    seconds: (performance.now() - start) / 1000,
    rss: process.memoryUsage().rss,
    key: sample[sample.length >> 1] as string,
  };
}

process.on("message", async (message: Message) => {
  if (message.type === "inprocess") process.send?.(await measure());
  if (message.type === "grow") process.send?.(await grow(message.to));
  if (message.type === "stop") {
    await app.close();
    await uncachedAll.close();
    await runtime.close();
    await bench.close();
    process.disconnect();
  }
});

process.send?.({
  type: "ready",
  port: (app.server.address() as AddressInfo).port,
  verifyKey: fx.verifyKey,
  key: sample[SAMPLE >> 1],
  permission: fx.permission,
  keys: await countKeys(bench),
});
