import type { Kysely } from "kysely";
import { actingEnvironment, sees } from "../core/access/environments.ts";
import { assertCompanyLevel } from "../core/access/merchant-accounts.ts";
import { policyOf } from "../core/access/policy.ts";
import type { Actor } from "../core/actor.ts";
import { actorRef } from "../core/actor.ts";
import { LatchkeyError } from "../core/errors.ts";
import {
  complianceIssues,
  type EnvironmentExpiryPolicy,
  EXPIRING_NOTICES,
  NO_POLICY,
  policyExpiry,
  UNUSED_NOTICE_DAYS,
} from "../core/expiry-policy.ts";
import type { Environment } from "../core/key-format.ts";
import type { ExpiryPolicyDoc, KeyView } from "../core/views.ts";
import { expiryPolicies } from "../store/expiry-policies.ts";
import type { Db } from "../store/repositories.ts";
import type { Database, ExpiryPolicyRow } from "../store/schema.ts";
import type { AccessGuard } from "./access.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";

export type ExpiryPolicyPatch = Partial<Record<Environment, Partial<EnvironmentExpiryPolicy>>>;

/** Keys the compliance report looks at, at most; a company with more sees the count of those. */
const REPORT_SCAN = 10_000;
const REPORT_SHOWN = 100;

const ENVIRONMENTS: readonly Environment[] = ["live", "test"];

function policyOfRow(row: ExpiryPolicyRow | undefined): EnvironmentExpiryPolicy {
  if (!row) return NO_POLICY;
  return {
    max_lifetime_days: row.max_lifetime_days,
    must_expire: row.must_expire,
    revoke_unused_after_days: row.revoke_unused_after_days,
  };
}

/** A company's expiry policies: read, changed by its owners, and the keys that fall short of them. */
export class ExpiryPolicyService {
  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: () => Date;
      audit: AuditService;
      guard: AccessGuard;
    },
  ) {}

  /** The policy of each environment (no row: no policy). */
  async policies(db: Db, companyId: string): Promise<Record<Environment, EnvironmentExpiryPolicy>> {
    const rows = await expiryPolicies.list(db, companyId);
    const of = (env: Environment) => policyOfRow(rows.find((r) => r.environment === env));
    return { live: of("live"), test: of("test") };
  }

  /**
   * The expiry a new key of `environment` gets, from the one asked for, under the policy as it is now
   * (see `policyExpiry`). In the transaction that makes the key.
   */
  async expiryFor(
    tx: Db,
    companyId: string,
    environment: Environment,
    asked: Date | null,
  ): Promise<Date | null> {
    const policy = policyOfRow(await expiryPolicies.get(tx, companyId, environment));
    return policyExpiry(policy, environment, asked, this.deps.clock());
  }

  /** The views with `policy_issues` set, from the company's policies as they are now. */
  async annotate(companyId: string, views: KeyView[]): Promise<KeyView[]> {
    if (views.length === 0) return views;
    const policies = await this.policies(this.deps.db, companyId);
    const now = this.deps.clock();
    return views.map((v) => ({
      ...v,
      policy_issues: complianceIssues(
        {
          status: v.status,
          replaced_by: v.replaced_by,
          expires_at: v.expires_at === null ? null : new Date(v.expires_at),
          created_at: new Date(v.created_at),
        },
        policies[v.environment],
        now,
      ),
    }));
  }

  /** The policy and the report, as `actor` may see them: a test caller the test environment only. */
  async get(companyId: string, actor: Actor): Promise<ExpiryPolicyDoc> {
    // The report names keys of the whole company: a merchant account's caller may not read it.
    assertCompanyLevel(actor);
    const db = this.deps.db;
    const rows = await expiryPolicies.list(db, companyId);
    const now = this.deps.clock();
    const section = (env: Environment) => {
      const row = rows.find((r) => r.environment === env);
      return {
        ...policyOfRow(row),
        updated_at: row?.updated_at.toISOString() ?? null,
        updated_by: row?.updated_by ?? null,
      };
    };
    const onlyTest = actingEnvironment(actor) === "test";
    const keys = await expiryPolicies.activeKeys(
      db,
      companyId,
      onlyTest ? "test" : undefined,
      now,
      REPORT_SCAN,
    );
    const noncompliant = keys.flatMap((k) => {
      const issues = complianceIssues(k, policyOfRow(rows.find((r) => r.environment === k.environment)), now);
      return issues.length === 0
        ? []
        : [
            {
              id: k.id,
              name: k.name,
              prefix: k.prefix,
              environment: k.environment,
              expires_at: k.expires_at?.toISOString() ?? null,
              issues,
            },
          ];
    });
    return {
      ...(onlyTest ? {} : { live: section("live") }),
      test: section("test"),
      unused_notice_days: UNUSED_NOTICE_DAYS,
      expiring_notice_days: EXPIRING_NOTICES.map((n) => n.days),
      noncompliant_keys: noncompliant.slice(0, REPORT_SHOWN),
      noncompliant_count: noncompliant.length,
    };
  }

  /**
   * Changes the given fields of the given environments; the rest stay. Owners only, with a fresh code:
   * a policy decides which keys may be made and which are revoked. Each environment changed is one
   * audit event with its before and after.
   */
  async update(companyId: string, patch: ExpiryPolicyPatch, given: Ctx): Promise<ExpiryPolicyDoc> {
    const actor = given.actor;
    assertCompanyLevel(actor);
    const roles = policyOf("policies.expiry_update").roles ?? [];
    if (actor.kind !== "user" || !roles.includes(actor.role)) {
      throw new LatchkeyError("FORBIDDEN", `This needs the role ${roles.join(" or ")}.`);
    }
    const asked = ENVIRONMENTS.filter((env) => patch[env] !== undefined);
    if (asked.length === 0) {
      throw new LatchkeyError("VALIDATION_ERROR", "Give the live or test policy to change.", {
        field: "live",
      });
    }
    for (const env of asked) {
      // A caller acting in test changes the test world only, as with keys.
      if (!sees(actor, env)) {
        throw new LatchkeyError("ENVIRONMENT_NOT_ALLOWED", undefined, { field: env });
      }
    }
    const ctx = await this.deps.guard.confirm(given, "policies.expiry_update", patch);
    await this.deps.db.transaction().execute(async (tx) => {
      const rows = await expiryPolicies.list(tx, companyId, { lock: true });
      const now = this.deps.clock();
      for (const env of asked) {
        const before = policyOfRow(rows.find((r) => r.environment === env));
        const after: EnvironmentExpiryPolicy = { ...before, ...definedOnly(patch[env] ?? {}) };
        if (JSON.stringify(after) === JSON.stringify(before)) continue;
        await expiryPolicies.put(tx, {
          company_id: companyId,
          environment: env,
          ...after,
          updated_at: now,
          updated_by: actorRef(ctx.actor),
        });
        await this.deps.audit.append(tx, ctx, {
          action: "expiry_policy.changed",
          companyId,
          environment: env,
          target: { type: "expiry_policy", id: env },
          changes: { before, after },
        });
      }
    });
    return this.get(companyId, actor);
  }
}

/** The fields a patch gives (an absent field is left as it is; null is a value: "none"). */
function definedOnly(patch: Partial<EnvironmentExpiryPolicy>): Partial<EnvironmentExpiryPolicy> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
}
