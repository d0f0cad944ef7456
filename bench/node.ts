// One Latchkey node in a process of its own, started exactly as `latchkey serve` starts it:
// startServer(loadConfig(env)). argv[2] is the environment as JSON (DATABASE_URL, REDIS_URL, ...), so
// the parent decides every setting and nothing leaks in from its own environment.
// Tells the parent {type:"ready", url, node, redis} once listening; on "stop" it stops in order (the app
// closes, usage counts are flushed, then the bus and the store close) and reports {type:"stopped"}.
import { loadConfig } from "../src/config.ts";
import { startServer } from "../src/server.ts";

const env = JSON.parse(process.argv[2] ?? "{}") as Record<string, string>;
// Warnings and errors only (the cluster says so when Redis is away); the parent sends this process's
// stdout to its own stderr, so the log never mixes with the tables.
const running = await startServer(loadConfig(env), { logger: { level: env.LOG_LEVEL ?? "warn" } });
const health = running.cluster?.health();
process.send?.({ type: "ready", url: running.url, node: health?.node ?? null, redis: health?.redis ?? null });

process.on("message", async (message: { type: string }) => {
  if (message.type === "health") {
    process.send?.({ type: "health", ...(running.cluster?.health() ?? {}) });
  }
  if (message.type === "stop") {
    await running.stop();
    process.send?.({ type: "stopped" });
    process.disconnect();
  }
});
