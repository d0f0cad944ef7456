// Revocation propagation between two nodes (issue 4, benchmark 6): two real nodes (bench/node.ts, each
// `startServer` in a process of its own) on one PostgreSQL schema and one Redis. For each key: it is
// verified twice on the reading node (so that node has it cached), then revoked on the other node while
// this process polls the reading node's POST /v1/verify, one request at a time over keep-alive, until the
// answer is REVOKED. The cache TTL is ten minutes, so only the bus can explain a REVOKED answer.
// Writer and reader alternate (A revokes and B reads, then the other way round).
import { call, createKey, createTenant, startCluster, verifyCode, waitConnected } from "./cluster.ts";
import { percentile } from "./stats.ts";

export interface PropagationResult {
  revocations: number;
  /** From just before the DELETE was sent until the reader's first REVOKED answer arrived, ms. */
  fromSend: { p50: number; p99: number; max: number };
  /**
   * From the moment the writer's 200 arrived until the reader's first REVOKED answer arrived, ms; 0 when
   * the reader already answered REVOKED before the writer's answer arrived.
   */
  fromAck: { p50: number; p99: number; max: number };
  /** How many times the reader already answered REVOKED before the writer's 200 arrived. */
  beforeAck: number;
  /** Round trip of one poll (the resolution of the figures above), ms. */
  poll: { p50: number; p99: number };
  /** Revocations whose REVOKED answer never came within the time limit (each counts as a failure). */
  timedOut: number;
}

const CACHE_TTL_MS = 600_000;
/** A reader still answering VALID this long after the revoke is a failure, not a slow figure. */
const GIVE_UP_MS = 5000;
const WARM_UP = 20;

const log = (line: string) => process.stderr.write(`${line}\n`);

export async function measurePropagation(revocations: number): Promise<PropagationResult> {
  const cluster = await startCluster(2, {
    LATCHKEY_CACHE_TTL_MS: String(CACHE_TTL_MS),
    LATCHKEY_USAGE_FLUSH_MS: "5000",
  });
  try {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    await waitConnected(cluster.nodes);
    const tenant = await createTenant(a, "Propagation bench");
    const total = WARM_UP + revocations;
    log(`  creating ${total} keys`);
    const keys: { id: string; key: string }[] = [];
    for (let i = 0; i < total; i++) keys.push(await createKey(i % 2 === 0 ? a : b, tenant));

    const fromSend: number[] = [];
    const fromAck: number[] = [];
    const polls: number[] = [];
    let beforeAck = 0;
    let timedOut = 0;
    log(`  ${WARM_UP} warm-up revocations, then ${revocations} measured`);
    for (let i = 0; i < total; i++) {
      const { id, key } = keys[i] as { id: string; key: string };
      const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
      // Cached on the reader: the first verification loads the key, the second is a cache hit.
      for (let j = 0; j < 2; j++) {
        const code = await verifyCode(reader, tenant, key);
        if (code !== "VALID")
          throw new Error(`key ${id} answered ${code} on ${reader.name} before its revocation`);
      }
      let ackAt = Number.NaN;
      const sentAt = performance.now();
      const revoked = call(writer, "DELETE", `/v1/keys/${id}`, { key: tenant.managementKey }).then(
        (reply) => {
          ackAt = performance.now();
          if (reply.status !== 200)
            throw new Error(`revoke ${id}: ${reply.status} ${JSON.stringify(reply.body)}`);
        },
      );
      let seenAt = Number.NaN;
      const pollTimes: number[] = [];
      for (;;) {
        const start = performance.now();
        const code = await verifyCode(reader, tenant, key);
        const end = performance.now();
        pollTimes.push(end - start);
        if (code === "REVOKED") {
          seenAt = end;
          break;
        }
        if (code !== "VALID")
          throw new Error(`key ${id} answered ${code} on ${reader.name} while being revoked`);
        if (end - sentAt > GIVE_UP_MS) break;
      }
      await revoked;
      if (i < WARM_UP) continue;
      polls.push(...pollTimes);
      if (Number.isNaN(seenAt)) {
        timedOut++;
        continue;
      }
      fromSend.push(seenAt - sentAt);
      if (seenAt < ackAt) beforeAck++;
      fromAck.push(Math.max(0, seenAt - ackAt));
      if ((i - WARM_UP + 1) % 250 === 0) log(`  ${i - WARM_UP + 1}/${revocations}`);
    }
    const summary = (v: number[]) => ({
      p50: percentile(v, 50),
      p99: percentile(v, 99),
      max: Math.max(...v),
    });
    return {
      revocations,
      fromSend: summary(fromSend),
      fromAck: summary(fromAck),
      beforeAck,
      poll: { p50: percentile(polls, 50), p99: percentile(polls, 99) },
      timedOut,
    };
  } finally {
    await cluster.close();
  }
}
