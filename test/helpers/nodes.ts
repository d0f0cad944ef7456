import { createServer } from "node:net";
import { loadConfig } from "../../src/config.ts";
import { startServer } from "../../src/server.ts";
import { ADMIN_TOKEN } from "./harness.ts";

/** The shared Redis; suites that stop, kill or freeze one start a DisposableRedis instead. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const SECRET = "cluster-test-secret-0123456789abcdef0123";

/** A port nothing listens on right now, for a server or database a test starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (typeof address !== "object" || !address) throw new Error("no port");
  return address.port;
}

/**
 * A full Latchkey node in cluster mode, as `latchkey serve` starts it, on a spare port: one PostgreSQL
 * (schema) and one Redis prefix shared by the nodes a test starts. Usage is not flushed during a test;
 * `env` adds or overrides settings.
 */
export function startNode(opts: {
  databaseUrl: string;
  prefix: string;
  redisUrl?: string;
  env?: Record<string, string>;
}) {
  return startServer(
    loadConfig({
      DATABASE_URL: opts.databaseUrl,
      LATCHKEY_SECRET: SECRET,
      LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN,
      REDIS_URL: opts.redisUrl ?? TEST_REDIS_URL,
      LATCHKEY_REDIS_PREFIX: opts.prefix,
      HOST: "127.0.0.1",
      PORT: "0",
      LATCHKEY_USAGE_FLUSH_MS: "3600000",
      ...opts.env,
    }),
    { logger: false },
  );
}
