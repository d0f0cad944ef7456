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
  verifyKey,
} from "./console-helpers.ts";

/**
 * Merchant accounts in a real browser: a grid of cards, one opened to its API users, an API user and a
 * key made within it, and the key verifying with the account's id.
 */
describe("console: merchant accounts", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  let gateway: string;
  const mk = () => ({ "x-api-key": company.managementKey });

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Merchants Co");
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
  });

  let accountId = "";
  it("creates a merchant account and shows it as a card", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Merchant accounts" })
      .click();
    await page.getByRole("heading", { name: "Merchant accounts" }).waitFor();
    await page.getByText("No merchant accounts yet.").waitFor();
    await page.getByRole("button", { name: "Create merchant account" }).click();
    const dialog = page.getByRole("dialog", { name: "Create merchant account" });
    await byLabel(dialog, "Name").fill("Acme Shop EU");
    // A code with a space is refused by the server, on its field.
    await byLabel(dialog, "Code").fill("acme shop");
    await dialog.getByRole("button", { name: "Create merchant account" }).click();
    await dialog.locator(".mantine-InputWrapper-error, [class*='error']").first().waitFor();
    await byLabel(dialog, "Code").fill("AcmeShopEU");
    await dialog.getByRole("button", { name: "Create merchant account" }).click();
    await page.getByRole("heading", { name: "Acme Shop EU" }).waitFor();
    accountId = page.url().split("/").pop() ?? "";
    expect(accountId).toMatch(/^ma_/);

    await page.getByRole("link", { name: "‹ Merchant accounts" }).click();
    const card = page.getByTestId("merchant-account-card").filter({ hasText: "Acme Shop EU" });
    await expect.poll(() => card.textContent()).toContain("0 API users · 0 keys");
    expect(await card.textContent()).toContain("AcmeShopEU");
    expect(await card.textContent()).toContain("active");
    await shoot(page, "merchant-accounts-grid");
  });

  let credentialId = "";
  let key = "";
  it("opens the account and adds an API user and a key within it", async () => {
    await page.getByRole("button", { name: "Open merchant account Acme Shop EU" }).click();
    await page.getByRole("heading", { name: "Acme Shop EU" }).waitFor();
    await page.getByRole("button", { name: "Add API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await expect(dialog.getByTestId("api-user-merchant-account").textContent()).resolves.toContain(
      "Acme Shop EU",
    );
    await byLabel(dialog, "Name").fill("Shop EU checkout");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await dialog.waitFor({ state: "hidden" });
    const row = page
      .getByTestId("merchant-api-users")
      .getByRole("row")
      .filter({ hasText: "Shop EU checkout" });
    await row.waitFor();
    const listed = await http(env, "GET", `/v1/credentials?merchant_account_id=${accountId}`, {
      headers: mk(),
    });
    expect(listed.body.data.credentials).toHaveLength(1);
    credentialId = listed.body.data.credentials[0].id;
    expect(listed.body.data.credentials[0]).toMatchObject({
      name: "Shop EU checkout",
      merchant_account_id: accountId,
    });

    await row.getByRole("button", { name: "Add API key" }).click();
    const keyDialog = page.getByRole("dialog", { name: "Create API key" });
    await byLabel(keyDialog, "Name").fill("Checkout prod");
    await keyDialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await keyDialog.getByTestId("totp-code").fill(factor.next());
    await keyDialog.getByRole("button", { name: "Create key" }).click();
    const modal = page.getByRole("dialog", { name: /API key “Checkout prod” created/ });
    key = await modal.getByTestId("secret-api-key").inputValue();
    expect(key).toMatch(/^lk_live_sk_/);
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });

    // The key verifies, naming the account.
    const verified = await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key, ip: "192.0.2.1" },
    });
    expect(verified.body.data).toMatchObject({
      valid: true,
      credential_id: credentialId,
      merchant_account_id: accountId,
    });
    await page.getByRole("link", { name: "‹ Merchant accounts" }).click();
    const card = page.getByTestId("merchant-account-card").filter({ hasText: "Acme Shop EU" });
    await expect.poll(() => card.textContent()).toContain("1 API user · 1 key");
  });

  it("shows each API user's account in the API users list", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: /Access control/ })
      .click();
    const row = page.getByTestId("api-users-list").getByRole("row").filter({ hasText: "Shop EU checkout" });
    await expect.poll(() => row.textContent()).toContain("Acme Shop EU");
    const companyLevel = page
      .getByTestId("api-users-list")
      .getByRole("row")
      .filter({ hasText: "Default API credential" });
    expect(await companyLevel.first().textContent()).toContain("Company");
  });

  it("deactivates the account, and its key stops verifying", async () => {
    await page.goto(`/merchant-accounts/${accountId}`);
    await page.getByRole("heading", { name: "Acme Shop EU" }).waitFor();
    await page.getByRole("button", { name: "Deactivate" }).click();
    const dialog = page.getByRole("dialog", { name: "Deactivate merchant account" });
    await dialog.getByRole("button", { name: "Deactivate" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Reactivate" }).waitFor();
    const account = await http(env, "GET", `/v1/merchant-accounts/${accountId}`, { headers: mk() });
    expect(account.body.data.status).toBe("inactive");
    const verified = await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key, ip: "192.0.2.1" },
    });
    expect(verified.body.data).toMatchObject({ valid: false, code: "DISABLED" });
    expect(errors).toEqual([]);
  });
});
