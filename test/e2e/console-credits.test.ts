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
 * Credits and metadata in the console: a key created with credits, a monthly refill, an external id and
 * meta JSON (refused while it is not valid JSON), shown in the keys list, spent through /v1/verify, and
 * changed in its Credits and metadata dialog.
 */
describe("console: credits and metadata", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let gateway: string;
  const mk = () => ({ "x-api-key": company.managementKey });

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Credits Co");
    gateway = await verifyKey(env);
    ({ factor } = await readyOwner(env, company));
    ({ page } = await newPage(env));
    await signIn(page, company.ownerEmail, PASSWORD, factor);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });
  afterAll(async () => {
    await env?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  it("creates a key with credits, a refill, an external id and meta, and shows and edits them", async () => {
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await byLabel(dialog, "Name").fill("Metered");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await byLabel(dialog, "Credits (optional)").fill("2");
    await dialog.getByRole("switch", { name: "Refill credits each day or month" }).check();
    await byLabel(dialog, "Refill to").fill("100");
    await byLabel(dialog, "External id (optional)").fill("acct_1");
    // Not JSON yet: said under the field, and the key cannot be created.
    await byLabel(dialog, "Meta (optional JSON object)").fill('{"plan": ');
    await dialog.getByText("Not valid JSON.").waitFor();
    await expect(dialog.getByRole("button", { name: "Create key" }).isDisabled()).resolves.toBe(true);
    await byLabel(dialog, "Meta (optional JSON object)").fill('{"plan": "pro"}');
    await shoot(page, "create-key-credits", { fullPage: false });
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create key" }).click();

    const modal = page.getByRole("dialog", { name: /API key “Metered” created/ });
    const key = await modal.getByTestId("secret-api-key").inputValue();
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });

    const row = page.getByTestId("key-row").filter({ hasText: "Metered" });
    const id = (await row.getAttribute("data-key-id")) ?? "";
    await expect
      .poll(() => row.getByTestId("key-credits").textContent())
      .toBe("Credits: 2 left, set to 100 each month · External id: acct_1");
    const verified = await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key },
    });
    expect(verified.body.data).toMatchObject({
      valid: true,
      remaining: 1,
      meta: { plan: "pro" },
      external_id: "acct_1",
    });

    await page.reload();
    await expect.poll(() => row.getByTestId("key-credits").textContent()).toContain("Credits: 1 left");
    await row.getByRole("button", { name: "Actions for Metered" }).click();
    await page.getByRole("menuitem", { name: "Credits and metadata…" }).click();
    const edit = page.getByRole("dialog", { name: "Credits and metadata of “Metered”" });
    await expect(byLabel(edit, "Credits (optional)").inputValue()).resolves.toBe("1");
    await expect(byLabel(edit, "Meta (optional JSON object)").inputValue()).resolves.toContain(
      '"plan": "pro"',
    );
    await byLabel(edit, "Credits (optional)").fill("50");
    await byLabel(edit, "Meta (optional JSON object)").fill('{"plan": "team"}');
    await shoot(page, "key-credits-dialog", { fullPage: false });
    await edit.getByRole("button", { name: "Save" }).click();
    await edit.waitFor({ state: "hidden" });
    await expect.poll(() => row.getByTestId("key-credits").textContent()).toContain("Credits: 50 left");
    const view = await http(env, "GET", `/v1/keys/${id}`, { headers: mk() });
    expect(view.body.data).toMatchObject({
      remaining: 50,
      refill: { amount: 100, interval: "month" },
      meta: { plan: "team" },
      external_id: "acct_1",
    });
  });
});
