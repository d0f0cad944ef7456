import type { Kysely } from "kysely";
import QRCode from "qrcode";
import { LatchkeyError } from "../../core/errors.ts";
import { hashToken } from "../../core/hashing.ts";
import { randomBase62 } from "../../core/random.ts";
import { SecretBox } from "../../core/secret-box.ts";
import { checkTotp, newTotpSecret, otpauthUrl } from "../../core/totp.ts";
import type { Db } from "../../store/repositories.ts";
import type { Database, UserRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { SessionInfo, SessionService } from "./sessions.ts";
import { userById } from "./users.ts";

export interface SecondFactorOptions {
  db: Kysely<Database>;
  /** The deployment's secret: TOTP secrets are sealed with it, recovery codes hashed with it. */
  secret: string;
  clock: () => Date;
  audit: AuditService;
  sessions: SessionService;
  /** The name an authenticator app shows beside the code. */
  issuer?: string;
}

const RECOVERY_CODES = 10;

/** Ten codes such as `k3v9q-x2m7d`: 50 random bits each, easy to read out and type. */
function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODES }, () => {
    const raw = randomBase62(10).toLowerCase();
    return `${raw.slice(0, 5)}-${raw.slice(5)}`;
  });
}

/**
 * Two-factor authentication: enrolling a TOTP secret, and checking a code (or a recovery code) once.
 * How often a code may be tried is not decided here: sign-in counts wrong codes in its lockout, step-up
 * in its own limit, each before it asks.
 */
export class SecondFactorService {
  private readonly box: SecretBox;

  constructor(private readonly o: SecondFactorOptions) {
    this.box = new SecretBox(o.secret, "totp");
  }

  /**
   * Starts enrolment: a pending secret, as text, an otpauth URL and a QR code. The pending secret
   * stays the same on every call until it is confirmed or `restart` asks for a new one on purpose, so
   * a code scanned before a reload of the enrolment page still confirms after it.
   */
  async setup(ctx: Ctx & { actor: { kind: "user" } }, opts: { restart?: boolean | undefined } = {}) {
    const user = await userById(this.o.db, ctx.actor.userId);
    if (user.totp_secret !== null)
      throw new LatchkeyError("CONFLICT", "Two-factor authentication is already set up.");
    let secret: string;
    if (user.totp_pending_secret !== null && opts.restart !== true) {
      secret = this.box.open(user.totp_pending_secret);
    } else {
      secret = newTotpSecret();
      await this.o.db
        .updateTable("users")
        .set({ totp_pending_secret: this.box.seal(secret), updated_at: this.o.clock() })
        .where("id", "=", user.id)
        .execute();
    }
    const url = otpauthUrl(secret, user.email, this.o.issuer ?? "Latchkey");
    const qr_svg = await QRCode.toString(url, { type: "svg", margin: 1 });
    return { secret, otpauth_url: url, qr_svg };
  }

  /**
   * New recovery codes for an enrolled person (their step-up already checked by the caller): the old
   * ones die in the same transaction, the new ones are shown once and stored hashed.
   */
  async regenerateRecoveryCodes(ctx: Ctx & { actor: { kind: "user" } }): Promise<string[]> {
    const user = await userById(this.o.db, ctx.actor.userId);
    if (user.totp_secret === null) throw new LatchkeyError("TOTP_ENROLMENT_REQUIRED");
    const codes = newRecoveryCodes();
    await this.o.db.transaction().execute(async (tx) => {
      await this.storeRecoveryCodes(tx, user.id, codes);
      await this.o.audit.append(tx, ctx, {
        action: "user.recovery_codes_regenerated",
        companyId: ctx.actor.companyId,
        target: { type: "user", id: user.id },
      });
    });
    return codes;
  }

  private async storeRecoveryCodes(tx: Db, userId: string, codes: string[]): Promise<void> {
    await tx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
    await tx
      .insertInto("recovery_codes")
      .values(codes.map((c) => ({ user_id: userId, code_hash: hashToken(this.o.secret, c), used_at: null })))
      .execute();
  }

  /**
   * Confirms enrolment with a first code; returns ten recovery codes, shown once, stored hashed. The
   * session is replaced, as after any gain of privilege.
   */
  async confirm(
    ctx: Ctx & { actor: { kind: "user" } },
    code: string,
  ): Promise<{ recovery_codes: string[]; session: SessionInfo }> {
    const user = await userById(this.o.db, ctx.actor.userId);
    if (user.totp_secret !== null)
      throw new LatchkeyError("CONFLICT", "Two-factor authentication is already set up.");
    if (user.totp_pending_secret === null)
      throw new LatchkeyError("CONFLICT", "Start with POST /v1/auth/totp/setup.");
    const secret = this.box.open(user.totp_pending_secret);
    const now = this.o.clock();
    const check = checkTotp(secret, code, now, null);
    if (!check.ok) throw new LatchkeyError("TOTP_INVALID", undefined, { field: "code" });
    const codes = newRecoveryCodes();
    const session = await this.o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("users")
        .set({
          totp_secret: user.totp_pending_secret,
          totp_pending_secret: null,
          totp_enabled_at: now,
          totp_last_step: check.step,
          updated_at: now,
        })
        .where("id", "=", user.id)
        .execute();
      await this.storeRecoveryCodes(tx, user.id, codes);
      await this.o.sessions.endAll(tx, user.id);
      await this.o.audit.append(
        tx,
        { ...ctx, totpUsed: true },
        {
          action: "user.totp_enrolled",
          companyId: ctx.actor.companyId,
          target: { type: "user", id: user.id },
        },
      );
      return this.o.sessions.open(tx, user, ctx.actor.companyId, ctx.ip, ctx.userAgent);
    });
    return { recovery_codes: codes, session };
  }

  /**
   * Checks a TOTP code (once per time step, ±1 step of drift) or a recovery code (once each), and
   * consumes it. The row lock makes two requests with one code race to a single winner.
   */
  async use(user: UserRow, code: string, ctx: Ctx): Promise<boolean> {
    if (user.totp_secret === null) return false;
    const secret = this.box.open(user.totp_secret);
    const given = code.trim();
    return this.o.db.transaction().execute(async (tx) => {
      const row = await tx
        .selectFrom("users")
        .select("totp_last_step")
        .where("id", "=", user.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const last = row.totp_last_step === null ? null : Number(row.totp_last_step);
      const check = checkTotp(secret, given, this.o.clock(), last);
      if (check.ok) {
        await tx.updateTable("users").set({ totp_last_step: check.step }).where("id", "=", user.id).execute();
        return true;
      }
      if (/^\d{6}$/.test(given)) return false;
      const used = await tx
        .updateTable("recovery_codes")
        .set({ used_at: this.o.clock() })
        .where("user_id", "=", user.id)
        .where("code_hash", "=", hashToken(this.o.secret, given.toLowerCase()))
        .where("used_at", "is", null)
        .executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) return false;
      await this.o.audit.append(tx, ctx, {
        action: "user.recovery_code_used",
        // The company the code was used in: the sign-in's or the step-up's.
        companyId: ctx.actor.kind === "user" ? ctx.actor.companyId : null,
        target: { type: "user", id: user.id },
      });
      return true;
    });
  }
}
