import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERRORS } from "../../src/core/errors.ts";
import { ApiError, type ConsoleErrorCode, ENDPOINTS } from "../../web/src/api/client.ts";
import { explain, fieldOf } from "../../web/src/api/messages.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";

/** The console's typed client, checked against the server's own OpenAPI document. */
describe("console client", () => {
  let h: Harness;
  let paths: Record<string, Record<string, unknown>>;

  beforeAll(async () => {
    h = await createHarness("pglite");
    const res = await h.call("GET", "/openapi.json");
    expect(res.statusCode).toBe(200);
    paths = res.json().paths;
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each(Object.entries(ENDPOINTS))(
    "%s: the route it calls is in /openapi.json",
    (_name, [method, path]) => {
      expect(Object.keys(paths), path).toContain(path);
      expect(Object.keys(paths[path] ?? {}), `${method} ${path}`).toContain(method.toLowerCase());
    },
  );

  it("never calls an admin route or a route the OpenAPI document hides", () => {
    for (const [, path] of Object.values(ENDPOINTS)) expect(path.startsWith("/v1/admin")).toBe(false);
  });
});

describe("console error messages", () => {
  const err = (code: ConsoleErrorCode, details: Record<string, unknown> = {}, field?: string) =>
    new ApiError(403, code, "server message", field, details, "req_x");

  it("says which address was refused", () => {
    expect(explain(err("IP_NOT_ALLOWED", { ip: "198.51.100.7" }))).toBe(
      "Requests from 198.51.100.7 are not allowed: that address is outside the allowed IP list.",
    );
  });

  it("names the bad IP entry and puts it on the allowed-IPs field", () => {
    const e = err("INVALID_IP_RULE", { entry: "10.0.0.0/33" }, "allowed_ips");
    expect(explain(e)).toBe('"10.0.0.0/33" is not a valid IP address or CIDR range.');
    expect(fieldOf(e)).toBe("allowed_ips");
  });

  it("puts 2FA refusals on the code field", () => {
    expect(fieldOf(err("TOTP_INVALID"))).toBe("totp_code");
    expect(fieldOf(err("TOTP_REQUIRED"))).toBe("totp_code");
    expect(explain(err("TOTP_INVALID"))).toMatch(/wrong, expired or already used/);
  });

  it("lists the permissions that cannot be granted", () => {
    const e = err(
      "PERMISSION_NOT_HELD",
      { permissions: ["payout:create", "kyc_document:read"] },
      "permissions",
    );
    expect(explain(e)).toContain("payout:create, kyc_document:read");
    expect(fieldOf(e)).toBe("permissions");
  });

  it("has a sentence for every error code the server can send", () => {
    for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
      const text = explain(err(code));
      expect(text.length, code).toBeGreaterThan(5);
      expect(text, code).not.toMatch(/^[A-Z_]+$/);
    }
  });
});
