import type { ServerResponse } from "node:http";
import { POLICY } from "../../core/access/policy.ts";
import type { StreamEvent } from "../../services/change-stream.ts";
import { verifierScope } from "../../services/verification.ts";
import { actorOf, requireCaller } from "../auth.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** How often an idle stream says it is alive, so a client notices a stream that died silently. */
export const PING_MS = 2000;

function write(res: ServerResponse, event: string, id: string | null, data: unknown): void {
  res.write(`event: ${event}\n${id === null ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
}

function send(res: ServerResponse, event: StreamEvent): void {
  if (event.type === "change") write(res, "change", event.id, event.change);
  else if (event.type === "degraded") write(res, "degraded", event.id, { ttl_ms: event.ttl_ms });
  else write(res, "reset", event.id, {});
}

/**
 * Server-sent events for a verify key that caches answers itself (the SDK): every change to a key or
 * API user it may see, the moment this node hears of it, so a revocation reaches its cache at once.
 * Resumable with Last-Event-ID; a `reset` means "drop everything cached", `degraded` "this node cannot
 * hear the others: cache briefly".
 */
export default function streamVerifyChanges(app: App, { services }: RouteDeps) {
  const open = new Set<ServerResponse>();
  // A stream never ends by itself: a stopping server ends them, or it would wait on them for ever.
  app.addHook("preClose", (done) => {
    for (const res of open) res.end();
    done();
  });
  app.get(
    "/v1/verify/changes",
    {
      schema: {
        tags: ["verification"],
        summary: "Changes to the keys this verify key may verify, as server-sent events",
        description:
          "text/event-stream. `ready` first (its id is where the stream stands), then `change` " +
          "({kind: key, key_id} | {kind: key_created, fingerprint} | {kind: credential, credential_id}): drop " +
          "what is cached for it; `reset`: drop everything; `degraded` ({ttl_ms}): this node cannot hear the " +
          "other nodes, keep answers at most ttl_ms until a reset; `ping` every 2 s. Reconnect with " +
          "Last-Event-ID to get what was missed, or a reset when it cannot be caught up.",
      },
      logLevel: "warn",
      preValidation: requireCaller(services, POLICY["keys.changes"]),
    },
    async (request, reply) => {
      const scope = verifierScope(actorOf(request));
      const last = request.headers["last-event-id"];
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        // Nothing follows a stream on its connection (a client reconnects afresh), and a stream that
        // ends while its server drains must take its connection with it, not leave it idle.
        connection: "close",
        // A buffering proxy (nginx) would hold the events back.
        "x-accel-buffering": "no",
        "x-request-id": request.id,
      });
      res.write("retry: 1000\n\n");
      write(res, "ready", services.changeStream.latestId, {});
      const stop = services.changeStream.subscribe(
        scope,
        typeof last === "string" ? last : undefined,
        (event) => send(res, event),
      );
      const ping = setInterval(() => {
        // A draining server has stopped listening: its streams end at the next ping, and the client
        // reconnects (through the load balancer) to a node that is not stopping.
        if (!app.server.listening) res.end();
        else write(res, "ping", null, {});
      }, PING_MS);
      open.add(res);
      const end = () => {
        clearInterval(ping);
        stop();
        open.delete(res);
      };
      res.on("close", end);
      request.raw.on("close", end);
    },
  );
}
