// A server in its own process, so the load generator (in the parent) never shares its event loop.
// argv: "bare" <response body>  |  "latchkey" <store kind> [catalog file]  |  "better-auth" <"pglite" | "postgres">
// Tells the parent {type:"ready", port, rss, ...} once listening; answers "rss" and "stop" messages, and
// Latchkey "keys" (n more keys of the bench company, as {id, key}).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { BenchStoreKind } from "./fixture.ts";
import type { PeerStoreKind } from "./peer.ts";
import { gc, settle } from "./stats.ts";

type Message = { type: "rss" } | { type: "stop" } | { type: "keys"; n: number };

const send = (message: Record<string, unknown>) => process.send?.(message);

/** RSS once the process has gone quiet, so start-up garbage is not counted. */
async function idleRss(): Promise<number> {
  await settle(500);
  gc();
  await settle(100);
  return process.memoryUsage().rss;
}

function bare(body: string): Promise<{ port: number; startupRss?: number; stop(): Promise<void> }> {
  const payload = Buffer.from(body);
  const server: Server = createServer((req, res) => {
    // Read the request body as a real handler must before answering.
    req.resume();
    req.on("end", () => {
      res.writeHead(200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": payload.length,
      });
      res.end(payload);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        stop: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
  });
}

async function latchkey(kind: BenchStoreKind, catalogPath?: string) {
  // Imported here so the bare server's RSS carries none of Latchkey's modules.
  const { buildApp } = await import("../src/http/app.ts");
  const { benchRuntime, createKey, openBenchStore, seed } = await import("./fixture.ts");
  const bench = await openBenchStore(kind);
  const runtime = await benchRuntime(bench, undefined, catalogPath);
  const services = runtime.services;
  const app = await buildApp({ services, logger: false, health: () => ({ store: bench.store.kind }) });
  await app.listen({ port: 0, host: "127.0.0.1" });
  // Measured before any data is made: what an operator sees right after `latchkey serve`.
  const startupRss = await idleRss();
  const fx = await seed(services);
  return {
    port: (app.server.address() as AddressInfo).port,
    startupRss,
    key: fx.key,
    verifyKey: fx.verifyKey,
    permission: fx.permission,
    managementKey: fx.managementKey,
    async moreKeys(n: number) {
      const made: { id: string; key: string }[] = [];
      for (let i = 0; i < n; i++) {
        const k = await createKey(services, fx.companyId, fx.credentialId);
        made.push({ id: k.id, key: k.key });
      }
      return made;
    },
    async stop() {
      await app.close();
      await runtime.close();
      await bench.close();
    },
  };
}

/** Keys the better-auth server holds; the load spreads over all of them. */
const PEER_KEYS = 1000;

/**
 * better-auth's verification over HTTP. Its verifyApiKey endpoint is server-only (auth.handler does not
 * route it), so this is the small server a platform would write: node:http, the JSON body parsed, the
 * verdict as JSON, 200 when valid and 401 otherwise, so autocannon counts any wrong answer as failed.
 * No framework sits in front of it: that is in better-auth's favour, since Latchkey's figure carries Fastify.
 */
async function betterAuthServer(kind: PeerStoreKind) {
  const { askedPermission, openPeer, peerVerify } = await import("./peer.ts");
  const peer = await openPeer(kind);
  const keys: string[] = [];
  while (keys.length < PEER_KEYS) keys.push(await peer.createKey());
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      let status = 400;
      let answer: unknown = { valid: false };
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        const result = await peer.auth.api.verifyApiKey({
          body: { key: body.key, permissions: body.permissions },
        });
        status = result.valid ? 200 : 401;
        answer = result;
      } catch (err) {
        status = 500;
        answer = { error: String(err) };
      }
      const payload = Buffer.from(JSON.stringify(answer));
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": payload.length,
      });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  // Checked before any load: a bench key verifies.
  if (!(await peerVerify(peer.auth, keys[0] as string, askedPermission(peer.permissions)))) {
    throw new Error("a better-auth bench key did not verify");
  }
  return {
    port: (server.address() as AddressInfo).port,
    startupRss: undefined as number | undefined,
    keys,
    permissions: askedPermission(peer.permissions),
    async stop() {
      await new Promise<void>((done) => server.close(() => done()));
      await peer.close();
    },
  };
}

const [mode, arg] = process.argv.slice(2);
const running =
  mode === "bare"
    ? await bare(arg ?? "{}")
    : mode === "better-auth"
      ? await betterAuthServer(arg as PeerStoreKind)
      : await latchkey(arg as BenchStoreKind, process.argv[4]);
// Not `keys`: better-auth's server sends its keys by that name, and taking it out here sent the parent
// none, so its HTTP load went out with Latchkey's request and was refused (every answer "failed").
const { stop, moreKeys, ...info } = running as typeof running & {
  moreKeys?: (n: number) => Promise<{ id: string; key: string }[]>;
};
const rss = await idleRss();
send({ type: "ready", ...info, startupRss: info.startupRss ?? rss, rss });

process.on("message", async (message: Message) => {
  if (message.type === "rss") send({ type: "rss", rss: await idleRss() });
  if (message.type === "keys") send({ type: "keys", keys: (await moreKeys?.(message.n)) ?? [] });
  if (message.type === "stop") {
    await stop();
    process.disconnect();
  }
});
