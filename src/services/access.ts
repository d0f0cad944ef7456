import { type Action, needsEnrolment, needsStepUp, type StepUpInput } from "../core/access/policy.ts";
import type { Actor } from "../core/actor.ts";
import { LatchkeyError } from "../core/errors.ts";
import type { Ctx } from "./actor.ts";

/** Checks a person's code for a step-up (and consumes it); throws when it is missing, wrong or throttled. */
export type StepUpCheck = (
  actor: Actor & { kind: "user" },
  code: string | undefined,
  ctx: Ctx,
) => Promise<void>;

/**
 * The services' own gate for what a person must show before a change: enrolled 2FA for key and
 * credential writes, and a fresh code for the sensitive ones (POLICY says which). The service that
 * does the change calls it, so no way in (HTTP, CLI, an SDK) can skip it. Keys and Basic auth callers
 * are not asked: they are an integration's own factor.
 */
export class AccessGuard {
  constructor(private readonly check: StepUpCheck) {}

  /** The context to record the change with: `totpUsed` once a code was confirmed. */
  async confirm(ctx: Ctx, action: Action, input: unknown): Promise<Ctx> {
    const actor = ctx.actor;
    if (actor.kind !== "user") return ctx;
    if (needsEnrolment(action) && !actor.totpEnrolled) throw new LatchkeyError("TOTP_ENROLMENT_REQUIRED");
    if (!needsStepUp(action, input as StepUpInput)) return ctx;
    await this.check(actor, ctx.secondFactor, ctx);
    return { ...ctx, totpUsed: true };
  }
}
