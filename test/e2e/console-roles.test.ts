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
  readyOwner,
  shoot,
  startConsole,
} from "./console-helpers.ts";

/** Every screen offers only what the signed-in person's role may do (the API refuses the rest anyway). */
describe("console: role-aware screens", () => {
  let env: Env;
  let company: Company;
  let page: Page | undefined;
  let liveKeyId = "";
  let testKeyId = "";

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Role Co");
    const mk = { "x-api-key": company.managementKey };
    const live = await http(env, "POST", "/v1/keys", {
      headers: mk,
      json: {
        name: "Live integration",
        environment: "live",
        credential_id: company.defaultCredentialId,
        preset: "read_only",
      },
    });
    const test = await http(env, "POST", "/v1/keys", {
      headers: mk,
      json: {
        name: "Sandbox",
        environment: "test",
        credential_id: company.defaultTestCredentialId,
        preset: "read_only",
      },
    });
    liveKeyId = live.body.data.id;
    testKeyId = test.body.data.id;
  });
  afterAll(async () => {
    await env?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  let viewerPassword = "";
  let developerPassword = "";
  it("sets up a viewer and a developer", async () => {
    const { session } = await readyOwner(env, company);
    const v = await session.call("POST", "/v1/users", { email: "viewer@role.example", role: "viewer" });
    const d = await session.call("POST", "/v1/users", { email: "developer@role.example", role: "developer" });
    viewerPassword = v.body.data.temporary_password;
    developerPassword = d.body.data.temporary_password;
    expect(viewerPassword && developerPassword).toBeTruthy();
  });

  it("a viewer (who may skip 2FA) sees keys but no create, rotate, revoke, audit or people", async () => {
    const opened = await newPage(env);
    page = opened.page;
    await firstSignIn(page, "viewer@role.example", viewerPassword, { enrol: false });
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.locator(`[data-key-id="${liveKeyId}"]`).waitFor();
    await expect(page.getByRole("button", { name: "Create API key" }).count()).resolves.toBe(0);
    await expect(page.getByRole("link", { name: "Audit log" }).count()).resolves.toBe(0);
    await page.getByRole("button", { name: "Actions for Live integration" }).click();
    await page.getByRole("menuitem", { name: "View usage" }).waitFor();
    await expect(page.getByRole("menuitem", { name: /Rotate|Revoke/ }).count()).resolves.toBe(0);
    await page.keyboard.press("Escape");
    await shoot(page, "16-viewer-keys");

    await page.getByRole("link", { name: "Settings › Access control" }).click();
    await page.getByTestId("api-users-list").getByText("Default API credential").first().waitFor();
    await expect(page.getByRole("tab", { name: "People" }).count()).resolves.toBe(0);
    await expect(page.getByRole("button", { name: "Create API user" }).count()).resolves.toBe(0);
    await page.getByRole("link", { name: "Default API credential" }).click();
    await page.getByRole("heading", { name: "Permissions" }).waitFor();
    for (const name of [
      "Deactivate",
      "Save permissions",
      "Generate password",
      "Generate new password",
      "Add a limit",
    ]) {
      await expect(page.getByRole("button", { name }).count(), name).resolves.toBe(0);
    }
    await expect(
      page.getByRole("checkbox", { name: "Payment transaction: View" }).isDisabled(),
    ).resolves.toBe(true);
    await expect(byLabel(page, "Add an address or range").isDisabled()).resolves.toBe(true);
    await shoot(page, "17-viewer-api-user");
    expect(opened.errors).toEqual([]);
    await opened.context.close();
  });

  it("a developer creates test keys only, and cannot rotate or revoke live ones", async () => {
    const opened = await newPage(env);
    page = opened.page;
    await firstSignIn(page, "developer@role.example", developerPassword, { enrol: true });
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByText("Developers can see live keys").waitFor();
    await page.getByRole("button", { name: "Actions for Live integration" }).click();
    await page.getByRole("menuitem", { name: "View usage" }).waitFor();
    await expect(page.getByRole("menuitem", { name: /Rotate|Revoke/ }).count()).resolves.toBe(0);
    await page.keyboard.press("Escape");

    // Live keys belong to live API users, which a developer issues no keys for.
    await expect(page.getByRole("button", { name: "Create API key" }).isDisabled()).resolves.toBe(true);

    await page.getByTestId("env-switch").getByText("Test").click();
    await page.locator(`[data-key-id="${testKeyId}"]`).waitFor();
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await expect(dialog.getByTestId("key-environment").textContent()).resolves.toContain(
      "A test key: a key belongs to its API user's environment",
    );
    await expect(dialog.getByTestId("key-environment").textContent()).resolves.toContain(
      "Developers create test keys only.",
    );
    // Latchkey's own management permissions are never offered to a developer's key.
    await expect(dialog.getByTestId("group-latchkey").count()).resolves.toBe(0);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    await expect(page.locator(`[data-key-id="${liveKeyId}"]`).count()).resolves.toBe(0);
    await page.getByRole("button", { name: "Actions for Sandbox" }).click();
    await page.getByRole("menuitem", { name: "Rotate…" }).waitFor();
    await page.getByRole("menuitem", { name: "Revoke…" }).waitFor();
    await page.keyboard.press("Escape");
    // The menu fades out; the screenshot (and its contrast check) is of the page, not the fading menu.
    await page.getByRole("menuitem", { name: "Revoke…" }).waitFor({ state: "hidden" });
    await expect(page.getByRole("link", { name: "Audit log" }).count()).resolves.toBe(0);
    await shoot(page, "18-developer-test-keys");
    expect(opened.errors).toEqual([]);
    await opened.context.close();
  });
});
