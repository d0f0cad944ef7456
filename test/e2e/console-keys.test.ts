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
 * What the key screens promise beyond the main path: a key + secret pair with an expiry and a rate limit,
 * copied with its buttons; the Live / Test switch followed by every screen; a non-default grace period
 * reset to 24 h; rate limits and permissions edited on an API user's page.
 */
describe("console: keys, environments and limits", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  let gateway: string;
  const mk = () => ({ "x-api-key": company.managementKey });
  const rowOf = (id: string) => page.locator(`[data-testid="key-row"][data-key-id="${id}"]`);

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Keys Co");
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

  let testKeyId = "";
  let testKey = "";
  it("creates a test key + secret pair with an expiry and a rate limit, each value copied with its button", async () => {
    // The switch in the header sets the environment of the list and of new keys.
    await page.getByTestId("env-switch").getByText("Test").click();
    await page.getByText("No test keys match.").waitFor();
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    // Switched to Test, the API users offered are test ones, and the key takes its API user's environment.
    await expect(byLabel(dialog, "API user").inputValue()).resolves.toMatch(/^Default test API credential/);
    await expect(dialog.getByTestId("key-environment").textContent()).resolves.toContain("A test key");
    await byLabel(dialog, "Name").fill("Sandbox pair");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    // Typed in the browser's locale (British English here), as every date is shown.
    await byLabel(dialog, "Expires (optional)").fill("01/03/2031, 12:00");
    await dialog.getByRole("switch", { name: /Key \+ secret pair/ }).check();
    await dialog.getByRole("button", { name: "Add a limit" }).click();
    await dialog.getByLabel("Requests allowed by limit 1").fill("10");
    // A second limit on the same window is refused as it is made, and the key cannot be created.
    await dialog.getByRole("button", { name: "Add a limit" }).click();
    await dialog.getByLabel("Window of limit 2").click();
    await page.getByRole("option", { name: "second", exact: true }).click();
    await dialog.getByText('two limits share the window "1s"').waitFor();
    await expect(dialog.getByRole("button", { name: "Create key" }).isDisabled()).resolves.toBe(true);
    await dialog.getByRole("button", { name: "Remove limit 2" }).click();
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create key" }).click();

    const modal = page.getByRole("dialog", { name: /API key “Sandbox pair” created/ });
    await modal.getByText("This is the only time these values are shown").waitFor();
    testKey = await modal.getByTestId("secret-api-key").inputValue();
    const secret = await modal.getByTestId("secret-api-secret").inputValue();
    expect(testKey).toMatch(/^lk_test_sk_/);
    expect(secret.length).toBeGreaterThan(20);
    await modal.getByRole("button", { name: "Copy api key" }).click();
    await expect(page.evaluate(() => navigator.clipboard.readText())).resolves.toBe(testKey);
    await modal.getByRole("button", { name: "Copy api secret" }).click();
    await expect(page.evaluate(() => navigator.clipboard.readText())).resolves.toBe(secret);
    // The close button asks for the same confirmation as Done.
    await modal.getByRole("button", { name: "Close" }).click();
    await modal.getByText("Confirm you have stored it").waitFor();
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });

    const row = page.getByTestId("key-row").filter({ hasText: "Sandbox pair" });
    testKeyId = (await row.getAttribute("data-key-id")) ?? "";
    await expect.poll(() => row.textContent()).toContain("Limit: 10 per second");
    const text = await row.textContent();
    expect(text).toContain("Test");
    expect(text).toContain("never");
    expect(text).toContain("01/03/2031, 12:00");
    const key = await http(env, "GET", `/v1/keys/${testKeyId}`, { headers: mk() });
    expect(key.body.data).toMatchObject({
      environment: "test",
      has_secret: true,
      rate_limits: [{ limit: 10, window: "1s" }],
    });
    expect(new Date(key.body.data.expires_at).getFullYear()).toBe(2031);
    const verified = await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key: testKey, secret, ip: "192.0.2.1", environment: "test" },
    });
    expect(verified.body.data).toMatchObject({ valid: true, key_id: testKeyId });
    const withoutSecret = await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key: testKey, ip: "192.0.2.1", environment: "test" },
    });
    expect(withoutSecret.body.data.valid).toBe(false);
  });

  it("the Live / Test switch holds on every screen and across a reload", async () => {
    await page.getByRole("link", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "Usage", exact: true }).waitFor();
    await expect(page.getByRole("main").getByText("Test", { exact: true }).first().isVisible()).resolves.toBe(
      true,
    );
    await expect(page.getByRole("heading", { name: "Sandbox pair" }).isVisible()).resolves.toBe(true);
    await expect(page.getByText("Management key").count()).resolves.toBe(0);

    await page.getByRole("link", { name: "Settings › Access control" }).click();
    await page.getByRole("link", { name: "Default test API credential" }).click();
    await rowOf(testKeyId).waitFor();
    await expect(page.getByTestId("key-row").filter({ hasText: "Management key" }).count()).resolves.toBe(0);
    await page.reload();
    await rowOf(testKeyId).waitFor();

    await page.getByRole("link", { name: "API keys" }).click();
    await rowOf(testKeyId).waitFor();
    await page.getByTestId("env-switch").getByText("Live").click();
    await page.getByTestId("key-row").filter({ hasText: "Management key" }).waitFor();
    await expect(rowOf(testKeyId).count()).resolves.toBe(0);
    await page.getByTestId("env-switch").getByText("Test").click();
    await rowOf(testKeyId).waitFor();
  });

  it("switched to Test, the console lists and creates test API users only, and a live one is not found", async () => {
    const credentialOf = async (id: string) =>
      (await http(env, "GET", `/v1/credentials/${id}`, { headers: mk() })).body.data;
    await page.getByRole("link", { name: "Settings › Access control" }).click();
    const list = page.getByTestId("api-users-list");
    await list.getByRole("link", { name: "Default test API credential" }).waitFor();
    await expect(list.getByRole("link", { name: "Default API credential" }).count()).resolves.toBe(0);
    // One badge per row, each saying Test.
    const badges = await list.locator("tbody tr td:nth-child(2)").allTextContents();
    expect(badges.length).toBeGreaterThan(0);
    expect(new Set(badges)).toEqual(new Set(["Test"]));

    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await expect(dialog.getByTestId("api-user-environment").textContent()).resolves.toContain(
      "A test API user, because the console is switched to Test",
    );
    await byLabel(dialog, "Name").fill("Sandbox payouts");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await shoot(page, "25-create-test-api-user", { fullPage: false });
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await page.getByRole("heading", { name: "Sandbox payouts" }).waitFor();
    const credId = page.url().split("/").pop() ?? "";
    expect(await credentialOf(credId)).toMatchObject({ name: "Sandbox payouts", environment: "test" });

    // Its key is a test key: the dialog says so and offers no other choice.
    await page.getByRole("button", { name: "Create API key" }).click();
    const keyDialog = page.getByRole("dialog", { name: "Create API key" });
    await expect(keyDialog.getByTestId("key-environment").textContent()).resolves.toContain(
      "A test key: a key belongs to its API user's environment, and “Sandbox payouts” is a test API user.",
    );
    await expect(keyDialog.getByRole("radio", { name: "Live" }).count()).resolves.toBe(0);
    await byLabel(keyDialog, "Name").fill("Sandbox payouts key");
    await keyDialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await keyDialog.getByTestId("totp-code").fill(factor.next());
    await keyDialog.getByRole("button", { name: "Create key" }).click();
    const modal = page.getByRole("dialog", { name: /API key “Sandbox payouts key” created/ });
    await expect(modal.getByTestId("secret-api-key").inputValue()).resolves.toMatch(/^lk_test_sk_/);
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    const keys = await http(env, "GET", `/v1/keys?credential_id=${credId}`, { headers: mk() });
    expect(keys.body.data.keys).toMatchObject([{ name: "Sandbox payouts key", environment: "test" }]);

    // The audit log, switched to Test, has the test API user's creation and no sign-in.
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByTestId("audit-environment").waitFor();
    const actions = page.getByTestId("audit-row");
    await actions.first().waitFor();
    const seen = await actions.evaluateAll((els) => els.map((e) => e.getAttribute("data-action")));
    expect(seen).toContain("credential.created");
    expect(seen).not.toContain("user.login");

    // Every request says Test, so a live API user is not there, however it is reached.
    await page.goto(`/api-users/${company.defaultCredentialId}`);
    await page.getByText("It no longer exists, or belongs to another company.").waitFor();
    await page.getByTestId("other-environment-hint").waitFor();
    await page.getByTestId("env-switch").getByText("Live").click();
    await page.getByRole("heading", { name: "Default API credential" }).waitFor();
    await page.getByRole("link", { name: "‹ Access control" }).click();
    await list.getByRole("link", { name: "Default API credential" }).waitFor();
    await expect(list.getByRole("link", { name: "Sandbox payouts" }).count()).resolves.toBe(0);
    await shoot(page, "26-live-api-users");
    await page.getByTestId("env-switch").getByText("Test").click();
    await list.getByRole("link", { name: "Sandbox payouts" }).waitFor();
    expect(errors).toEqual([]);
  });

  it("rotates with a one-hour grace, then gives the old key 24 hours again", async () => {
    await page.goto("/keys");
    await rowOf(testKeyId)
      .getByRole("button", { name: /Actions for/ })
      .click();
    await page.getByRole("menuitem", { name: "Rotate…" }).click();
    const dialog = page.getByRole("dialog", { name: /Rotate “Sandbox pair”/ });
    await byLabel(dialog, "Grace period for the old key").click();
    await page.getByRole("option", { name: "1 hour" }).click();
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Rotate key" }).click();
    const modal = page.getByRole("dialog", { name: "Your new API key" });
    await modal.getByText(/The old key works until/).waitFor();
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    const countdown = rowOf(testKeyId).getByTestId("grace-countdown");
    await expect.poll(() => countdown.textContent()).toMatch(/ends in (59|60) min/);

    await rowOf(testKeyId).getByRole("button", { name: "Reset to 24 h" }).click();
    const reset = page.getByRole("dialog", { name: /Give “Sandbox pair” 24 more hours/ });
    await reset.getByTestId("totp-code").fill(factor.next());
    await reset.getByRole("button", { name: "Reset to 24 h" }).click();
    await reset.waitFor({ state: "hidden" });
    await expect.poll(() => countdown.textContent()).toMatch(/ends in 2[34] h/);
    const old = await http(env, "GET", `/v1/keys/${testKeyId}`, { headers: mk() });
    const left = new Date(old.body.data.expires_at).getTime() - Date.now();
    expect(left).toBeGreaterThan(23.9 * 3_600_000);
    expect(left).toBeLessThanOrEqual(24 * 3_600_000);
    const audit = await http(env, "GET", "/v1/audit?action=key.expiry_reset", { headers: mk() });
    expect(audit.body.data.events).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it("edits an API user's shared rate limits and a key's own limits", async () => {
    const made = await http(env, "POST", "/v1/credentials", {
      headers: mk(),
      json: { name: "Reporting", permissions: ["payment_statement:read"] },
    });
    const credId = made.body.data.id as string;
    // A live API user: switched to Test, the console would not find it.
    await page.getByTestId("env-switch").getByText("Live").click();
    await page.goto(`/api-users/${credId}`);
    const card = page.getByTestId("rate-limits-card");
    await card.getByText("No limit.").waitFor();
    // An address typed in the allowed-IP card, not yet saved, outlives saving the other cards.
    const ipInput = byLabel(page.getByTestId("ip-card"), "Add an address or range");
    await ipInput.fill("198.51.100.9");
    await card.getByRole("button", { name: "Add a limit" }).click();
    await card.getByLabel("Requests allowed by limit 1").fill("1000");
    await card.getByLabel("Window of limit 1").click();
    await page.getByRole("option", { name: "minute", exact: true }).click();
    await card.getByRole("button", { name: "Save rate limits" }).click();
    await card.getByText("Rate limits saved.").waitFor();
    let cred = await http(env, "GET", `/v1/credentials/${credId}`, { headers: mk() });
    expect(cred.body.data.rate_limits).toEqual([{ limit: 1000, window: "1m" }]);

    // The permissions editor saves in place: a whole scope at once from its preset.
    const payments = page.getByTestId("group-payments");
    await payments.getByRole("button", { name: "Write" }).click();
    await expect.poll(() => payments.getByTestId("group-state-payments").textContent()).toBe("Write");
    await page.getByRole("button", { name: "Save permissions" }).click();
    await page.getByText("Saved", { exact: true }).waitFor();
    cred = await http(env, "GET", `/v1/credentials/${credId}`, { headers: mk() });
    expect(cred.body.data.permission_summary.payments).toBe("write");
    await expect(ipInput.inputValue()).resolves.toBe("198.51.100.9");
    await ipInput.fill("");
    await shoot(page, "23-api-user-limits");

    // A key's own limits, from its row's menu.
    const key = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: {
        name: "Nightly report",
        environment: "live",
        credential_id: credId,
        permissions: cred.body.data.permissions.slice(0, 1),
      },
    });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const keyId = key.body.data.id as string;
    await page.reload();
    await rowOf(keyId)
      .getByRole("button", { name: /Actions for/ })
      .click();
    await page.getByRole("menuitem", { name: "Rate limits…" }).click();
    const dialog = page.getByRole("dialog", { name: /Rate limits of “Nightly report”/ });
    await dialog.getByRole("button", { name: "Add a limit" }).click();
    await dialog.getByLabel("Requests allowed by limit 1").fill("5");
    await dialog.getByRole("button", { name: "Save rate limits" }).click();
    await dialog.waitFor({ state: "hidden" });
    await expect.poll(() => rowOf(keyId).textContent()).toContain("Limit: 5 per second");
    const saved = await http(env, "GET", `/v1/keys/${keyId}`, { headers: mk() });
    expect(saved.body.data.rate_limits).toEqual([{ limit: 5, window: "1s" }]);
    expect(errors).toEqual([]);
  });
});
