// A server in its own process, so the load generator (in the parent) never shares its event loop.
// argv: "bare" <response body>  |  "latchkey" <store kind>
// Tells the parent {type:"ready", port, rss, ...} once listening; answers "rss" and "stop" messages.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { BenchStoreKind } from "./fixture.ts";
import { gc, settle } from "./stats.ts";

type Message = { type: "rss" } | { type: "stop" };

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

async function latchkey(kind: BenchStoreKind) {
  // Imported here so the bare server's RSS carries none of Latchkey's modules.
  const { buildApp } = await import("../src/http/app.ts");
  const { makeServices, openBenchStore, seed } = await import("./fixture.ts");
  const bench = await openBenchStore(kind);
  const services = makeServices(bench);
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
    async stop() {
      await app.close();
      await services.close();
      await bench.close();
    },
  };
}

const [mode, arg] = process.argv.slice(2);
const running = mode === "bare" ? await bare(arg ?? "{}") : await latchkey(arg as BenchStoreKind);
const { stop, ...info } = running;
const rss = await idleRss();
send({ type: "ready", ...info, startupRss: info.startupRss ?? rss, rss });

process.on("message", async (message: Message) => {
  if (message.type === "rss") send({ type: "rss", rss: await idleRss() });
  if (message.type === "stop") {
    await stop();
    process.disconnect();
  }
});
