import type { Kysely } from "kysely";
import type { LimitSubject, RateLimiter } from "../../cluster/rate-limiter.ts";
import type { Actor } from "../../core/actor.ts";
import { LatchkeyError } from "../../core/errors.ts";
import type { CompiledLimit } from "../../core/rate-limit.ts";
import type { Database } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { SecondFactorService } from "./second-factor.ts";
import { userById } from "./users.ts";

export interface StepUpOptions {
  db: Kysely<Database>;
  clock: () => Date;
  /** The shared counters: this node's own, or Redis in cluster mode so every node draws on one count. */
  limiter: RateLimiter;
  secondFactor: SecondFactorService;
}

/**
 * A six-digit code falls to guessing unless the guesses are few: ten codes per person per 15 minutes
 * (a sliding window, counted as rate limits are), and a right code clears the count.
 */
const STEP_UP_LIMITS: readonly CompiledLimit[] = [{ limit: 10, window: "15m", windowMs: 15 * 60_000 }];

/**
 * Step-up: a fresh two-factor code sent with a sensitive action (creating, rotating or revoking a key,
 * an IP list, a Basic auth password). Each attempt takes its place in the person's count before the
 * code is looked at, in one atomic step of the limiter, so a burst of concurrent guesses gets no more
 * checks than the limit, on one node or across a cluster, and the rest (a right code among them) wait.
 */
export class StepUpService {
  constructor(private readonly o: StepUpOptions) {}

  /** Throws TOTP_ENROLMENT_REQUIRED, TOTP_REQUIRED, RATE_LIMITED or TOTP_INVALID unless the code is good. */
  async verify(actor: Actor & { kind: "user" }, code: string | undefined, ctx: Ctx): Promise<void> {
    if (!actor.totpEnrolled) throw new LatchkeyError("TOTP_ENROLMENT_REQUIRED");
    if (!code) throw new LatchkeyError("TOTP_REQUIRED");
    const subjects: LimitSubject[] = [{ id: `step-up:${actor.userId}`, limits: STEP_UP_LIMITS }];
    const decision = await this.o.limiter.consume(subjects, this.o.clock().getTime());
    if (!decision.allowed) {
      throw new LatchkeyError("RATE_LIMITED", "Too many wrong two-factor codes. Try again later.", {
        retry_after: decision.retryAfterSeconds,
      });
    }
    const user = await userById(this.o.db, actor.userId);
    if (!(await this.o.secondFactor.use(user, code, ctx))) throw new LatchkeyError("TOTP_INVALID");
    await this.o.limiter.reset(subjects, this.o.clock().getTime());
  }
}
