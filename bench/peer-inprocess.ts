// better-auth's in-process figures on one store, in a fresh process: key creation and verification.
// argv: <"pglite" | "postgres">. Sends one {type:"result"} message and exits.
import { randomBytes } from "node:crypto";
import { askedPermission, openPeer, type PeerStoreKind, peerVerify } from "./peer.ts";
import { CREATE_MS, IN_PROCESS_MS, medianOps } from "./stats.ts";

/** Keys cycled through, as in Latchkey's cached-hit case. */
const KEYS = 1000;

export interface PeerInProcessResult {
  type: "result";
  store: PeerStoreKind;
  createOps: number;
  /** A valid key, each call (a read and two writes with the rate limit off). */
  validOps: number;
  /** An unknown key of the right length: one read, no writes. */
  unknownOps: number;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

async function run(kind: PeerStoreKind): Promise<PeerInProcessResult> {
  const peer = await openPeer(kind);
  try {
    log(`  better-auth, ${kind}: key creation`);
    const created: string[] = [];
    const createOps = await medianOps(async () => {
      created.push(await peer.createKey());
    }, CREATE_MS);
    while (created.length < KEYS) created.push(await peer.createKey());
    const keys = created.slice(0, KEYS);
    const asked = askedPermission(peer.permissions);
    for (const key of keys.slice(0, 10)) {
      if (!(await peerVerify(peer.auth, key, asked)))
        throw new Error("a better-auth bench key did not verify");
    }
    // Its default keys are 64 letters; an unknown one of the same shape reaches the lookup.
    const unknown = randomBytes(48)
      .toString("base64url")
      .replace(/[^A-Za-z]/g, "a")
      .slice(0, 64);
    if (await peerVerify(peer.auth, unknown, asked)) throw new Error("an unknown key verified");

    log(`  better-auth, ${kind}: verify, valid key`);
    const validOps = await medianOps(
      (i) => peerVerify(peer.auth, keys[i % KEYS] as string, asked),
      IN_PROCESS_MS,
    );
    log(`  better-auth, ${kind}: verify, unknown key`);
    const unknownOps = await medianOps(() => peerVerify(peer.auth, unknown, asked), IN_PROCESS_MS);
    return { type: "result", store: kind, createOps, validOps, unknownOps };
  } finally {
    await peer.close();
  }
}

const result = await run(process.argv[2] as PeerStoreKind);
process.send?.(result, () => process.disconnect());
