import type { Actor } from "../core/actor.ts";

/**
 * The request around a change: who, from where, whether a second factor was shown for it, and the
 * code the caller sent for a step-up (checked by the service that does the change, never by its caller).
 */
export interface Ctx {
  actor: Actor;
  ip: string | null;
  userAgent: string | null;
  totpUsed: boolean;
  /** A TOTP or recovery code sent with the request (X-TOTP-Code or totp_code), for step-up. */
  secondFactor?: string | undefined;
}

/** A context for work the platform does itself (the CLI, company set-up). */
export function platformCtx(): Ctx {
  return { actor: { kind: "platform" }, ip: null, userAgent: null, totpUsed: false };
}
