import { randomBytes } from "node:crypto";
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
    await built.listen({ port: config.port, host: config.host });
    const address = built.server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    store.lock?.update({ url, ...(controlToken ? { control_token: controlToken } : {}) });
    let stopped: Promise<void> | null = null;
    return {
      app: built,
      services,
      store,
      cluster,
      url,
      stop() {
        stopped ??= (async () => {
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
