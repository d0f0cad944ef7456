import type { FastifyReply, FastifyRequest } from "fastify";
import { SESSION_COOKIE } from "./auth.ts";

/** The session cookie: httpOnly, SameSite=Strict, Secure when the request came over HTTPS. */
export function setSessionCookie(
  reply: FastifyReply,
  request: FastifyRequest,
  session: { token: string; expires_at: string },
) {
  reply.setCookie(SESSION_COOKIE, session.token, {
    httpOnly: true,
    sameSite: "strict",
    secure: request.isHttps,
    path: "/",
    expires: new Date(session.expires_at),
  });
}

export function clearSessionCookie(reply: FastifyReply) {
  reply.clearCookie(SESSION_COOKIE, { path: "/" });
}
