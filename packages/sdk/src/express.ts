import type { NextFunction, Request, RequestHandler, Response } from "express";
import { type GuardOptions, LatchkeyGuard, type LatchkeyIdentity } from "./guard.ts";

/**
 * Express: a middleware for `app.use`. The route is the URL the client sent (`req.originalUrl`, so a
 * mount path does not hide part of it) and the client's address is `req.ip`, which follows the app's own
 * `trust proxy` setting.
 */

declare global {
  namespace Express {
    interface Request {
      /** Set by Latchkey's middleware on every request it lets through. */
      latchkey?: LatchkeyIdentity;
    }
  }
}

export type { LatchkeyIdentity } from "./guard.ts";

/** Resolves once the catalog is read; the middleware is then ready for `app.use`. */
export async function latchkey(options: GuardOptions): Promise<RequestHandler> {
  return latchkeyMiddleware(await LatchkeyGuard.create(options));
}

export function latchkeyMiddleware(guard: LatchkeyGuard): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    guard
      .check({
        method: req.method,
        url: req.originalUrl,
        header: (name) => req.get(name),
        ip: req.ip,
      })
      .then((answer) => {
        res.set(answer.headers);
        if (answer.ok) {
          req.latchkey = answer.identity;
          next();
        } else {
          res.status(answer.status).send(JSON.stringify(answer.body));
        }
      }, next);
  };
}
