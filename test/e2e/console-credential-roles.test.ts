import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
  shoot,
  signIn,
  startConsole,
  verifyKey,
} from "./console-helpers.ts";

/** A platform whose actions carry routes, so /v1/authorize can answer for them, and roles over them. */
const CATALOG = {
  groups: [
    {
      id: "money",
      name: "Money movement",
      entities: [
        {
          id: "payin",
          name: "Pay-in",
          actions: [
            { id: "read", routes: ["GET /v1/payins"] },
            { id: "create", routes: ["POST /v1/payins"] },
          ],
        },
        {
          id: "payout",
          name: "Payout",
          actions: [
            { id: "read", routes: ["GET /v1/payouts"] },
            { id: "create", routes: ["POST /v1/payouts"] },
          ],
        },
        { id: "statement", name: "Statement", actions: [{ id: "read", routes: ["GET /v1/statements"] }] },
      ],
    },
  ],
  roles: [
    {
      id: "checkout",
      name: "Checkout role",
      description: "Take payments.",
      permissions: ["payin:read", "payin:create"],
    },
    {
      id: "payouts",
      name: "Payouts role",
      description: "Send money out.",
      permissions: ["payout:read", "payout:create", "statement:read"],
    },
    {
      id: "reporting",
      name: "Read-only reporting role",
      permissions: ["payin:read", "payout:read", "statement:read"],
    },
  ],
};

/**
 * Roles as the Adyen doc has them: found with a search box, enabled with a checkbox, at least one role
 * or permission before saving; and the two username formats chosen when an API user is made.
 */
describe("console: API user roles and username formats", () => {
  let env: Env;
  let dir: string;
  let company: Company;
  let page: Page;
  let errors: string[];
  const mk = () => ({ "x-api-key": company.managementKey });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-e2e-roles-"));
    const catalogPath = join(dir, "catalog.json");
    writeFileSync(catalogPath, JSON.stringify(CATALOG));
    env = await startConsole({ catalogPath });
    company = await createCompany(env, "Roles Co");
    const { factor } = await readyOwner(env, company);
    ({ page, errors } = await newPage(env));
    await signIn(page, company.ownerEmail, PASSWORD, factor);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  });
  afterAll(async () => {
    await env?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  let credentialId = "";
  it("refuses an API user with no role and no permission before sending it, then creates one", async () => {
    await page.goto("/settings/access");
    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await byLabel(dialog, "Name").fill("Payout service");
    await byLabel(dialog, "Email for notices").fill("Payouts-Team@Acme.Example");
    await dialog.getByRole("button", { name: "Create API user" }).click();
    const roles = dialog.getByTestId("roles-field");
    await roles.getByRole("alert").getByText("Enable at least one role").waitFor();
    // Nothing was sent: the company still has only its two default API users.
    const listed = await http(env, "GET", "/v1/credentials?limit=100", { headers: mk() });
    expect(listed.body.data.credentials.map((c: { name: string }) => c.name)).not.toContain("Payout service");
    // One single permission is enough.
    await dialog.locator('[data-permission="statement:read"]').check();
    await expect(roles.getByRole("alert").count()).resolves.toBe(0);
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await page.getByRole("heading", { name: "Payout service" }).waitFor();
    credentialId = page.url().split("/").pop() ?? "";
    expect(credentialId).toMatch(/^cred_/);
    await expect(page.getByTestId("username-format").textContent()).resolves.toBe("Web service API user");
  });

  it("shows the API user's email for notices, as stored, and changes it", async () => {
    const card = page.getByTestId("notice-email-card");
    await expect(byLabel(card, "Email for notices").inputValue()).resolves.toBe("payouts-team@acme.example");
    await byLabel(card, "Email for notices").fill("ops@acme.example");
    await card.getByRole("button", { name: "Save email" }).click();
    await card.getByRole("status").getByText("Email for notices updated.").waitFor();
    const read = await http(env, "GET", `/v1/credentials/${credentialId}`, { headers: mk() });
    expect(read.body.data.email).toBe("ops@acme.example");
  });

  it("finds a role with the search box, enables it and saves", async () => {
    const card = page.getByTestId("roles-field");
    await byLabel(card, "Search roles").fill("payout");
    // The search matches names and the permissions a role holds: the reporting role reads payouts.
    await card.getByRole("checkbox", { name: /Payouts role/ }).waitFor();
    await expect(card.getByRole("checkbox", { name: /Read-only reporting role/ }).count()).resolves.toBe(1);
    await expect(card.getByRole("checkbox", { name: /Checkout role/ }).count()).resolves.toBe(0);
    await byLabel(card, "Search roles").fill("payouts role");
    await expect(card.getByRole("checkbox", { name: /Read-only reporting role/ }).count()).resolves.toBe(0);
    await card.getByRole("checkbox", { name: /Payouts role/ }).check();
    await expect(card.getByTestId("roles-enabled-count").textContent()).resolves.toBe("1 enabled");
    await shoot(page, "40-api-user-roles");
    await page.getByRole("button", { name: "Save permissions" }).click();
    await page.getByRole("status").getByText("Saved").waitFor();
    const cred = (await http(env, "GET", `/v1/credentials/${credentialId}`, { headers: mk() })).body.data;
    expect(cred).toMatchObject({ roles: ["payouts"], permissions: ["statement:read"] });
    expect([...cred.granted_permissions].sort()).toEqual(["payout:create", "payout:read", "statement:read"]);
  });

  it("authorizes a key of that API user for the role's routes through /v1/authorize, and no others", async () => {
    const created = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: { name: "Payouts prod", environment: "live", credential_id: credentialId },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const gateway = await verifyKey(env);
    const authorize = async (method: string, uri: string) =>
      (
        await fetch(`${env.url}/v1/authorize`, {
          headers: {
            "latchkey-verify-key": gateway,
            "x-original-method": method,
            "x-original-uri": uri,
            "x-api-key": created.body.data.key,
          },
        })
      ).status;
    expect(await authorize("POST", "/v1/payouts")).toBe(200);
    expect(await authorize("GET", "/v1/statements")).toBe(200);
    expect(await authorize("POST", "/v1/payins")).toBe(403);
  });

  it("creates a legal-entity-management API user from a role", async () => {
    await page.goto("/settings/access");
    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await byLabel(dialog, "Name").fill("KYC onboarding");
    await dialog.getByRole("radio", { name: /Legal entity management/ }).check();
    await byLabel(dialog, "Search roles").fill("checkout");
    await dialog.getByRole("checkbox", { name: /Checkout role/ }).check();
    await shoot(page, "41-create-lem-api-user", { fullPage: false });
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await page.getByRole("heading", { name: "KYC onboarding" }).waitFor();
    await expect(page.getByTestId("username-format").textContent()).resolves.toBe(
      "Legal entity management API user",
    );
    const id = page.url().split("/").pop() ?? "";
    const cred = (await http(env, "GET", `/v1/credentials/${id}`, { headers: mk() })).body.data;
    expect(cred).toMatchObject({
      username_format: "legal_entity_management",
      roles: ["checkout"],
      permissions: [],
    });
    expect(cred.username).toMatch(/^ws_\d{6}@Scope\.Company_RolesCo$/);
    expect(errors).toEqual([]);
  });
});
