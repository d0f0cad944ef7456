import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer, Server as NetServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Cluster } from "./cluster/cluster.ts";
import type { Config } from "./config.ts";
import { buildApp } from "./http/app.ts";
import type { App } from "./http/types.ts";
import { createRuntime, runtimeOptions } from "./runtime.ts";
import type { Services } from "./services/services.ts";
import type { Store } from "./store/store.ts";

export interface Running {
  app: App;
  services: Services;
  store: Store;
  /** Present in cluster mode (REDIS_URL). */
  cluster: Cluster | null;
  url: string;
  stop(): Promise<void>;
}

/**
 * Fails at once when the port is taken, before the store is opened (initialising a fresh embedded data
 * dir takes seconds). The port is let go again at once: if something takes it meanwhile, listen() fails
 * with the same error later.
 */
async function checkPortFree(port: number, host: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  probe.listen({ port, host, exclusive: true });
  await Promise.race([once(probe, "listening"), once(probe, "error").then(([err]) => Promise.reject(err))]);
  await new Promise((resolve) => probe.close(resolve));
}

/**
 * How long a stopping server keeps serving requests on connections that are already open. A client
 * may send on an idle keep-alive connection at the very moment it is closed, and gets a reset; for
 * this long after SIGTERM such requests are answered instead, each with `Connection: close`, so every
 * client moves off this node on its own. Idle connections are closed after it.
 */
const DRAIN_MS = 1000;

/**
 * Graceful stop of the HTTP server: stop accepting, answer what arrives on open connections for
 * DRAIN_MS (with `Connection: close`), then close idle connections and wait, up to `limitMs`, for the
 * busy ones to finish their answer.
 */
function drainer(server: Server, limitMs: number) {
  const open = new Set<Socket>();
  let draining = false;
  server.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
  // Before the app's own handler (and the verify fast path), so every answer carries the header.
  server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => {
    if (draining) res.setHeader("connection", "close");
  });
  return async () => {
    draining = true;
    // Requests in flight now: their answers, not yet begun, say close too. (Node keeps a connection's
    // current answer on its socket; looking there costs the hot path nothing.)
    for (const socket of open) {
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (res && !res.headersSent) res.setHeader("connection", "close");
    }
    // net.Server's close only stops accepting; http.Server's would also close idle keep-alive
    // connections at once, which is the reset this avoids.
    NetServer.prototype.close.call(server);
    const until = Date.now() + DRAIN_MS;
    while (open.size > 0 && Date.now() < until) await sleep(25);
    server.closeIdleConnections();
    const limit = Date.now() + limitMs;
    while (open.size > 0 && Date.now() < limit) await sleep(25);
  };
}

/** Builds the runtime (store migrated, services, cluster), then the app, and listens. */
export async function startServer(
  config: Config,
  opts: { logger?: boolean | Record<string, unknown> } = {},
): Promise<Running> {
  // The cluster and background work log through the app's logger (redaction included); what they
  // say before it exists (Redis unreachable at start-up) is kept and written once it does.
  let app: App | null = null;
  const early: ((app: App) => void)[] = [];
  const emit = (line: (app: App) => void) => (app ? line(app) : early.push(line));
  const log = {
    info: (msg: string) => emit((a) => a.log.info(msg)),
    warn: (msg: string) => emit((a) => a.log.warn(msg)),
    error: (obj: unknown, msg: string) => emit((a) => a.log.error(obj, msg)),
  };
  await checkPortFree(config.port, config.host);
  const runtime = await createRuntime({ ...runtimeOptions(config, "serve"), log });
  const { services, store, cluster } = runtime;
  try {
    // A local CLI reaches the running embedded server's admin routes with this token from the lock file.
    const controlToken = store.lock ? randomBytes(32).toString("base64url") : undefined;
    const built = await buildApp({
      services,
      trustedProxies: config.trustedProxies,
      platformTokens: config.adminToken ? [config.adminToken] : [],
      ...(controlToken ? { controlToken } : {}),
      bodyLimit: config.bodyLimit,
      requestTimeout: config.requestTimeoutMs,
      ready: (ms) => store.ping(ms),
      logger: opts.logger ?? { level: config.logLevel },
      health: () => {
        const node = cluster?.health();
        // A node that cannot hear the others still answers correctly (on a short cache TTL): degraded.
        return {
          status: node && node.redis !== "connected" ? "degraded" : "ok",
          store: store.kind,
          cluster: node ?? null,
        };
      },
    });
    app = built;
    for (const line of early.splice(0)) line(built);
    const drain = drainer(built.server, config.requestTimeoutMs);
    await built.listen({ port: config.port, host: config.host });
    const address = built.server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    store.lock?.update({ url, ...(controlToken ? { control_token: controlToken } : {}) });
    // Only a serving node delivers webhooks (CLI commands open the same runtime and must not); the
    // runtime's close stops it.
    services.webhookDeliverer.start();
    let stopped: Promise<void> | null = null;
    return {
      app: built,
      services,
      store,
      cluster,
      url,
      stop() {
        stopped ??= (async () => {
          await drain();
          await built.close();
          await runtime.close();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await runtime.close();
    throw err;
  }
}
