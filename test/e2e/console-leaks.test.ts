import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { within } from "../helpers/wait.ts";
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
  verifyKey,
} from "./console-helpers.ts";

/**
 * Leaked keys in the console: the banner on a reported key says where it was found and what was done,
 * Replace is one click away (a new key with a revoked key's settings, or a rotation with no overlap for
 * a key that still works), and an owner sets the leak policy under Settings › Leaked keys.
 */
describe("console: leaked keys", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  let gateway: string;
  const mk = () => ({ "x-api-key": company.managementKey });
  const rowOf = (id: string) => page.locator(`[data-testid="key-row"][data-key-id="${id}"]`);
  const verify = async (key: string) =>
    (
      await http(env, "POST", "/v1/verify", {
        headers: { "x-api-key": gateway },
        json: { key, ip: "203.0.113.7" },
      })
    ).body.data.code as string;
  const newKey = async (name: string) => {
    const res = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: {
        name,
        environment: "live",
        credential_id: company.defaultCredentialId,
        permissions: ["payin:read"],
        allowed_ips: ["203.0.113.0/24"],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data as { id: string; key: string };
  };
  const report = (token: string, url: string) =>
    http(env, "POST", "/v1/leaks", { json: { token, url, source: "paste" } });
  const doneShowOnce = async (title: string | RegExp) => {
    const modal = page.getByRole("dialog", { name: title });
    const key = await modal.getByTestId("secret-api-key").inputValue();
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });
    return key;
  };

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Leaky Co");
    gateway = await verifyKey(env);
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
    expect(errors).toEqual([]);
  });

  it("shows a revoked leaked key's banner and replaces it with a key of the same settings", async () => {
    const leaked = await newKey("Pasted prod");
    const res = await report(leaked.key, "https://pastebin.example/abc");
    expect(res.status).toBe(202);
    await within(5000, async () => (await verify(leaked.key)) === "REVOKED");

    await page.reload();
    const banner = rowOf(leaked.id).getByTestId("leak-banner");
    await banner.waitFor();
    await expect(banner.textContent()).resolves.toContain("https://pastebin.example/abc");
    await expect(banner.textContent()).resolves.toContain("It was revoked at once.");
    await shoot(page, "leaks-01-banner");

    await banner.getByRole("button", { name: "Replace Pasted prod" }).click();
    const dialog = page.getByRole("dialog", { name: /Replace “Pasted prod”/ });
    await dialog.getByTestId("leak-banner").waitFor();
    await shoot(page, "leaks-02-replace", { fullPage: false });
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create replacement" }).click();
    const replacement = await doneShowOnce("Your replacement API key");
    expect(replacement).toMatch(/^lk_live_sk_/);

    const keys = (await http(env, "GET", "/v1/keys?limit=100", { headers: mk() })).body.data.keys as {
      id: string;
      name: string;
      prefix: string;
      permissions: string[];
      allowed_ips: string[];
      status: string;
    }[];
    const fresh = keys.find((k) => k.name === "Pasted prod" && k.status === "active");
    expect(fresh).toMatchObject({ permissions: ["payin:read"], allowed_ips: ["203.0.113.0/24"] });
    expect(replacement.startsWith(fresh?.prefix ?? "?")).toBe(true);
    expect(await verify(replacement)).toBe("VALID");
  });

  it("lets the owner switch live keys to notify, then rotates a notified key with no overlap", async () => {
    await page.getByRole("link", { name: "Settings › Leaked keys" }).click();
    await page.getByRole("heading", { name: "Leaked keys" }).waitFor();
    const live = page.getByTestId("leak-policy-live");
    await live.getByText("The default for this environment.").waitFor();
    await live.getByRole("radio", { name: "Notify only" }).check();
    await live.getByTestId("totp-code").fill(factor.next());
    await shoot(page, "leaks-03-policy");
    await live.getByRole("button", { name: "Save" }).click();
    await live.getByText(/^Set /).waitFor();
    const policies = (await http(env, "GET", "/v1/policies/leaks", { headers: mk() })).body.data.policies;
    expect(policies[0]).toMatchObject({ environment: "live", action: "notify" });

    const leaked = await newKey("Committed prod");
    expect((await report(leaked.key, "https://github.com/acme/app/blob/1/.env")).status).toBe(202);
    await within(5000, async () => {
      const view = await http(env, "GET", `/v1/keys/${leaked.id}`, { headers: mk() });
      return view.body.data.leak !== null;
    });
    expect(await verify(leaked.key)).toBe("VALID");

    await page.getByRole("link", { name: "API keys" }).click();
    const banner = rowOf(leaked.id).getByTestId("leak-banner");
    await banner.waitFor();
    await expect(banner.textContent()).resolves.toContain("It still works");
    await banner.getByRole("button", { name: "Replace Committed prod" }).click();
    const dialog = page.getByRole("dialog", { name: /Rotate “Committed prod”/ });
    await dialog.getByTestId("leak-banner").waitFor();
    await expect(byLabel(dialog, "Grace period for the old key").inputValue()).resolves.toBe(
      "No overlap: the old key stops now",
    );
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Rotate key" }).click();
    const rotated = await doneShowOnce("Your new API key");
    expect(await verify(rotated)).toBe("VALID");
    expect(await verify(leaked.key)).toBe("EXPIRED");
  });
});
