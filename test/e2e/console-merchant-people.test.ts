import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  byLabel,
  type Company,
  createCompany,
  type Env,
  failureShot,
  firstSignIn,
  http,
  newPage,
  PASSWORD,
  readyOwner,
  type SecondFactor,
  shoot,
  signIn,
  startConsole,
} from "./console-helpers.ts";

/**
 * A person limited to one merchant account, in a real browser: the owner invites them into account M,
 * and their console shows M in the header, M's API users only, and none of the company's own pages.
 */
describe("console: a person limited to a merchant account", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  const mk = () => ({ "x-api-key": company.managementKey });
  const made: Record<string, { account: string; apiUser: string }> = {};
  const email = `shopkeeper-${Date.now()}@acme.example`;

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Scoped People Co");
    for (const [name, code] of [
      ["Shop M", "shop-m"],
      ["Shop N", "shop-n"],
    ] as const) {
      const account = await http(env, "POST", "/v1/merchant-accounts", {
        headers: mk(),
        json: { name, code },
      });
      expect(account.status, JSON.stringify(account.body)).toBe(201);
      const user = await http(env, "POST", "/v1/credentials", {
        headers: mk(),
        json: {
          name: `${name} checkout`,
          permissions: ["customer:read"],
          merchant_account_id: account.body.data.id,
        },
      });
      expect(user.status, JSON.stringify(user.body)).toBe(201);
      made[code] = { account: account.body.data.id, apiUser: user.body.data.id };
    }
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

  let temporary = "";
  it("invites a person into merchant account M", async () => {
    await page.getByRole("link", { name: "Settings › Access control" }).click();
    await page.getByRole("tab", { name: "People" }).click();
    await page.getByTestId("people-list").getByText(company.ownerEmail).waitFor();
    await page.getByRole("button", { name: "Invite person" }).click();
    const dialog = page.getByRole("dialog", { name: "Invite a person" });
    await byLabel(dialog, "Email").fill(email);
    await byLabel(dialog, "Merchant account").click();
    await page.getByRole("option", { name: "Shop M (shop-m)" }).click();
    await dialog.getByRole("button", { name: "Invite" }).click();
    const modal = page.getByRole("dialog", { name: new RegExp(`Invitation for ${email}`) });
    temporary = await modal.getByTestId("secret-temporary-password").inputValue();
    expect(temporary).not.toBe("");
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    const row = page.getByTestId("people-list").getByRole("row").filter({ hasText: email });
    await expect
      .poll(() =>
        row
          .locator("input")
          .and(page.getByLabel(`Merchant account of ${email}`))
          .inputValue(),
      )
      .toBe("Shop M (shop-m)");
    const users = await http(env, "GET", `/v1/audit?action=user.created&limit=5`, { headers: mk() });
    const created = users.body.data.events.find(
      (e: { changes: { after?: { email?: string } } }) => e.changes.after?.email === email,
    );
    expect(created.changes.after.merchant_account_id).toBe(made["shop-m"]?.account);
    await shoot(page, "merchant-people-invited");
    expect(errors).toEqual([]);
  });

  it("signs them in to a console of account M only", async () => {
    const opened = await newPage(env);
    const theirs = opened.page;
    try {
      await firstSignIn(theirs, email, temporary, { enrol: true });
      await expect.poll(() => theirs.getByTestId("current-merchant-account").textContent()).toBe("Shop M");
      const nav = theirs.getByRole("navigation", { name: "Main" });
      await nav.getByRole("link", { name: "Settings › Access control" }).waitFor();
      for (const hidden of ["Webhooks", "Settings › Leaked keys", "Settings › Expiry policy"]) {
        await expect(nav.getByRole("link", { name: hidden }).count()).resolves.toBe(0);
      }
      await nav.getByRole("link", { name: "Settings › Access control" }).click();
      await expect(theirs.getByRole("tab", { name: "People" }).count()).resolves.toBe(0);
      const list = theirs.getByTestId("api-users-list");
      await list.getByText("Shop M checkout").waitFor();
      await expect(list.getByText("Shop N checkout").count()).resolves.toBe(0);
      await expect(list.getByText("Default").count()).resolves.toBe(0);

      await nav.getByRole("link", { name: "Merchant account" }).click();
      await theirs.getByTestId("merchant-account-card").filter({ hasText: "Shop M" }).waitFor();
      await expect(theirs.getByTestId("merchant-account-card").count()).resolves.toBe(1);
      await expect(theirs.getByRole("button", { name: "Create merchant account" }).count()).resolves.toBe(0);
      // A company page asked for by address is not shown either.
      await theirs.goto("/webhooks");
      await theirs.getByRole("heading", { name: "API keys" }).waitFor();
      await shoot(theirs, "merchant-people-scoped-console");
      expect(opened.errors).toEqual([]);
    } finally {
      await opened.context.close();
    }
  });
});
