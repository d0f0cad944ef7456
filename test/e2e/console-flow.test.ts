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
  type SecondFactor,
  shoot,
  startConsole,
  verifyKey,
} from "./console-helpers.ts";

/**
 * The end-to-end path in a real Chromium against a real server on an embedded store: sign in
 * with 2FA, an API user from the Read-only preset made Custom, a live key with an IP range seen once and
 * verified, rotated, the old key expired now, the new one revoked, and every step in the audit log.
 */
describe("console: the key life cycle in a browser", () => {
  let env: Env;
  let company: Company;
  let gateway: string;
  let page: Page;
  let errors: string[];
  let factor: SecondFactor;

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env);
    gateway = await verifyKey(env);
    ({ page, errors } = await newPage(env));
  });
  afterAll(async () => {
    await env?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  const verify = async (key: string, ip: string) =>
    (
      await http(env, "POST", "/v1/verify", {
        headers: { "x-api-key": gateway },
        json: { key, ip, environment: "live" },
      })
    ).body.data;

  /** Opens a key row's action menu and picks an item. */
  const keyAction = async (keyId: string, item: string) => {
    await page
      .locator(`[data-testid="key-row"][data-key-id="${keyId}"]`)
      .getByRole("button", { name: /Actions for/ })
      .click();
    await page.getByRole("menuitem", { name: item }).click();
  };

  it("serves the console with a strict CSP and keeps API 404s as JSON", async () => {
    const res = await fetch(`${env.url}/settings/access`, { headers: { accept: "text/html" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await res.text()).toContain('<div id="root">');
    const api = await fetch(`${env.url}/v1/nothing-here`, { headers: { accept: "text/html" } });
    expect(api.status).toBe(404);
    expect((await api.json()).error.code).toBe("ROUTE_NOT_FOUND");
  });

  it("first sign-in: password change, 2FA enrolment with QR and recovery codes", async () => {
    await page.goto("/");
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await shoot(page, "00-sign-in");
    factor = (await firstSignIn(page, company.ownerEmail, company.temporaryPassword, {
      enrol: true,
      shots: true,
    })) as SecondFactor;
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });

  it("signs out and back in with password and a TOTP code", async () => {
    await page.getByRole("button", { name: /^Account:/ }).click();
    await page.getByRole("menuitem", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await byLabel(page, "Email").fill(company.ownerEmail);
    await byLabel(page, "Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Two-factor code" }).waitFor();
    await shoot(page, "04-sign-in-2fa");
    await byLabel(page, "Authentication code").fill(factor.next());
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });

  let credentialId = "";
  it("creates an API user from the Read-only preset, one entity switched makes the group Custom", async () => {
    await page.getByRole("link", { name: "Settings › Access control" }).click();
    await page.getByRole("heading", { name: "Access control" }).waitFor();
    await page.getByTestId("api-users-list").getByText("Default").first().waitFor();
    await shoot(page, "05-api-users");
    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await byLabel(dialog, "Name").fill("Payout service");
    await byLabel(dialog, "Description").fill("Sends payouts from the ledger");
    const payments = dialog.getByTestId("group-payments");
    await payments.getByRole("button", { name: "Read-only" }).click();
    await expect.poll(() => payments.getByTestId("group-state-payments").textContent()).toBe("Read-only");
    await expect(
      payments.getByRole("checkbox", { name: "Payment transaction: View" }).isChecked(),
    ).resolves.toBe(true);
    await payments.getByRole("checkbox", { name: "Payment transaction: Edit" }).check();
    await expect.poll(() => payments.getByTestId("group-state-payments").textContent()).toBe("Custom");
    // The search narrows the matrix to matching entities.
    await byLabel(dialog, "Search permissions").fill("statement");
    await expect
      .poll(() => dialog.getByRole("checkbox", { name: "Payment transaction: View" }).count())
      .toBe(0);
    await shoot(page, "06-create-api-user", { fullPage: false });
    await byLabel(dialog, "Search permissions").fill("");
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await page.getByRole("heading", { name: "Payout service" }).waitFor();
    credentialId = page.url().split("/").pop() ?? "";
    expect(credentialId).toMatch(/^cred_/);
    const cred = await http(env, "GET", `/v1/credentials/${credentialId}`, {
      headers: { "x-api-key": company.managementKey },
    });
    expect(cred.body.data.permission_summary.payments).toBe("custom");
    expect(cred.body.data.permissions).toContain("payment_transaction:write");
    await expect(byLabel(page, "Username").inputValue()).resolves.toMatch(/^ws_\d+@Company\./);
    await shoot(page, "07-api-user-detail");
  });

  let liveKey = "";
  let liveKeyId = "";
  it("creates a live key with an IP range and shows it exactly once", async () => {
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await byLabel(dialog, "Name").fill("Payouts prod");
    // The key takes its API user's environment, which the dialog shows.
    await expect(dialog.getByTestId("key-environment").textContent()).resolves.toBe(
      "LiveA live key: a key belongs to its API user's environment, and “Payout service” is a live API user.",
    );
    // Never more than the API user holds: what it lacks cannot be ticked.
    await expect(dialog.getByTestId("group-merchant").count()).resolves.toBe(0);
    // A new key starts with nothing; a scope's preset is one click.
    const payments = dialog.getByTestId("group-payments");
    await expect(payments.getByTestId("group-state-payments").textContent()).resolves.toBe("No access");
    await payments.getByRole("button", { name: "Read-only" }).click();
    await expect.poll(() => payments.getByTestId("group-state-payments").textContent()).toBe("Read-only");
    await byLabel(dialog, "Allowed IPs for this key").fill("203.0.113.0/24");
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await dialog.getByTestId("ip-list").getByText("203.0.113.0/24").waitFor();
    await dialog.getByTestId("totp-code").fill(factor.next());
    await shoot(page, "08-create-key", { fullPage: false });
    await dialog.getByRole("button", { name: "Create key" }).click();

    const modal = page.getByRole("dialog", { name: /API key “Payouts prod” created/ });
    await modal.waitFor();
    await modal.getByText("This is the only time").waitFor();
    // Focus moves into the modal.
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.closest("[role=dialog]")?.textContent ?? ""))
      .toContain("Payouts prod");
    liveKey = await modal.getByTestId("secret-api-key").inputValue();
    expect(liveKey).toMatch(/^lk_live_sk_/);
    await shoot(page, "09-show-once", { fullPage: false });
    // Escape does not close it before the confirmation.
    await page.keyboard.press("Escape");
    await modal.getByText("Confirm you have stored it").waitFor();
    await expect(modal.isVisible()).resolves.toBe(true);
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });
    // Once closed, the key is nowhere on the page.
    const row = page.getByTestId("key-row").filter({ hasText: "Payouts prod" });
    await row.waitFor();
    liveKeyId = (await row.getAttribute("data-key-id")) ?? "";
    expect(await page.content()).not.toContain(liveKey);
    await expect(row.textContent()).resolves.toContain(liveKey.slice(0, 16));
  });

  it("the key verifies through /v1/verify from the range and not from outside it", async () => {
    expect(await verify(liveKey, "203.0.113.7")).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: liveKeyId,
    });
    expect(await verify(liveKey, "198.51.100.1")).toMatchObject({ valid: false, code: "IP_NOT_ALLOWED" });
  });

  let rotatedKey = "";
  let rotatedKeyId = "";
  it("rotates with the 24 h default, and the old key counts down its grace", async () => {
    await keyAction(liveKeyId, "Rotate…");
    const dialog = page.getByRole("dialog", { name: /Rotate “Payouts prod”/ });
    await expect(byLabel(dialog, "Grace period for the old key").inputValue()).resolves.toBe(
      "24 hours (default)",
    );
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Rotate key" }).click();
    const modal = page.getByRole("dialog", { name: "Your new API key" });
    rotatedKey = await modal.getByTestId("secret-api-key").inputValue();
    expect(rotatedKey).toMatch(/^lk_live_sk_/);
    expect(rotatedKey).not.toBe(liveKey);
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });
    const oldRow = page.locator(`[data-testid="key-row"][data-key-id="${liveKeyId}"]`);
    await expect
      .poll(() => oldRow.getByTestId("grace-countdown").textContent())
      .toMatch(/ends in 23 h 59 min/);
    const rows = page.getByTestId("key-row");
    await expect.poll(() => rows.count()).toBe(2);
    for (const id of await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-key-id")))) {
      if (id && id !== liveKeyId) rotatedKeyId = id;
    }
    expect(await verify(liveKey, "203.0.113.7")).toMatchObject({ valid: true });
    expect(await verify(rotatedKey, "203.0.113.7")).toMatchObject({ valid: true, key_id: rotatedKeyId });
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByTestId("grace-countdown").waitFor();
    await shoot(page, "10-keys-in-grace");
    // Filters: by status, and by name or prefix.
    await page
      .locator("input")
      .and(page.getByLabel("Status", { exact: true }))
      .click();
    await page.getByRole("option", { name: "Revoked" }).click();
    await page.getByText("No live keys match.").waitFor();
    await page
      .locator("input")
      .and(page.getByLabel("Status", { exact: true }))
      .click();
    await page.getByRole("option", { name: "All" }).click();
    await byLabel(page, "Search").fill("Management");
    await expect.poll(() => page.getByTestId("key-row").count()).toBe(1);
    await byLabel(page, "Search").fill("");
    await page.goBack();
    await page.getByRole("heading", { name: "Payout service" }).waitFor();
  });

  it("expires the old key now", async () => {
    const oldRow = page.locator(`[data-testid="key-row"][data-key-id="${liveKeyId}"]`);
    await oldRow.getByRole("button", { name: "Expire now" }).click();
    const dialog = page.getByRole("dialog", { name: /Expire “Payouts prod” now/ });
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Expire now" }).click();
    await dialog.waitFor({ state: "hidden" });
    await expect.poll(() => oldRow.textContent()).toMatch(/expired/i);
    expect(await verify(liveKey, "203.0.113.7")).toMatchObject({ valid: false, code: "EXPIRED" });
    expect(await verify(rotatedKey, "203.0.113.7")).toMatchObject({ valid: true });
  });

  it("revokes the new key after a confirmation that names it", async () => {
    await keyAction(rotatedKeyId, "Revoke…");
    const dialog = page.getByRole("dialog", { name: /Revoke “Payouts prod”\?/ });
    await dialog.getByText("stops working on its next request").waitFor();
    await dialog.getByTestId("totp-code").fill(factor.next());
    await shoot(page, "11-revoke", { fullPage: false });
    await dialog.getByRole("button", { name: "Revoke Payouts prod" }).click();
    await dialog.waitFor({ state: "hidden" });
    const row = page.locator(`[data-testid="key-row"][data-key-id="${rotatedKeyId}"]`);
    await expect.poll(() => row.textContent()).toMatch(/revoked/i);
    expect(await verify(rotatedKey, "203.0.113.7")).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("finds every step in the audit log, with before/after in the drawer", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    const rows = page.getByTestId("audit-row");
    await rows.first().waitFor();
    const actions = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-action")));
    for (const a of [
      "user.password_changed",
      "user.totp_enrolled",
      "user.login",
      "credential.created",
      "key.created",
      "key.rotated",
      "key.expired_now",
      "key.revoked",
    ]) {
      expect(actions, a).toContain(a);
    }
    await shoot(page, "12-audit-log");
    await page.getByRole("combobox", { name: "Action" }).fill("key.*");
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect
      .poll(async () =>
        (await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-action")))).join(","),
      )
      // The company's management key, created at bootstrap, is the last (oldest) key.created.
      .toBe("key.revoked,key.expired_now,key.rotated,key.created,key.created");
    await rows.filter({ hasText: "key.revoked" }).getByRole("button", { name: "Details" }).click();
    const drawer = page.getByTestId("audit-drawer");
    await expect.poll(() => drawer.getByTestId("audit-before").textContent()).toContain('"status": "active"');
    await expect(drawer.getByTestId("audit-after").textContent()).resolves.toContain('"status": "revoked"');
    await shoot(page, "13-audit-drawer", { fullPage: false });
    await page.keyboard.press("Escape");
    await drawer.waitFor({ state: "hidden" });
    // Actor and time filters.
    await page.getByRole("button", { name: "Clear" }).click();
    await byLabel(page, "Actor").fill(company.ownerEmail);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect
      .poll(
        async () => new Set(await rows.evaluateAll((els) => els.map((e) => e.children[1]?.textContent))).size,
      )
      .toBe(1);
    await byLabel(page, "From").fill("01/01/2099, 00:00");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("No events match.").waitFor();
  });

  it("shows a key's requests per day and where it was last used, deep-linked", async () => {
    await page.goto(`/usage/${liveKeyId}`);
    await page.getByRole("heading", { name: "Usage", exact: true }).waitFor();
    await expect.poll(() => page.getByTestId("usage-last-ip").textContent()).toBe("203.0.113.7");
    await expect
      .poll(async () => Number(await page.getByTestId("usage-total").textContent()))
      .toBeGreaterThan(0);
    await page.locator(".recharts-bar-rectangle path").first().waitFor({ state: "attached" });
    await shoot(page, "14-usage");
  });

  it("invites a person, whose temporary password is shown once", async () => {
    await page.getByRole("link", { name: "Settings › Access control" }).click();
    await page.getByRole("tab", { name: "People" }).click();
    await page.getByTestId("people-list").getByText(company.ownerEmail).waitFor();
    await page.getByRole("button", { name: "Invite person" }).click();
    const dialog = page.getByRole("dialog", { name: "Invite a person" });
    await byLabel(dialog, "Email").fill("dev@acme.example");
    await dialog.getByRole("button", { name: "Invite" }).click();
    const modal = page.getByRole("dialog", { name: /Invitation for dev@acme.example/ });
    await expect(modal.getByTestId("secret-temporary-password").inputValue()).resolves.not.toBe("");
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await page.getByTestId("people-list").getByText("dev@acme.example").waitFor();
    // The role is changed in place.
    await page
      .locator("input")
      .and(page.getByLabel("Role of dev@acme.example", { exact: true }))
      .click();
    await page.getByRole("option", { name: "Viewer" }).click();
    await expect
      .poll(async () => {
        const users = await http(env, "GET", "/v1/audit?action=user.role_changed", {
          headers: { "x-api-key": company.managementKey },
        });
        return users.body.data?.events?.length ?? 0;
      })
      .toBe(1);
    await shoot(page, "15-people");
    // Disabling asks first, says what it does, and the person can no longer sign in.
    const devRow = page.getByTestId("people-list").getByRole("row").filter({ hasText: "dev@acme.example" });
    await devRow.getByRole("button", { name: "Disable" }).click();
    const confirm = page.getByRole("dialog", { name: "Disable dev@acme.example?" });
    await confirm.getByText("signed out everywhere").waitFor();
    await confirm.getByRole("button", { name: "Disable" }).click();
    await expect.poll(() => devRow.textContent()).toContain("disabled");
    await devRow.getByRole("button", { name: "Enable" }).waitFor();
    const users = await http(env, "GET", "/v1/audit?action=user.disabled", {
      headers: { "x-api-key": company.managementKey },
    });
    expect(users.body.data.events).toHaveLength(1);
    expect(errors).toEqual([]);
  });
});
