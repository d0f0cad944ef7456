import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  byLabel,
  type Company,
  createCompany,
  type Env,
  failureShot,
  http,
  newPage,
  PASSWORD,
  readyOwner,
  type SecondFactor,
  shoot,
  signIn,
  startConsole,
} from "./console-helpers.ts";

/** Settings › Expiry policy, and the marks it puts on the keys list. */
describe("console: expiry policy", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  let foreverId = "";
  let soonId = "";

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Expiry Console Co");
    const mk = { "x-api-key": company.managementKey };
    const make = async (name: string, extra: Record<string, unknown>) => {
      const res = await http(env, "POST", "/v1/keys", {
        headers: mk,
        json: { name, environment: "live", credential_id: company.defaultCredentialId, ...extra },
      });
      expect(res.status).toBe(201);
      return res.body.data.id as string;
    };
    foreverId = await make("Forever key", {});
    soonId = await make("Soon key", { expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() });
    ({ factor } = await readyOwner(env, company));
    ({ page, errors } = await newPage(env));
    await signIn(page, company.ownerEmail, PASSWORD, factor);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });
  afterAll(async () => {
    await env?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  it("lets an owner set a maximum lifetime with a 2FA code, and lists the keys that do not comply", async () => {
    await page.getByRole("link", { name: "Settings › Expiry policy" }).click();
    await page.getByRole("heading", { name: "Expiry policy" }).waitFor();
    const live = page.getByTestId("expiry-policy-live");
    await byLabel(live, "Maximum lifetime (days)").fill("90");
    await byLabel(live, "New keys must expire").check();
    await page.getByTestId("totp-code").fill(factor.next());
    await page.getByRole("button", { name: "Save expiry policy" }).click();
    await page.getByRole("status").getByText("Saved.").waitFor();
    const table = page.getByTestId("noncompliant-keys");
    await table.getByText("Forever key").waitFor();
    await expect(table.getByText("Soon key").count()).resolves.toBe(0);
    await shoot(page, "30-expiry-policy");

    const policy = await http(env, "GET", "/v1/policies/expiry", {
      headers: { "x-api-key": company.managementKey },
    });
    expect(policy.body.data.live).toMatchObject({ max_lifetime_days: 90, must_expire: true });
  });

  it("shows a wrong code under the code field, and changes nothing", async () => {
    const live = page.getByTestId("expiry-policy-live");
    await byLabel(live, "Maximum lifetime (days)").fill("30");
    await page.getByTestId("totp-code").fill("000000");
    await page.getByRole("button", { name: "Save expiry policy" }).click();
    await page.getByText(/That code is wrong/).waitFor();
    const policy = await http(env, "GET", "/v1/policies/expiry", {
      headers: { "x-api-key": company.managementKey },
    });
    expect(policy.body.data.live.max_lifetime_days).toBe(90);
  });

  it("marks keys that do not comply, and keys that expire within a week, on the keys page", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    const forever = page.locator(`[data-key-id="${foreverId}"]`);
    await forever.getByTestId("policy-mark").waitFor();
    const soon = page.locator(`[data-key-id="${soonId}"]`);
    await soon.getByTestId("expiring-mark").waitFor();
    await expect(soon.getByTestId("policy-mark").count()).resolves.toBe(0);
    // At 1280 and 390 px, with the accessibility checks every screenshot makes.
    await shoot(page, "31-keys-policy-marks");
    expect(errors).toEqual([]);
  });
});
