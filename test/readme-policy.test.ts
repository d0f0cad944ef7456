import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { POLICY, type Policy } from "../src/core/access/policy.ts";
import { ROLES } from "../src/core/roles.ts";

/** The README's API table, row by row: route → [keys need, people, step-up]. */
function readmeTable(): Map<string, [string, string, string]> {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const rows = new Map<string, [string, string, string]>();
  for (const line of readme.split("\n")) {
    const cells = line.split(" | ").map((c) => c.replace(/^\| ?| ?\|$/g, "").trim());
    const route = /^`((?:GET|POST|PATCH|DELETE|ALL) \/\S*)`$/.exec(cells[0] ?? "")?.[1];
    if (route && cells.length >= 5) rows.set(route, [cells[1] ?? "", cells[2] ?? "", cells[3] ?? ""]);
  }
  return rows;
}

/** How the README writes a policy's columns. */
function described(policy: Policy): [string, string, string] {
  const keys =
    policy.caller === "platform"
      ? "admin token"
      : policy.caller === "public"
        ? "— (public)"
        : policy.caller === "session"
          ? "sessions only"
          : (() => {
              const perms = policy.perms ?? { all: [] };
              const list = ("all" in perms ? perms.all : perms.any).map((p) => `\`${p}\``);
              const text = list.join("all" in perms ? " and " : " or ");
              if (policy.caller === "gateway")
                return `${text} in \`Latchkey-Verify-Key\` (also platform verify keys)`;
              return policy.caller === "verifier" ? `${text} (also platform verify keys)` : text;
            })();
  const roles = policy.roles ?? [];
  const people = roles.length === 0 ? "—" : roles.length === ROLES.length ? "every role" : roles.join(", ");
  const stepUp = policy.stepUp === undefined ? "—" : policy.stepUp === true ? "always" : "conditional";
  return [keys, people, stepUp];
}

describe("the README's API table", () => {
  const table = readmeTable();

  it("lists every route of the policy table, and nothing else", () => {
    expect([...table.keys()].sort()).toEqual(
      Object.values(POLICY)
        .map((p) => p.route)
        .sort(),
    );
  });

  it.each(Object.values(POLICY).map((p) => [p.route, p] as const))(
    "says what the table says of %s",
    (route, policy) => {
      const [keys, people, stepUp] = described(policy);
      const row = table.get(route);
      expect(row?.[0], route).toBe(keys);
      expect(row?.[1], route).toBe(people);
      if (stepUp === "conditional") expect(row?.[2], route).toMatch(/^(when|with) /);
      else expect(row?.[2], route).toBe(stepUp);
    },
  );
});
