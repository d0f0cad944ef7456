import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type GuardOptions, LatchkeyGuard, type LatchkeyIdentity } from "./guard.ts";

/**
 * Fastify: an `onRequest` hook, so a refused request is answered before its body is read. The client's
 * address is `request.ip`, which follows the app's own `trustProxy` setting.
 */

declare module "fastify" {
  interface FastifyRequest {
    /** Set by Latchkey's middleware on every request it lets through. */
    latchkey: LatchkeyIdentity | null;
  }
}

export type { LatchkeyIdentity } from "./guard.ts";

/** The hook on its own, for `app.addHook("onRequest", ...)` on the routes that need it. */
export function latchkeyHook(guard: LatchkeyGuard) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const answer = await guard.check({
      method: request.method,
      url: request.raw.url ?? request.url,
      header: (name) => {
        const value = request.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
      ip: request.ip,
    });
    reply.headers(answer.headers);
    if (answer.ok) {
      request.latchkey = answer.identity;
      return;
    }
    await reply.code(answer.status).send(answer.body);
  };
}

/**
 * A plugin guarding every route of the app it is registered on (it is not encapsulated, as
 * fastify-plugin would mark it): `await app.register(latchkey, { verifier })`.
 */
export async function latchkey(app: FastifyInstance, options: GuardOptions): Promise<void> {
  const guard = await LatchkeyGuard.create(options);
  app.addHook("onClose", async () => guard.close());
  app.decorateRequest("latchkey", null);
  app.addHook("onRequest", latchkeyHook(guard));
}
(latchkey as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;
