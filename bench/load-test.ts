// `npm run bench:load [-- --seconds N --workers N --bound-ms N]`: two Latchkey nodes (bench/node.ts, each
// `startServer` in a process of its own) on one PostgreSQL schema and one Redis, mixed traffic over HTTP
// from concurrent workers for a bounded time (about 90 % verification of known, revoked, rotated, unknown
// and malformed keys; 5 % key creation; 2 % revocation; 2 % revocation races, see raceOne; 1 % rotation
// with no grace period; each on a node picked at random), then checks after the fact:
//   1. no request failed unexpectedly: no connection error, no 5xx, every status and verify code one that
//      the request may get given what was acknowledged before it was sent;
//   2. nothing acknowledged was lost: every key created (201), revoked (200) or rotated (200) is so in the
//      store, each company's audit chain verifies, and it holds exactly one key.created / key.revoked /
//      key.rotated event for each of them;
//   3. every revocation (and rotation with no grace period) was honoured after its propagation bound: any
//      verification of the key sent more than --bound-ms after the 200, on either node, was refused;
//   4. usage counts add up: after both nodes stop in order, key_usage_daily holds, for every key, exactly
//      the verifications answered VALID (requests) and refused for a known key (denied).
// Prints a summary and exits non-zero when any check fails. Progress goes to stderr, the summary to stdout.
import { generateToken } from "../src/core/key-format.ts";
import {
  type ClusterEnv,
  type ClusterNode,
  call,
  closeAgent,
  createTenant,
  keyBody,
  PERMISSION,
  type Reply,
  startCluster,
  type Tenant,
  waitConnected,
} from "./cluster.ts";
import { KEY_PREFIX, malformedKey } from "./fixture.ts";
import { fmt, percentile, table } from "./stats.ts";

function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} wants a positive number`);
  return value;
}

const SECONDS = numberArg("seconds", 30);
/** Concurrent workers, each with one request in flight at a time. */
const WORKERS = numberArg("workers", 8);
/** A verification sent this long after a revoke's 200 must be refused, on either node. */
const BOUND_MS = numberArg("bound-ms", 100);
/** Long, so only the bus can explain a revocation being seen on the other node. */
const CACHE_TTL_MS = numberArg("cache-ttl-ms", 600_000);
const SEED_KEYS = 100;
/** Share of the seeded and created keys that carry a tight rate limit (so RATE_LIMITED answers occur). */
const LIMITED_SHARE = 0.2;
const LIMIT = { limit: 5, window: "1s" };

const log = (line: string) => process.stderr.write(`${line}\n`);

interface Key {
  id: string;
  key: string;
  tenant: number;
  limited: boolean;
  /** Made by a rotation (POST /v1/keys/:id/rotate), not by POST /v1/keys. */
  fromRotation?: boolean;
  /** Made and revoked by a revocation race (raceOne). */
  raced?: boolean;
  /** The revocation or rotation (grace 0) that ends it, once sent. */
  end?: { kind: "revoke" | "rotate"; sentAt: number; ackAt?: number };
}

type Op = "verify" | "create" | "revoke" | "rotate";

interface Sent {
  op: Op;
  node: string;
  sentAt: number;
  doneAt: number;
  status: number;
  /** The verify code, for verifications answered 200. */
  code?: string;
  /** The key a verification asked about (undefined: an unknown or malformed key). */
  key?: Key;
  expected?: string;
  error?: string;
}

const keys: Key[] = [];
/** Keys no revocation or rotation has been sent for. */
const active: Key[] = [];
const sent: Sent[] = [];
const unexpected: { what: string; detail: string }[] = [];
let tenants: Tenant[] = [];
let nodes: ClusterNode[] = [];

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const randomNode = () => pick(nodes);

function takeActive(): Key | undefined {
  if (active.length === 0) return undefined;
  const i = Math.floor(Math.random() * active.length);
  const key = active[i] as Key;
  active[i] = active[active.length - 1] as Key;
  active.pop();
  return key;
}

function note(what: string, s: Sent, reply: Reply | null) {
  unexpected.push({
    what,
    detail: `${s.op} on ${s.node}: ${s.error ?? `${s.status} ${JSON.stringify(reply?.body).slice(0, 300)}`}`,
  });
}

/** One request, timed; a connection error is recorded as status 0. */
async function send(
  op: Op,
  node: ClusterNode,
  path: string,
  method: string,
  opts: Parameters<typeof call>[3],
) {
  const record: Sent = { op, node: node.name, sentAt: performance.now(), doneAt: 0, status: 0 };
  sent.push(record);
  let reply: Reply | null = null;
  try {
    reply = await call(node, method, path, opts);
    record.status = reply.status;
  } catch (err) {
    record.error = (err as Error).message;
  }
  record.doneAt = performance.now();
  return { record, reply };
}

async function createOne(tenant: number, node = randomNode(), inUse = true): Promise<Key | undefined> {
  const limited = Math.random() < LIMITED_SHARE;
  const t = tenants[tenant] as Tenant;
  const { record, reply } = await send("create", node, "/v1/keys", "POST", {
    key: t.managementKey,
    json: keyBody(limited ? { rate_limits: [LIMIT] } : {}),
  });
  if (record.status !== 201 || !reply) {
    note("create not 201", record, reply);
    return undefined;
  }
  const key: Key = { id: reply.body.data.id, key: reply.body.data.key, tenant, limited };
  keys.push(key);
  if (inUse) active.push(key);
  return key;
}

/** A verification of `given` on `node`, or of a key picked at random on either node. */
async function verifyOne(given?: Key, node = randomNode()): Promise<void> {
  const r = given ? 1 : Math.random();
  let key: Key | undefined = given;
  let token: string;
  let expected: string | undefined;
  if (given) {
    token = given.key;
  } else if (r < 0.04) {
    token = generateToken(KEY_PREFIX, "live", "sk"); // well formed, in no store
    expected = "NOT_FOUND";
  } else if (r < 0.05) {
    token = malformedKey(generateToken(KEY_PREFIX, "live", "sk"));
    expected = "MALFORMED";
  } else {
    // Mostly keys still in use; some that may have been revoked or rotated away.
    key = r < 0.85 && active.length > 0 ? pick(active) : pick(keys);
    token = key.key;
  }
  const { record, reply } = await send("verify", node, "/v1/verify", "POST", {
    key: (tenants[0] as Tenant).verifyKey,
    json: { key: token, permissions: [PERMISSION] },
  });
  if (record.status !== 200 || !reply) return note("verify not 200", record, reply);
  record.code = reply.body?.data?.code;
  if (key) record.key = key;
  if (expected !== undefined) {
    record.expected = expected;
    if (record.code !== expected) note(`verify of an unknown key not ${expected}`, record, reply);
  }
}

async function revokeOne(): Promise<void> {
  const key = takeActive();
  if (!key) return;
  await revoke(key, randomNode());
}

async function revoke(key: Key, node: ClusterNode): Promise<void> {
  const end: NonNullable<Key["end"]> = { kind: "revoke", sentAt: performance.now() };
  key.end = end;
  const { record, reply } = await send("revoke", node, `/v1/keys/${key.id}`, "DELETE", {
    key: (tenants[key.tenant] as Tenant).managementKey,
  });
  end.sentAt = record.sentAt;
  if (record.status !== 200) return note("revoke not 200", record, reply);
  end.ackAt = record.doneAt;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The revocation race: a fresh key, not yet cached anywhere, is revoked on one node while the other
 * node is asked about it a few times, staggered over the first 2 ms, so some of those lookups are in
 * flight (loading the key from the store) when the revocation commits and its change arrives. Once the
 * bound has passed, the key is verified on both nodes: a node that cached what it loaded before the
 * revocation, after the change had been applied, would still answer VALID.
 */
async function raceOne(): Promise<void> {
  const [here, there] = Math.random() < 0.5 ? [nodes[0], nodes[1]] : [nodes[1], nodes[0]];
  const key = await createOne(Math.floor(Math.random() * tenants.length), here, false);
  if (!key) return;
  key.raced = true;
  const cold = [0, 0.5, 1, 1.5, 2].map((ms) => sleep(ms).then(() => verifyOne(key, there)));
  await revoke(key, here as ClusterNode);
  await Promise.all(cold);
  await sleep(BOUND_MS + 20);
  await verifyOne(key, there);
  await verifyOne(key, here);
}

async function rotateOne(): Promise<void> {
  const key = takeActive();
  if (!key) return;
  const node = randomNode();
  const end: NonNullable<Key["end"]> = { kind: "rotate", sentAt: performance.now() };
  key.end = end;
  const { record, reply } = await send("rotate", node, `/v1/keys/${key.id}/rotate`, "POST", {
    key: (tenants[key.tenant] as Tenant).managementKey,
    json: { grace_seconds: 0 },
  });
  end.sentAt = record.sentAt;
  if (record.status !== 200 || !reply) return note("rotate not 200", record, reply);
  end.ackAt = record.doneAt;
  // The new key carries the old one's settings, rate limits included.
  const fresh: Key = {
    id: reply.body.data.id,
    key: reply.body.data.key,
    tenant: key.tenant,
    limited: key.limited,
    fromRotation: true,
  };
  keys.push(fresh);
  active.push(fresh);
}

async function worker(until: number): Promise<void> {
  while (performance.now() < until) {
    const r = Math.random();
    if (r < 0.9) await verifyOne();
    else if (r < 0.95) await createOne(Math.floor(Math.random() * tenants.length));
    else if (r < 0.97) await revokeOne();
    else if (r < 0.99) await raceOne();
    else await rotateOne();
  }
}

// ---------------------------------------------------------------------------------------------------

/** What a verification of `key` sent at `s.sentAt` (answered at `s.doneAt`) may answer. */
function judge(s: Sent): "ok" | "unexpected" | "late" {
  const key = s.key as Key;
  const allowed = key.limited ? ["VALID", "RATE_LIMITED"] : ["VALID"];
  const refused = key.end?.kind === "rotate" ? "EXPIRED" : "REVOKED";
  const code = s.code as string;
  const end = key.end;
  // Answered before the revocation was sent: it must have been allowed.
  if (end === undefined || s.doneAt < end.sentAt) return allowed.includes(code) ? "ok" : "unexpected";
  if (code !== refused && !allowed.includes(code)) return "unexpected";
  // Sent after the bound: it must have been refused.
  if (end.ackAt !== undefined && s.sentAt > end.ackAt + BOUND_MS && code !== refused) return "late";
  return "ok";
}

interface Check {
  name: string;
  result: string;
  ok: boolean;
}

async function checkStore(cluster: ClusterEnv, baseline: Map<string, number>): Promise<Check[]> {
  const checks: Check[] = [];
  const companyIds = tenants.map((t) => t.companyId);
  const rows = await cluster.query<{
    id: string;
    company_id: string;
    status: string;
    replaced_by: string | null;
  }>("SELECT id, company_id, status, replaced_by FROM api_keys WHERE company_id = ANY($1)", [companyIds]);
  const stored = new Map(rows.map((r) => [r.id, r]));
  const missing = keys.filter((k) => stored.get(k.id)?.company_id !== tenants[k.tenant]?.companyId);
  checks.push({
    name: "every acknowledged key is in the store",
    result: `${fmt.int(keys.length - missing.length)} of ${fmt.int(keys.length)}`,
    ok: missing.length === 0,
  });
  const revoked = keys.filter((k) => k.end?.kind === "revoke" && k.end.ackAt !== undefined);
  const notRevoked = revoked.filter((k) => stored.get(k.id)?.status !== "revoked");
  checks.push({
    name: "every acknowledged revocation is revoked in the store",
    result: `${fmt.int(revoked.length - notRevoked.length)} of ${fmt.int(revoked.length)}`,
    ok: notRevoked.length === 0,
  });
  const rotated = keys.filter((k) => k.end?.kind === "rotate" && k.end.ackAt !== undefined);
  const notRotated = rotated.filter((k) => {
    const next = stored.get(k.id)?.replaced_by;
    return next == null || !stored.has(next);
  });
  checks.push({
    name: "every acknowledged rotation is replaced in the store",
    result: `${fmt.int(rotated.length - notRotated.length)} of ${fmt.int(rotated.length)}`,
    ok: notRotated.length === 0,
  });

  // Audit: exactly one event per acknowledged change, on top of what company set-up wrote.
  const events = await cluster.query<{ action: string; target_id: string | null }>(
    "SELECT action, target_id FROM audit_events WHERE company_id = ANY($1) AND action IN ('key.created', 'key.revoked', 'key.rotated')",
    [companyIds],
  );
  const byAction = (action: string) => events.filter((e) => e.action === action).map((e) => e.target_id);
  const created = byAction("key.created");
  // Rotation makes its new key without a key.created event (the key.rotated event names it).
  const made = keys.filter((k) => !k.fromRotation);
  const createdSet = new Set(created);
  const expectCreated = (baseline.get("key.created") ?? 0) + made.length;
  checks.push({
    name: "audit: one key.created per created key",
    result: `${fmt.int(created.length - (baseline.get("key.created") ?? 0))} events for ${fmt.int(made.length)} keys`,
    ok: created.length === expectCreated && made.every((k) => createdSet.has(k.id)),
  });
  const revokedEvents = byAction("key.revoked");
  checks.push({
    name: "audit: one key.revoked per revocation",
    result: `${fmt.int(revokedEvents.length)} events for ${fmt.int(revoked.length)} revocations`,
    ok:
      revokedEvents.length === revoked.length &&
      new Set(revokedEvents).size === revoked.length &&
      revoked.every((k) => revokedEvents.includes(k.id)),
  });
  const rotatedEvents = byAction("key.rotated");
  checks.push({
    name: "audit: one key.rotated per rotation",
    result: `${fmt.int(rotatedEvents.length)} events for ${fmt.int(rotated.length)} rotations`,
    ok: rotatedEvents.length === rotated.length && rotated.every((k) => rotatedEvents.includes(k.id)),
  });
  const verified: string[] = [];
  let chainsOk = true;
  for (const [i, t] of tenants.entries()) {
    const node = nodes[(i + 1) % nodes.length] as ClusterNode;
    const reply = await call(node, "GET", "/v1/audit/verify", { key: t.managementKey });
    const ok = reply.status === 200 && reply.body.data.valid === true;
    chainsOk &&= ok;
    verified.push(
      ok
        ? `${fmt.int(reply.body.data.events_checked)} events ok`
        : `${reply.status} ${JSON.stringify(reply.body)}`,
    );
  }
  checks.push({
    name: "audit chain of each company verifies (GET /v1/audit/verify)",
    result: verified.join("; "),
    ok: chainsOk,
  });
  return checks;
}

async function checkUsage(cluster: ClusterEnv): Promise<Check> {
  const expected = new Map<string, { requests: number; denied: number }>();
  for (const k of keys) expected.set(k.id, { requests: 0, denied: 0 });
  for (const s of sent) {
    if (s.op !== "verify" || s.key === undefined || s.code === undefined) continue;
    const counts = expected.get(s.key.id) as { requests: number; denied: number };
    if (s.code === "VALID") counts.requests++;
    else counts.denied++;
  }
  const rows = await cluster.query<{ key_id: string; requests: string; denied: string }>(
    "SELECT key_id, sum(requests) AS requests, sum(denied) AS denied FROM key_usage_daily WHERE key_id = ANY($1) GROUP BY key_id",
    [keys.map((k) => k.id)],
  );
  const stored = new Map(
    rows.map((r) => [r.key_id, { requests: Number(r.requests), denied: Number(r.denied) }]),
  );
  let wrong = 0;
  let sample = "";
  let requests = 0;
  let denied = 0;
  let storedRequests = 0;
  let storedDenied = 0;
  for (const [id, want] of expected) {
    const got = stored.get(id) ?? { requests: 0, denied: 0 };
    requests += want.requests;
    denied += want.denied;
    storedRequests += got.requests;
    storedDenied += got.denied;
    if (got.requests !== want.requests || got.denied !== want.denied) {
      wrong++;
      sample ||= ` (e.g. ${id}: stored ${got.requests}/${got.denied}, answered ${want.requests}/${want.denied})`;
    }
  }
  return {
    name: "usage counts (key_usage_daily) = answers, per key",
    result:
      `${fmt.int(storedRequests)} requests / ${fmt.int(storedDenied)} denied stored, ` +
      `${fmt.int(requests)} / ${fmt.int(denied)} answered; ${fmt.int(wrong)} keys differ${sample}`,
    ok: wrong === 0,
  };
}

// ---------------------------------------------------------------------------------------------------

let cluster: ClusterEnv | null = null;
process.on("SIGINT", () => {
  void cluster?.close().finally(() => process.exit(130));
});

const checks: Check[] = [];
const lateAnswers: string[] = [];
const opRows: string[][] = [];
let throughput = "";
try {
  log(`# starting two nodes (cache TTL ${fmt.int(CACHE_TTL_MS)} ms)`);
  cluster = await startCluster(2, {
    LATCHKEY_CACHE_TTL_MS: String(CACHE_TTL_MS),
    LATCHKEY_USAGE_FLUSH_MS: "1000",
  });
  nodes = cluster.nodes;
  await waitConnected(nodes);
  tenants = [
    await createTenant(nodes[0] as ClusterNode, "Load test A"),
    await createTenant(nodes[1] as ClusterNode, "Load test B"),
  ];
  const baselineRows = await cluster.query<{ action: string; n: string }>(
    "SELECT action, count(*) AS n FROM audit_events WHERE company_id = ANY($1) GROUP BY action",
    [tenants.map((t) => t.companyId)],
  );
  const baseline = new Map(baselineRows.map((r) => [r.action, Number(r.n)]));
  log(`# seeding ${SEED_KEYS} keys`);
  for (let i = 0; i < SEED_KEYS; i++) await createOne(i % tenants.length, nodes[i % nodes.length]);

  log(`# ${WORKERS} workers for ${SECONDS} s: ~90 % verify, 5 % create, 2 % revoke, 2 % race, 1 % rotate`);
  const startedAt = performance.now();
  const seeded = sent.length;
  const until = startedAt + SECONDS * 1000;
  const ticker = setInterval(() => log(`  ${fmt.int(sent.length - seeded)} requests`), 5000);
  await Promise.all(Array.from({ length: WORKERS }, () => worker(until)));
  clearInterval(ticker);
  const elapsed = (performance.now() - startedAt) / 1000;
  throughput = `${fmt.int(sent.length - seeded)} requests in ${fmt.one(elapsed)} s (${fmt.int((sent.length - seeded) / elapsed)}/s) from ${WORKERS} workers over both nodes (${fmt.int(keys.filter((k) => k.raced).length)} revocation races among them)`;
  log(`# ${throughput}`);
  // A last look at every revoked or rotated key on both nodes, once the bound has passed: an answer
  // that is still wrong here is cached, not late.
  await sleep(BOUND_MS + 20);
  const sweepFrom = sent.length;
  const ended = keys.filter((k) => k.end?.ackAt !== undefined);
  log(`# final sweep: ${ended.length} revoked or rotated keys on both nodes`);
  for (let i = 0; i < ended.length; i += WORKERS) {
    await Promise.all(ended.slice(i, i + WORKERS).flatMap((k) => nodes.map((n) => verifyOne(k, n))));
  }
  const sweep = sent.slice(sweepFrom);

  // 1. Responses.
  let late = 0;
  let lateWorst = 0;
  let afterAckAllowed = 0;
  let checkedAfterBound = 0;
  for (const s of sent) {
    if (s.op === "verify" && s.key !== undefined && s.code !== undefined) {
      const verdict = judge(s);
      const end = s.key.end;
      if (end?.ackAt !== undefined && s.sentAt > end.ackAt + BOUND_MS) checkedAfterBound++;
      if (
        end?.ackAt !== undefined &&
        s.sentAt > end.ackAt &&
        (s.code === "VALID" || s.code === "RATE_LIMITED")
      ) {
        afterAckAllowed++;
        lateWorst = Math.max(lateWorst, s.sentAt - end.ackAt);
      }
      if (verdict === "unexpected") note(`verify answered ${s.code}`, s, null);
      if (verdict === "late") {
        late++;
        const inSweep = sweep.includes(s);
        const stillAllowed = sweep.some(
          (x) => x.key === s.key && x.node === s.node && (x.code === "VALID" || x.code === "RATE_LIMITED"),
        );
        lateAnswers.push(
          `${s.key.id} answered ${s.code} on ${s.node}, sent ${fmt.one(s.sentAt - (end?.ackAt ?? 0))} ms after ` +
            `the ${end?.kind} was acknowledged${inSweep ? " (in the final sweep)" : ""}` +
            `${s.key.raced ? " (a revocation race)" : ""}; ` +
            `${stillAllowed ? "still allowed in the final sweep: a stale cache entry" : "refused in the final sweep"}`,
        );
      }
    }
  }
  const failures = sent.filter((s) => s.status === 0 || s.status >= 500).length;
  checks.push({
    name: "no connection error and no 5xx",
    result: `${fmt.int(failures)} of ${fmt.int(sent.length)}`,
    ok: failures === 0,
  });
  checks.push({
    name: "every status and verify code expected for its request",
    result: `${fmt.int(unexpected.length)} unexpected`,
    ok: unexpected.length === 0,
  });
  checks.push({
    name: `revocations honoured: verifications sent > ${BOUND_MS} ms after the 200 refused`,
    result:
      `${fmt.int(late)} of ${fmt.int(checkedAfterBound)} allowed; ` +
      `${fmt.int(afterAckAllowed)} allowed after the 200 at all, the latest sent ${fmt.one(lateWorst)} ms after it`,
    ok: late === 0,
  });

  // 2. The store and the audit trail, while the nodes still run.
  checks.push(...(await checkStore(cluster, baseline)));

  // 3. Usage, once both nodes have stopped in order and flushed.
  log("# stopping node A, then node B");
  await cluster.stopNodes();
  checks.push(await checkUsage(cluster));

  for (const op of ["verify", "create", "revoke", "rotate"] as const) {
    const of = sent.filter((s) => s.op === op);
    const times = of.map((s) => s.doneAt - s.sentAt);
    const codes = new Map<string, number>();
    for (const s of of) {
      const label = s.code ?? (s.status === 0 ? "error" : String(s.status));
      codes.set(label, (codes.get(label) ?? 0) + 1);
    }
    opRows.push([
      op,
      fmt.int(of.length),
      [...codes].map(([c, n]) => `${c} ${fmt.int(n)}`).join(", "),
      fmt.one(percentile(times, 50)),
      fmt.one(percentile(times, 99)),
    ]);
  }
} catch (err) {
  log(`load test failed to run: ${(err as Error).stack ?? err}`);
  checks.push({ name: "the load test ran to the end", result: (err as Error).message, ok: false });
} finally {
  closeAgent();
  await cluster?.close();
}

const out: string[] = [];
out.push(
  `Latchkey load test: two nodes on PostgreSQL + Redis, ${SECONDS} s, ${WORKERS} workers, ` +
    `cache TTL ${fmt.int(CACHE_TTL_MS)} ms, propagation bound ${BOUND_MS} ms. ${throughput}.`,
  "",
  table(["request", "sent", "answers", "p50 ms", "p99 ms"], opRows, [1, 3, 4]),
  "",
  table(
    ["check", "result", "status"],
    checks.map((c) => [c.name, c.result, c.ok ? "ok" : "**FAIL**"]),
  ),
);
if (lateAnswers.length > 0) {
  out.push("", "Revocations not honoured (first 10):");
  for (const l of lateAnswers.slice(0, 10)) out.push(`- ${l}`);
}
if (unexpected.length > 0) {
  out.push("", "Unexpected answers (first 10):");
  for (const u of unexpected.slice(0, 10)) out.push(`- ${u.what}: ${u.detail}`);
}
process.stdout.write(`${out.join("\n")}\n`);
process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
