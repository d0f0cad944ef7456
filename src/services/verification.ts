import type { Kysely } from "kysely";
import type { VerifyCode } from "../core/errors.ts";
import { hashToken, safeEqual } from "../core/hashing.ts";
import { compileAllowlist } from "../core/ip.ts";
import { type Environment, parseToken } from "../core/key-format.ts";
import { decide, type VerifiableKey } from "../core/verification.ts";
import { apiKeys, credentials } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import type { Actor } from "./actor.ts";
import type { Changes } from "./changes.ts";
import { KeyCache } from "./key-cache.ts";
import type { UsageRecorder } from "./usage.ts";

export interface VerifyInput {
  key?: string | undefined;
  secret?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  permissions?: readonly string[] | undefined;
  ip?: string | undefined;
  environment?: Environment | undefined;
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  credential_id: string | null;
  company_id: string | null;
  environment: Environment | null;
  permissions: string[];
  expires_at: string | null;
}

/** Internal result: the public answer plus the found subject, so callers can act as it. */
interface Outcome {
  result: VerifyResult;
  subject: (VerifiableKey & { prefix: string | null }) | null;
}

export interface VerificationDeps {
  db: Kysely<Database>;
  secret: string;
  usage: UsageRecorder;
  clock: () => Date;
  changes: Changes;
  cache?: { max?: number; ttlMs?: number; negativeTtlMs?: number };
}

type LoadedKey = VerifiableKey & { secretHash: string | null };

const matcher = (entries: string[]) => (entries.length === 0 ? null : compileAllowlist(entries));

function failure(code: VerifyCode): Outcome {
  return {
    result: {
      valid: false,
      code,
      key_id: null,
      credential_id: null,
      company_id: null,
      environment: null,
      permissions: [],
      expires_at: null,
    },
    subject: null,
  };
}

/**
 * Answers "is this key (or key + secret, or username + password) good for this request?".
 * Format and checksum are checked before any lookup; the lookup is one indexed query; the only
 * side effect is an in-memory last-used record, flushed later in batches.
 */
export class VerificationService {
  private readonly cache: KeyCache<LoadedKey>;

  constructor(private readonly deps: VerificationDeps) {
    this.cache = new KeyCache<LoadedKey>({
      max: deps.cache?.max ?? 100_000,
      ttlMs: deps.cache?.ttlMs ?? 10_000,
      negativeTtlMs: deps.cache?.negativeTtlMs ?? 2_000,
      now: () => deps.clock().getTime(),
    });
    deps.changes.on((change) => this.cache.apply(change));
  }

  /**
   * A key by hash: from the cache, or from one indexed query whose answer (found or not) is cached,
   * with its allowlists compiled once here rather than on every request.
   */
  private async lookup(keyHash: string): Promise<LoadedKey | null> {
    const cached = this.cache.get(keyHash);
    if (cached) return cached.value;
    const row = await apiKeys.findByHash(this.deps.db, keyHash);
    let loaded: LoadedKey | null = null;
    if (row) {
      // A key never does more than its API user may do now, even if the user's permissions shrank later.
      const credentialHeld = row.credential_permissions ? new Set(row.credential_permissions) : null;
      const permissions = credentialHeld
        ? row.permissions.filter((p) => credentialHeld.has(p))
        : row.permissions;
      loaded = {
        keyId: row.id,
        companyId: row.company_id,
        credentialId: row.credential_id,
        environment: row.environment,
        permissions,
        permissionSet: new Set(permissions),
        revoked: row.status === "revoked",
        expiresAt: row.expires_at,
        enabled:
          row.company_id === null || (row.credential_status === "active" && row.company_status === "active"),
        keyIps: matcher(row.allowed_ips),
        credentialIps: matcher(row.credential_allowed_ips ?? []),
        secretHash: row.secret_hash,
      };
    }
    this.cache.set(keyHash, loaded, { keyId: row?.id ?? null, credentialId: row?.credential_id ?? null });
    return loaded;
  }

  /** `scope`: the company whose keys the caller may verify, or null for a platform verify key (any). */
  async verify(input: VerifyInput, scope: string | null): Promise<VerifyResult> {
    return (await this.check(input, scope)).result;
  }

  /** Authenticates a management caller: on VALID, the actor it acts as. */
  async authenticate(
    input: Pick<VerifyInput, "key" | "secret" | "username" | "password" | "ip">,
  ): Promise<{ code: VerifyCode; actor: Actor | null }> {
    const { result, subject } = await this.check(input, null);
    if (!result.valid || subject === null) return { code: result.code, actor: null };
    if (subject.keyId !== null) {
      return {
        code: result.code,
        actor: {
          kind: "key",
          keyId: subject.keyId,
          prefix: subject.prefix ?? "",
          companyId: subject.companyId,
          credentialId: subject.credentialId,
          permissions: subject.permissions,
        },
      };
    }
    return {
      code: result.code,
      actor: {
        kind: "credential",
        credentialId: subject.credentialId as string,
        companyId: subject.companyId as string,
        permissions: subject.permissions,
      },
    };
  }

  private async check(input: VerifyInput, scope: string | null): Promise<Outcome> {
    let subject: Outcome["subject"];
    if (input.key !== undefined) {
      const parsed = parseToken(input.key);
      if (parsed?.kind !== "sk") return failure("MALFORMED");
      const found = await this.lookup(hashToken(this.deps.secret, input.key));
      if (!found || (scope !== null && found.companyId !== scope)) return failure("NOT_FOUND");
      if (found.secretHash !== null) {
        if (input.secret === undefined) return failure("MALFORMED");
        const secret = parseToken(input.secret);
        if (secret?.kind !== "ss" || secret.environment !== parsed.environment) return failure("MALFORMED");
        if (!safeEqual(hashToken(this.deps.secret, input.secret), found.secretHash))
          return failure("NOT_FOUND");
      }
      subject = { ...found, prefix: parsed.prefix };
    } else if (input.username !== undefined && input.password !== undefined) {
      const row = await credentials.findByUsername(this.deps.db, input.username);
      if (!row || (scope !== null && row.company_id !== scope)) return failure("NOT_FOUND");
      const given = hashToken(this.deps.secret, input.password);
      if (row.password_hash === null || !safeEqual(given, row.password_hash)) return failure("NOT_FOUND");
      subject = {
        keyId: null,
        prefix: null,
        companyId: row.company_id,
        credentialId: row.id,
        environment: null,
        permissions: row.permissions,
        revoked: false,
        expiresAt: null,
        enabled: row.status === "active" && row.company_status === "active",
        keyIps: null,
        credentialIps: matcher(row.allowed_ips),
      };
    } else {
      return failure("MALFORMED");
    }
    const now = this.deps.clock();
    const code = decide(subject, input, now);
    if (code === "VALID" && subject.keyId !== null)
      this.deps.usage.record(subject.keyId, now, input.ip ?? null);
    return {
      result: {
        valid: code === "VALID",
        code,
        key_id: subject.keyId,
        credential_id: subject.credentialId,
        company_id: subject.companyId,
        environment: subject.environment,
        permissions: [...subject.permissions],
        expires_at: subject.expiresAt ? subject.expiresAt.toISOString() : null,
      },
      subject,
    };
  }
}
