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

/** The allowed-IP editor, errors shown where they arise and in plain words, and the unused-keys list. */
describe("console: forms and errors", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  let page: Page;
  let errors: string[];
  const mk = () => ({ "x-api-key": company.managementKey });

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Forms Co");
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

  it("validates allowed IPs as they are typed and saves them with a 2FA code", async () => {
    // Not the default API user: the management key these tests use belongs to it, from 127.0.0.1.
    const made = await http(env, "POST", "/v1/credentials", {
      headers: mk(),
      json: { name: "Office integration", permissions: ["payment_transaction:read"] },
    });
    const credId = made.body.data.id as string;
    await page.goto(`/api-users/${credId}`);
    const card = page.getByTestId("ip-card");
    const input = byLabel(card, "Add an address or range");
    const add = card.getByRole("button", { name: "Add", exact: true });

    await input.fill("10.0.0.300");
    await card.getByText('"10.0.0.300" is not a valid IPv4 or IPv6 address.').waitFor();
    await expect(add.isDisabled()).resolves.toBe(true);
    await expect(input.getAttribute("aria-invalid")).resolves.toBe("true");
    await input.fill("10.0.0.0/33");
    await card.getByText('"10.0.0.0/33" is not a valid CIDR range').waitFor();
    await input.fill("203.0.113.9/24");
    await expect(add.isEnabled()).resolves.toBe(true);
    await input.press("Enter");
    // Kept in the server's canonical form: the network address of the range.
    await card.getByTestId("ip-list").getByText("203.0.113.0/24").waitFor();
    await input.fill("2001:DB8::/32");
    await add.click();
    await card.getByTestId("ip-list").getByText("2001:db8::/32").waitFor();
    await input.fill("2001:db8:0::/32");
    await card.getByText("2001:db8::/32 is already in the list.").waitFor();
    await input.fill("");
    await shoot(page, "19-ip-editor");

    // A wrong code is refused, and said so under the code field.
    await card.getByTestId("totp-code").fill("000000");
    await card.getByRole("button", { name: "Save allowed IPs" }).click();
    const codeField = card.getByTestId("totp-code");
    await expect
      .poll(async () =>
        codeField.evaluate(
          (el) =>
            document.getElementById(
              el
                .getAttribute("aria-describedby")
                ?.split(" ")
                .find((id) => id.endsWith("-error")) ?? "",
            )?.textContent ?? "",
        ),
      )
      .toContain("That code is wrong, expired or already used");
    let cred = await http(env, "GET", `/v1/credentials/${credId}`, { headers: mk() });
    expect(cred.body.data.allowed_ips).toEqual([]);

    await codeField.fill(factor.next());
    await card.getByRole("button", { name: "Save allowed IPs" }).click();
    await card.getByText("Allowed IPs saved.").waitFor();
    cred = await http(env, "GET", `/v1/credentials/${credId}`, { headers: mk() });
    expect(cred.body.data.allowed_ips).toEqual(["203.0.113.0/24", "2001:db8::/32"]);
    // Removing an entry asks for a code again.
    await card.getByRole("button", { name: "Remove 2001:db8::/32" }).click();
    await card.getByTestId("totp-code").waitFor();
  });

  it("generates a Basic auth password shown once, and deactivating the API user stops it", async () => {
    const gateway = await verifyKey(env);
    const check = async (username: string, password: string) =>
      (
        await http(env, "POST", "/v1/verify", {
          headers: { "x-api-key": gateway },
          json: { username, password, ip: "203.0.113.5" },
        })
      ).body.data;
    await page.getByRole("button", { name: "Generate password" }).click();
    const dialog = page.getByRole("dialog", { name: "Generate a Basic auth password" });
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Generate" }).click();
    const modal = page.getByRole("dialog", { name: "Basic auth password" });
    const username = await modal.getByTestId("secret-username").inputValue();
    const password = await modal.getByTestId("secret-password").inputValue();
    expect(username).toMatch(/^ws_/);
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });
    expect(await page.content()).not.toContain(password);
    expect(await check(username, password)).toMatchObject({ valid: true });

    await page.getByRole("button", { name: "Deactivate" }).click();
    const confirm = page.getByRole("dialog", { name: "Deactivate Office integration?" });
    await confirm.getByText("its Basic auth password stop working at once").waitFor();
    await shoot(page, "22-deactivate", { fullPage: false });
    await confirm.getByRole("button", { name: "Deactivate" }).click();
    await confirm.waitFor({ state: "hidden" });
    await expect.poll(() => page.getByTestId("credential-status").textContent()).toBe("inactive");
    expect(await check(username, password)).toMatchObject({ valid: false, code: "DISABLED" });
    await page.getByRole("button", { name: "Reactivate" }).click();
    await page
      .getByRole("dialog", { name: "Reactivate Office integration?" })
      .getByRole("button", { name: "Reactivate" })
      .click();
    await expect.poll(() => page.getByTestId("credential-status").textContent()).toBe("active");
    expect(await check(username, password)).toMatchObject({ valid: true });
  });

  /** The id and text of the element that has the focus. */
  const focused = () =>
    page.evaluate(() => ({
      testid: document.activeElement?.getAttribute("data-testid") ?? "",
      text: document.activeElement?.textContent ?? "",
    }));

  it("a new key starts with no permissions, and keeps an address typed without Add", async () => {
    const gateway = await verifyKey(env);
    const made = await http(env, "POST", "/v1/credentials", {
      headers: mk(),
      json: { name: "Edge proxy", permissions: ["payment_transaction:read", "payment_statement:read"] },
    });
    const credId = made.body.data.id as string;
    const keysOf = async () =>
      (await http(env, "GET", `/v1/keys?credential_id=${credId}`, { headers: mk() })).body.data.keys;
    await page.goto(`/api-users/${credId}`);
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await byLabel(dialog, "Name").fill("Edge");

    // Least privilege: nothing is ticked, every scope reads "No access".
    const boxes = dialog.locator("input[data-permission]");
    await expect.poll(() => boxes.count()).toBeGreaterThan(0);
    for (const checked of await boxes.evaluateAll((els) => els.map((e) => (e as HTMLInputElement).checked)))
      expect(checked).toBe(false);
    await expect(dialog.getByTestId("group-state-payments").textContent()).resolves.toBe("No access");
    // Neither the key nor its API user has a list: any address, and the text says so.
    await expect(dialog.getByTestId("ip-scope").textContent()).resolves.toBe(
      "No restriction: requests from any address are accepted (the API user has no list either).",
    );

    // Nothing chosen: refused in place, next to the matrix, which takes the focus.
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create key" }).click();
    const field = dialog.getByTestId("permissions-field");
    await field.getByRole("alert").getByText("Choose at least one permission").waitFor();
    await expect.poll(async () => (await focused()).testid).toBe("permissions-field");
    expect(await keysOf()).toEqual([]);
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    await expect(field.getByRole("alert").count()).resolves.toBe(0);

    // An invalid address typed and not added blocks creation, with its reason under the field.
    const input = byLabel(dialog, "Allowed IPs for this key");
    await input.fill("198.51.100.300");
    await dialog.getByRole("button", { name: "Create key" }).click();
    await dialog.getByText('"198.51.100.300" is not a valid IPv4 or IPv6 address.').waitFor();
    await expect.poll(async () => (await focused()).testid).toBe("ip-input");
    await expect(dialog.isVisible()).resolves.toBe(true);
    expect(await keysOf()).toEqual([]);

    // A valid one typed and not added is kept: the key is saved with it.
    await input.fill("198.51.100.7");
    await dialog.getByRole("button", { name: "Create key" }).click();
    const modal = page.getByRole("dialog", { name: /API key “Edge” created/ });
    const key = await modal.getByTestId("secret-api-key").inputValue();
    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });
    const saved = await keysOf();
    expect(saved).toHaveLength(1);
    expect(saved[0]).toMatchObject({ allowed_ips: ["198.51.100.7"] });
    expect(saved[0].permissions.sort()).toEqual(["payment_statement:read", "payment_transaction:read"]);
    const verify = async (ip: string) =>
      (await http(env, "POST", "/v1/verify", { headers: { "x-api-key": gateway }, json: { key, ip } })).body
        .data;
    expect(await verify("198.51.100.7")).toMatchObject({ valid: true, code: "VALID" });
    expect(await verify("203.0.113.1")).toMatchObject({ valid: false, code: "IP_NOT_ALLOWED" });
  });

  it("Create API user keeps an address typed without Add, and the key dialog names that list", async () => {
    const named = async (name: string) =>
      (
        (await http(env, "GET", "/v1/credentials?limit=100", { headers: mk() })).body.data.credentials as {
          id: string;
          name: string;
          allowed_ips: string[];
        }[]
      ).filter((c) => c.name === name);
    await page.goto("/settings/access");
    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    await byLabel(dialog, "Name").fill("Branch office");

    // No role and no permission: refused in place, the roles (first in the form) taking the focus.
    await dialog.getByRole("button", { name: "Create API user" }).click();
    const field = dialog.getByTestId("roles-field");
    await field.getByRole("alert").getByText("Enable at least one role").waitFor();
    await expect.poll(async () => (await focused()).testid).toBe("roles-field");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();

    // An invalid range typed and not added: refused, the reason under the field, the focus on it.
    const input = byLabel(dialog, "Allowed IPs");
    await input.fill("192.0.2.0/33");
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await dialog.getByText('"192.0.2.0/33" is not a valid CIDR range').waitFor();
    await expect.poll(async () => (await focused()).testid).toBe("ip-input");
    expect(await named("Branch office")).toEqual([]);

    // A valid one typed and not added is kept; adding a list asks for a code even before Add.
    await input.fill("192.0.2.0/24");
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create API user" }).click();
    await page.getByRole("heading", { name: "Branch office" }).waitFor();
    const [cred] = await named("Branch office");
    expect(cred?.allowed_ips).toEqual(["192.0.2.0/24"]);

    // A key of it has no list of its own: the API user's list still applies, and the dialog says so.
    await page.getByRole("button", { name: "Create API key" }).click();
    const keyDialog = page.getByRole("dialog", { name: "Create API key" });
    const scope = keyDialog.getByTestId("ip-scope");
    await expect(scope.textContent()).resolves.toBe(
      "No list of its own, but API user “Branch office” has an allowed IP list (192.0.2.0/24), which still applies: requests from any other address are refused.",
    );
    await byLabel(keyDialog, "Allowed IPs for this key").fill("192.0.2.8");
    await keyDialog.getByRole("button", { name: "Add", exact: true }).click();
    await expect
      .poll(() => scope.textContent())
      .toBe(
        "API user “Branch office” has an allowed IP list (192.0.2.0/24), which applies as well: a request must come from an address on both lists.",
      );
    await shoot(page, "24-key-ip-scope", { fullPage: false });
    await keyDialog.getByRole("button", { name: "Cancel" }).click();
  });

  it("revokes a key with the keyboard alone: the dialog takes focus and Escape closes it", async () => {
    const created = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: {
        name: "Keyboard",
        environment: "live",
        credential_id: company.defaultCredentialId,
        preset: "read_only",
      },
    });
    await page.goto("/keys");
    const actions = page.getByRole("button", { name: "Actions for Keyboard" });
    /** Opens the row's menu from the keyboard and arrows down to "Revoke…". */
    const openRevoke = async () => {
      await actions.focus();
      await page.keyboard.press("Enter");
      const revoke = page.getByRole("menuitem", { name: "Revoke…" });
      await revoke.waitFor();
      // The menu moves the focus into itself a moment after it opens; arrows pressed before that are lost.
      await expect
        .poll(() => page.evaluate(() => document.activeElement?.closest("[role=menu]") != null))
        .toBe(true);
      for (let i = 0; i < 8; i++) {
        if (await revoke.evaluate((el) => el === document.activeElement)) break;
        await page.keyboard.press("ArrowDown");
      }
      await expect.poll(() => revoke.evaluate((el) => el === document.activeElement)).toBe(true);
      await page.keyboard.press("Enter");
    };
    await openRevoke();
    const dialog = page.getByRole("dialog", { name: /Revoke “Keyboard”/ });
    // The code field has the focus: type straight into it.
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.getAttribute("name")))
      .toBe("totp_code");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    await openRevoke();
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.getAttribute("name")))
      .toBe("totp_code");
    await page.keyboard.type(factor.next());
    await page.keyboard.press("Enter");
    await dialog.waitFor({ state: "hidden" });
    const key = await http(env, "GET", `/v1/keys/${created.body.data.id}`, { headers: mk() });
    expect(key.body.data.status).toBe("revoked");
  });

  it("names the state conflict when a key was revoked elsewhere while its dialog was open", async () => {
    const created = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: {
        name: "Doomed",
        environment: "live",
        credential_id: company.defaultCredentialId,
        preset: "read_only",
      },
    });
    await page.goto("/keys");
    await page.getByRole("button", { name: "Actions for Doomed" }).click();
    await page.getByRole("menuitem", { name: "Rotate…" }).click();
    const dialog = page.getByRole("dialog", { name: /Rotate “Doomed”/ });
    await dialog.getByTestId("totp-code").fill(factor.next());
    expect((await http(env, "DELETE", `/v1/keys/${created.body.data.id}`, { headers: mk() })).status).toBe(
      200,
    );
    await dialog.getByRole("button", { name: "Rotate key" }).click();
    await dialog
      .getByRole("alert")
      .getByText("This key is already revoked or expired, so it cannot be changed.")
      .waitFor();
    await shoot(page, "20-error-in-dialog", { fullPage: false });
    await dialog.getByRole("button", { name: "Cancel" }).click();
  });

  it("lists keys unused for 30/60/90 days and revokes one from there", async () => {
    const created = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: {
        name: "Forgotten",
        environment: "live",
        credential_id: company.defaultCredentialId,
        preset: "read_only",
      },
    });
    const id = created.body.data.id as string;
    // Only the store can make a key that was created 45 days ago and never used.
    await env.store.db
      .updateTable("api_keys")
      .set({ created_at: new Date(Date.now() - 45 * 86_400_000) })
      .where("id", "=", id)
      .execute();
    await page.getByRole("link", { name: "Usage" }).click();
    const unused = page.getByTestId("unused-list");
    await unused.getByText("Forgotten").waitFor();
    await expect(unused.textContent()).resolves.not.toContain("Management key");
    await page.getByTestId("unused-period").getByText("60 days").click();
    await page.getByTestId("unused-empty").waitFor();
    await page.getByTestId("unused-period").getByText("30 days").click();
    await unused.getByText("Forgotten").waitFor();
    await shoot(page, "21-unused-keys");
    await unused.getByRole("button", { name: "Revoke" }).click();
    const dialog = page.getByRole("dialog", { name: /Revoke “Forgotten”/ });
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Revoke Forgotten" }).click();
    await page.getByTestId("unused-empty").waitFor();
    const key = await http(env, "GET", `/v1/keys/${id}`, { headers: mk() });
    expect(key.body.data.status).toBe("revoked");
    expect(errors).toEqual([]);
  });
});
