// One store's in-process figures, in a fresh process: key creation, verification, heap per cached key.
// argv: <store kind>. Sends one {type:"result"} message and exits.
import { PLATFORM_SCOPE, type VerifyInput } from "../src/services/verification.ts";
import {
  type BenchStore,
  type BenchStoreKind,
  benchRuntime,
  bulkKeys,
  createKey,
  type Fixture,
  malformedKey,
  openBenchStore,
  seed,
  uncachedRuntime,
  unknownKey,
} from "./fixture.ts";
import { CREATE_MS, GATEWAY_IP, gc, IN_PROCESS_MS, MEMORY_KEYS, median, medianOps, RUNS } from "./stats.ts";

/** Keys cycled through in the cached-hit case, so it is not one hot entry. */
const CACHED_KEYS = 1000;

export interface InProcessResult {
  type: "result";
  store: BenchStoreKind;
  verify: { case: string; ops: number }[];
  createOps: number;
  bytesPerCachedKey: number;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Heap growth from verifying MEMORY_KEYS distinct keys into an empty cache, per key. */
async function bytesPerCachedKey(bench: BenchStore, fx: Fixture): Promise<number> {
  const keys = await bulkKeys(bench, fx, MEMORY_KEYS);
  const weighed = await benchRuntime(bench, { max: MEMORY_KEYS, ttlMs: 3_600_000 });
  const service = weighed.services.verification;
  const usage = weighed.services.usage;
  const cache = (service as unknown as { cache: { clear(): void; size: number } }).cache;
  const inputs = keys.map((key) => ({ key }));
  const samples: number[] = [];
  for (let round = 0; round < Math.min(RUNS, 3); round++) {
    cache.clear();
    await usage.flush();
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (const i of inputs) await service.verify(i, PLATFORM_SCOPE);
    // Last-used records wait in memory per key until the flush; they are not the cache's cost.
    await usage.flush();
    gc();
    gc();
    samples.push((process.memoryUsage().heapUsed - before) / MEMORY_KEYS);
  }
  await weighed.close();
  if (cache.size !== MEMORY_KEYS) throw new Error(`cache holds ${cache.size} keys, not ${MEMORY_KEYS}`);
  return median(samples);
}

async function run(kind: BenchStoreKind): Promise<InProcessResult> {
  const bench = await openBenchStore(kind);
  const runtime = await benchRuntime(bench);
  const services = runtime.services;
  try {
    const fx = await seed(services);

    log(`  ${kind}: key creation`);
    const created: string[] = [];
    const createOps = await medianOps(async () => {
      created.push((await createKey(services, fx.companyId, fx.credentialId)).key);
    }, CREATE_MS);

    // As a gateway asks: the key, one permission the route needs, and the client's address.
    const input = (key: string): VerifyInput => ({ key, permissions: [fx.permission], ip: GATEWAY_IP });
    const cachedInputs = created.slice(0, CACHED_KEYS).map(input);
    const n = cachedInputs.length;
    const verification = services.verification;
    const uncachedAll = await uncachedRuntime(bench);
    const uncached = uncachedAll.services.verification;
    for (const i of cachedInputs) {
      const result = await verification.verify(i, PLATFORM_SCOPE);
      if (!result.valid) throw new Error(`bench key did not verify: ${result.code}`);
    }
    const unknownInputs = Array.from({ length: n }, () => input(unknownKey()));
    const oneUnknown = input(unknownKey());
    const malformed = input(malformedKey(fx.key));
    for (const [i, code] of [
      [oneUnknown, "NOT_FOUND"],
      [malformed, "MALFORMED"],
    ] as const) {
      const result = await verification.verify(i, PLATFORM_SCOPE);
      if (result.code !== code) throw new Error(`expected ${code}, got ${result.code}`);
    }

    const cases: [string, (i: number) => Promise<unknown>][] = [
      ["cached hit", (i) => verification.verify(cachedInputs[i % n] as VerifyInput, PLATFORM_SCOPE)],
      [
        "cache miss (one indexed query)",
        (i) => uncached.verify(cachedInputs[i % n] as VerifyInput, PLATFORM_SCOPE),
      ],
      ["negative, cached (same unknown key)", () => verification.verify(oneUnknown, PLATFORM_SCOPE)],
      [
        "negative, uncached (distinct unknown keys)",
        (i) => uncached.verify(unknownInputs[i % n] as VerifyInput, PLATFORM_SCOPE),
      ],
      ["malformed (bad checksum)", () => verification.verify(malformed, PLATFORM_SCOPE)],
    ];
    const verify: InProcessResult["verify"] = [];
    for (const [name, fn] of cases) {
      log(`  ${kind}: verify, ${name}`);
      verify.push({ case: name, ops: await medianOps(fn, IN_PROCESS_MS) });
    }

    await uncachedAll.close();

    log(`  ${kind}: heap per cached key (${MEMORY_KEYS} keys)`);
    return {
      type: "result",
      store: kind,
      verify,
      createOps,
      bytesPerCachedKey: await bytesPerCachedKey(bench, fx),
    };
  } finally {
    await runtime.close();
    await bench.close();
  }
}

const result = await run(process.argv[2] as BenchStoreKind);
process.send?.(result, () => process.disconnect());
