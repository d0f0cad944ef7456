import type { Environment } from "./key-format.ts";

/** What a company does with a key found in public: revoke it at once, or only tell its people. */
export const LEAK_POLICY_ACTIONS = ["revoke", "notify"] as const;
export type LeakPolicyAction = (typeof LEAK_POLICY_ACTIONS)[number];

/**
 * Live keys are revoked at once: a live key in a public repository is used by strangers within
 * minutes. Test keys only notify: they reach sandbox data, and they are the ones committed on purpose
 * in examples and CI fixtures, where a revocation breaks a build for little gain. An owner may change
 * either.
 */
export const DEFAULT_LEAK_POLICY: Readonly<Record<Environment, LeakPolicyAction>> = {
  live: "revoke",
  test: "notify",
};

/** Who said a key leaked: GitHub's secret scanning (signed) or anyone through the public endpoint. */
export type LeakReporter = "github" | "public";

/** What a report did to its key. */
export type LeakOutcome = "revoked" | "notified" | "already_revoked";

/**
 * A revoked key stays revoked, and a report of it is recorded but changes nothing; otherwise the
 * policy decides. An expired key is revoked too under `revoke`: a rotated key's expiry can be reset,
 * and a leaked one must not come back.
 */
export function leakOutcome(policy: LeakPolicyAction, status: "active" | "revoked"): LeakOutcome {
  if (status === "revoked") return "already_revoked";
  return policy === "revoke" ? "revoked" : "notified";
}
