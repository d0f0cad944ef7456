import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

describe.each(BACKENDS)("the main flow on %s", (kind) => {
  let h: Harness;
  let company: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    company = await h.createCompany("Acme Payments");
  });
  afterAll(() => h.close());

  it("bootstraps a company with an Adyen-style default credential and a management key", async () => {
    expect(company.username).toMatch(/^ws_\d{6}@Company\.AcmePayments\d*$/);
    expect(company.key).toMatch(/^lk_live_sk_[0-9A-Za-z]{38}$/);
    const res = await h.call("GET", "/v1/credentials", { key: company.key });
    expect(res.statusCode).toBe(200);
    const creds = res.json().data.credentials;
    // One default API user per environment, as the Adyen doc gives each customer area its own.
    expect(
      creds.map((c: { environment: string; is_default: boolean }) => [c.environment, c.is_default]).sort(),
    ).toEqual([
      ["live", true],
      ["test", true],
    ]);
  });

  it("creates, verifies, rotates, expires and revokes a key", async () => {
    const created = await h.createKey(company, { name: "Production API Key", permissions: ["onramp:read"] });
    const verify = (key: string) =>
      h.call("POST", "/v1/verify", { key: company.key, json: { key, permissions: ["onramp:read"] } });
    expect((await verify(created.key)).json().data).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: created.id,
    });

    const rotated = await h.call("POST", `/v1/keys/${created.id}/rotate`, {
      key: company.key,
      json: { grace_seconds: 3600 },
    });
    expect(rotated.statusCode).toBe(200);
    const fresh = rotated.json().data;
    expect(fresh.previous_key.id).toBe(created.id);
    expect((await verify(created.key)).json().data.code).toBe("VALID");
    expect((await verify(fresh.key)).json().data.code).toBe("VALID");

    h.clock.advance(3601);
    expect((await verify(created.key)).json().data.code).toBe("EXPIRED");

    const revoked = await h.call("DELETE", `/v1/keys/${fresh.id}`, { key: company.key });
    expect(revoked.json()).toMatchObject({
      success: true,
      data: { message: "API key revoked successfully" },
    });
    expect((await verify(fresh.key)).json().data.code).toBe("REVOKED");
  });
});
