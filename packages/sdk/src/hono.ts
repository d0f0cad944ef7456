import type { Context, MiddlewareHandler } from "hono";
import { type GuardOptions, LatchkeyGuard, type LatchkeyIdentity } from "./guard.ts";

/**
 * Hono: a middleware for `app.use`, the identity in `c.get("latchkey")`. Hono runs on many runtimes and
 * has no trust-proxy setting of its own, so the client's address comes from `clientIp`: by default the
 * socket's peer under @hono/node-server (never a header a client can write). Behind a proxy, pass a
 * function that reads your proxy's header, e.g. with `getConnInfo` from your adapter.
 */

export type LatchkeyVariables = { latchkey: LatchkeyIdentity };
export type { LatchkeyIdentity } from "./guard.ts";

export interface HonoOptions extends GuardOptions {
  clientIp?: (c: Context) => string | undefined;
}

interface NodeBindings {
  incoming?: { url?: string; socket?: { remoteAddress?: string } };
}

const nodePeer = (c: Context) => (c.env as NodeBindings | undefined)?.incoming?.socket?.remoteAddress;

/** The path as the client sent it (under node, before the adapter resolved any dot segment). */
function rawUrl(c: Context): string {
  const raw = (c.env as NodeBindings | undefined)?.incoming?.url;
  if (raw?.startsWith("/")) return raw;
  const url = c.req.url;
  const at = url.indexOf("/", url.indexOf("//") + 2);
  return at < 0 ? "/" : url.slice(at);
}

export async function latchkey(
  options: HonoOptions,
): Promise<MiddlewareHandler<{ Variables: LatchkeyVariables }>> {
  const guard = await LatchkeyGuard.create(options);
  return latchkeyMiddleware(guard, options.clientIp);
}

export function latchkeyMiddleware(
  guard: LatchkeyGuard,
  clientIp: (c: Context) => string | undefined = nodePeer,
): MiddlewareHandler<{ Variables: LatchkeyVariables }> {
  return async (c, next) => {
    const answer = await guard.check({
      method: c.req.method,
      url: rawUrl(c),
      header: (name) => c.req.header(name),
      ip: clientIp(c),
    });
    if (!answer.ok) {
      return new Response(JSON.stringify(answer.body), { status: answer.status, headers: answer.headers });
    }
    c.set("latchkey", answer.identity);
    // Set before the handler runs, so they reach whatever Response it makes.
    for (const [name, value] of Object.entries(answer.headers)) c.header(name, value);
    await next();
  };
}
