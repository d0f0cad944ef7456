import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  byLabel,
  type Company,
  createCompany,
  DESKTOP,
  type Env,
  failureShot,
  type HttpSession,
  http,
  MOBILE,
  newPage,
  PASSWORD,
  readyOwner,
  type SecondFactor,
  signIn,
  startConsole,
  verifyKey,
} from "./console-helpers.ts";

const run = promisify(execFile);

/** The console's date form for the locale the browser is given (the browser's zone is set to UTC). */
const german = new Intl.DateTimeFormat("de-DE", {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "UTC",
});
const GERMAN_DATE = /^\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}$/;

/**
 * The console fixes of issue 15, as a person sees them: a German browser gets German dates everywhere
 * (typed ones too), audit targets by name with links, a drawer that fits 1280 px, export and verify on
 * the audit page, revoked and rotated keys told apart, phone cards with the API user and allowed IPs,
 * whole usernames, matrix headers that say what they grant, the real lockout wait, snippets that work
 * when run, and the company's usage beside a key's.
 */
describe("console: the fixes found on the way", () => {
  let env: Env;
  let company: Company;
  let factor: SecondFactor;
  /** The owner over HTTP: a session's reads count as no key's use. */
  let session: HttpSession;
  let page: Page;
  let errors: string[];
  let gateway: string;
  const mk = () => ({ "x-api-key": company.managementKey });
  const rowOf = (id: string) => page.locator(`[data-testid="key-row"][data-key-id="${id}"]`);
  /** The keys page, loaded afresh (keys made over HTTP since show up). */
  const keysPage = async () => {
    await page.goto("/keys");
    await page.getByRole("heading", { name: "API keys" }).waitFor();
  };
  const apiKey = async (body: Record<string, unknown>) => {
    const res = await http(env, "POST", "/v1/keys", {
      headers: mk(),
      json: { environment: "live", permissions: ["payin:read"], ...body },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data as { id: string; key: string; prefix: string; name: string };
  };

  beforeAll(async () => {
    env = await startConsole();
    company = await createCompany(env, "Fixes GmbH");
    gateway = await verifyKey(env);
    ({ factor, session } = await readyOwner(env, company));
    ({ page, errors } = await newPage(env, { locale: "de-DE", timezoneId: "UTC" }));
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

  let createdId = "";
  let createdKey = "";
  it("creates a key with an expiry typed in the browser's locale, and hands over snippets that work when run", async () => {
    await page.getByRole("button", { name: "Create API key" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API key" });
    await byLabel(dialog, "Name").fill("Locale key");
    await dialog.getByTestId("group-payments").getByRole("button", { name: "Read-only" }).click();
    const expires = byLabel(dialog, "Expires (optional)");
    // The input says the form it reads, the locale's: day, month, year.
    await expect(expires.getAttribute("placeholder")).resolves.toBe("DD.MM.YYYY, HH:MM");
    // A date in another locale's order is refused where it is typed, and nothing can be created.
    await expires.fill("2031-03-01 12:00");
    await dialog.getByText("Not a date and time: write it as DD.MM.YYYY, HH:MM.").waitFor();
    await expect(dialog.getByRole("button", { name: "Create key" }).isDisabled()).resolves.toBe(true);
    await expires.fill("1.3.2031 12:00");
    await expires.blur();
    // Read, and written back in the one form every screen uses.
    await expect.poll(() => expires.inputValue()).toBe("01.03.2031, 12:00");
    await dialog.getByTestId("totp-code").fill(factor.next());
    await dialog.getByRole("button", { name: "Create key" }).click();

    const modal = page.getByRole("dialog", { name: /API key “Locale key” created/ });
    createdKey = await modal.getByTestId("secret-api-key").inputValue();
    const curl = (await modal.getByTestId("snippet-curl").textContent()) ?? "";
    expect(curl).toContain(createdKey);
    expect(curl).toContain(`${env.url}/v1/verify`);
    // Run as written, with the gateway's verify key in the variable it names.
    const ran = await run("sh", ["-c", curl], { env: { ...process.env, LATCHKEY_VERIFY_KEY: gateway } });
    const answer = JSON.parse(ran.stdout);
    expect(answer.data).toMatchObject({ valid: true, code: "VALID", environment: "live" });
    createdId = answer.data.key_id;

    await modal.getByRole("tab", { name: "Node" }).click();
    const node = (await modal.getByTestId("snippet-node").textContent()) ?? "";
    expect(node).toContain(createdKey);
    const file = join("/tmp", `latchkey-snippet-${process.pid}.mjs`);
    writeFileSync(file, node);
    const ranNode = await run(process.execPath, [file], {
      env: { ...process.env, LATCHKEY_VERIFY_KEY: gateway },
    });
    expect(ranNode.stdout).toContain("valid: true");
    expect(ranNode.stdout).toContain(createdId);

    await modal.getByRole("checkbox", { name: /I have copied it/ }).check();
    await modal.getByRole("button", { name: "Done" }).click();
    await modal.waitFor({ state: "hidden" });

    const key = await http(env, "GET", `/v1/keys/${createdId}`, { headers: mk() });
    expect(key.body.data.expires_at).toBe("2031-03-01T12:00:00.000Z");
    // The list shows the date as it was typed.
    await expect.poll(() => rowOf(createdId).textContent()).toContain("01.03.2031, 12:00");
    const created = await rowOf(createdId)
      .getByText(/^\d{2}\.\d{2}\.\d{4}$/)
      .getAttribute("title");
    expect(created).toBe(german.format(new Date(key.body.data.created_at)));
  });

  it("names audit targets with a link, shows the same date in the list and the drawer, and fits 1280 px", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    const row = page.locator('[data-testid="audit-row"][data-action="key.created"]').first();
    await row.waitFor();
    const prefix = (await http(env, "GET", `/v1/keys/${createdId}`, { headers: mk() })).body.data.prefix;
    const link = row.getByRole("link", { name: `Locale key (${prefix}…)` });
    await link.waitFor();

    const events = await http(env, "GET", `/v1/audit?target=${createdId}&action=key.created`, {
      headers: mk(),
    });
    const at = german.format(new Date(events.body.data.events[0].at));
    const listed = (await row.locator("td").first().textContent())?.trim();
    expect(listed).toBe(at);
    expect(listed).toMatch(GERMAN_DATE);

    await row.getByRole("button", { name: "Details" }).click();
    const drawer = page.getByTestId("audit-drawer");
    await drawer.waitFor();
    await expect(drawer.locator("tr", { hasText: "When" }).locator("td").textContent()).resolves.toBe(at);
    // Nothing in the drawer scrolls sideways at 1280 px, however long the JSON's lines (once it has slid in).
    const drawerFit = () =>
      page.evaluate(() => {
        const body = document.querySelector("[data-testid=audit-drawer]")?.closest(".mantine-Drawer-content");
        if (!body) return null;
        const wide = [body, ...Array.from(body.querySelectorAll("*"))].filter(
          (el) => el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible",
        );
        return {
          right: Math.round(body.getBoundingClientRect().right),
          wide: wide.map((el) => el.outerHTML.slice(0, 80)),
        };
      });
    await expect.poll(async () => (await drawerFit())?.right).toBeLessThanOrEqual(DESKTOP.width);
    expect((await drawerFit())?.wide).toEqual([]);
    const json = drawer.getByTestId("audit-after");
    expect(await json.evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
    // The drawer's target link goes to the key on its API user's page.
    await drawer.getByRole("link", { name: `Locale key (${prefix}…)` }).click();
    await page.waitForURL(new RegExp(`/api-users/${company.defaultCredentialId}#key-${createdId}$`));
    await expect.poll(() => rowOf(createdId).getAttribute("data-pointed")).toBe("true");
  });

  it("exports the trail and verifies the chain from the audit page", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.getByRole("button", { name: "Verify chain" }).click();
    const result = page.getByTestId("audit-verify-result");
    await result.getByText("Chain intact").waitFor();
    expect(await result.textContent()).toMatch(/All \d+ events check out/);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export (NDJSON)" }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^audit-\d{4}-\d{2}-\d{2}\.ndjson$/);
    const lines = readFileSync(await download.path(), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const created = lines.find((e) => e.action === "key.created" && e.target?.id === createdId);
    expect(created?.target.label).toMatch(/^Locale key /);
    // Filters apply to the export as to the list: a period with no events downloads nothing.
    await byLabel(page, "From").fill("01.01.2099, 00:00");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("No events match.").waitFor();
    const [empty] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export (NDJSON)" }).click(),
    ]);
    expect(readFileSync(await empty.path(), "utf8")).toBe("");
    await page.getByRole("button", { name: "Clear" }).click();
  });

  it("counts revoked keys in the filter, and tells revoked and rotated keys apart from keys that never expire", async () => {
    const revoked = await apiKey({ name: "Gone key" });
    expect((await http(env, "DELETE", `/v1/keys/${revoked.id}`, { headers: mk() })).status).toBe(200);
    const old = await apiKey({ name: "Rolling key" });
    const rotation = await http(env, "POST", `/v1/keys/${old.id}/rotate`, {
      headers: mk(),
      json: { grace_seconds: 3600 },
    });
    expect(rotation.status).toBe(200);
    const next = rotation.body.data as { id: string; prefix: string };
    const ended = await apiKey({ name: "Finished key" });
    const after = await http(env, "POST", `/v1/keys/${ended.id}/rotate`, { headers: mk(), json: {} });
    const endedNext = after.body.data as { id: string; prefix: string };
    expect(
      (await http(env, "POST", `/v1/keys/${ended.id}/expiry`, { headers: mk(), json: { action: "now" } }))
        .status,
    ).toBe(200);

    await keysPage();
    await rowOf(revoked.id).waitFor();
    await page.getByRole("combobox", { name: "Status" }).click();
    await page.getByRole("option", { name: "Revoked (1)" }).waitFor();
    await page.getByRole("option", { name: /^Active \(\d+\)$/ }).waitFor();
    await page.getByRole("option", { name: "Revoked (1)" }).click();
    await expect.poll(() => page.getByTestId("key-row").count()).toBe(1);

    // The Expires column of a revoked key never says "never" (Last used may: it never was).
    const expiresCell = await rowOf(revoked.id).locator("td").nth(6).textContent();
    expect(expiresCell).not.toContain("never");
    const revokedAt = (await http(env, "GET", `/v1/keys/${revoked.id}`, { headers: mk() })).body.data
      .revoked_at;
    await expect(rowOf(revoked.id).getByTestId("key-ended").textContent()).resolves.toBe(
      `Revoked ${german.format(new Date(revokedAt))}`,
    );

    await page.getByRole("combobox", { name: "Status" }).click();
    await page.getByRole("option", { name: /^All \(/ }).click();
    // In its overlap: rotated, naming the key that replaced it, and when the overlap ends.
    const rolling = rowOf(old.id);
    await expect(rolling.getByTestId("key-rotated").textContent()).resolves.toBe(
      `Rotated → Rolling key (${next.prefix}…)`,
    );
    const oldEnd = (await http(env, "GET", `/v1/keys/${old.id}`, { headers: mk() })).body.data.expires_at;
    expect(await rolling.getByTestId("grace-countdown").textContent()).toContain(
      `(${german.format(new Date(oldEnd))})`,
    );
    // After its overlap: still told apart from a key that simply expired.
    const finishedEnd = (await http(env, "GET", `/v1/keys/${ended.id}`, { headers: mk() })).body.data
      .expires_at;
    await expect(rowOf(ended.id).getByTestId("key-rotated").textContent()).resolves.toBe(
      `Rotated → Finished key (${endedNext.prefix}…), overlap ended ${german.format(new Date(finishedEnd))}`,
    );
  });

  it("shows each key's API user and allowed IPs on a 390 px card, and usernames whole", async () => {
    const credential = (
      await http(env, "GET", `/v1/credentials/${company.defaultCredentialId}`, { headers: mk() })
    ).body.data as { name: string; username: string };
    const fenced = await apiKey({ name: "Fenced key", allowed_ips: ["203.0.113.0/24", "198.51.100.7"] });
    await keysPage();
    await page.setViewportSize(MOBILE);
    try {
      const card = rowOf(fenced.id);
      await card.waitFor();
      await expect(card.getByTestId("key-card-api-user").textContent()).resolves.toBe(
        `API user: ${credential.name}`,
      );
      await expect(card.getByTestId("key-card-ips").textContent()).resolves.toBe(
        "Allowed IPs: 203.0.113.0/24, 198.51.100.7",
      );
      await expect(rowOf(createdId).getByTestId("key-card-ips").textContent()).resolves.toMatch(
        /^Allowed IPs: any address/,
      );

      await page.goto("/settings/access/api-users");
      const username = page.getByTestId("username").filter({ hasText: credential.username }).first();
      await username.waitFor();
      expect(await username.textContent()).toBe(credential.username);
      // Each piece between "@" and "." sits on one line: a line never ends inside ws_…
      const pieces = await username.locator(".token-piece").evaluateAll((els) =>
        els.map((el) => ({
          text: el.textContent,
          lines: new Set(Array.from(el.getClientRects()).map((r) => r.top)).size,
        })),
      );
      expect(pieces.length).toBeGreaterThan(1);
      for (const p of pieces) expect(p, String(p.text)).toMatchObject({ lines: 1 });
      expect(pieces[0]?.text).toMatch(/^ws_/);
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  it("says what each column of Money movement and Latchkey management grants", async () => {
    await page.goto("/settings/access/api-users");
    await page.getByRole("button", { name: "Create API user" }).click();
    const dialog = page.getByRole("dialog", { name: "Create API user" });
    const columns = async (group: string) =>
      dialog
        .getByTestId(`group-${group}`)
        .getByTestId("matrix-column")
        .evaluateAll((els) =>
          els.map((el) => [el.firstElementChild?.textContent, el.getAttribute("data-grants")]),
        );
    expect(await columns("money_movement")).toEqual([
      ["View", "View: Pay-in, Payout, Statement, KYC document"],
      ["Create", "Pay-in: Create charges · Payout: Send payments · KYC document: Submit documents"],
    ]);
    const management = await columns("latchkey");
    expect(management).toContainEqual([
      "Manage",
      "API keys: Create, rotate and revoke · API credentials: Manage · Webhooks: Manage",
    ]);
    // The line is what a pointer over the header shows.
    await dialog
      .getByTestId("group-money_movement")
      .getByTestId("matrix-column")
      .nth(1)
      .locator("span")
      .first()
      .hover();
    await page.getByRole("tooltip").getByText("Payout: Send payments", { exact: false }).waitFor();
    await page.mouse.move(0, 0);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
  });

  it("shows the company's usage beside a key's", async () => {
    for (let i = 0; i < 3; i++)
      await http(env, "POST", "/v1/verify", { headers: { "x-api-key": gateway }, json: { key: createdKey } });
    const other = await apiKey({ name: "Second key" });
    await http(env, "POST", "/v1/verify", { headers: { "x-api-key": gateway }, json: { key: other.key } });
    await http(env, "POST", "/v1/verify", {
      headers: { "x-api-key": gateway },
      json: { key: other.key, permissions: ["payout:create"] },
    });
    // The server writes usage every 100 ms here; the management key's own calls count too, so the figures
    // are read once they stop changing, and through a session, whose reads are no key's use.
    const read = async () =>
      (await session.call("GET", "/v1/usage?environment=live")).body.data as {
        total_requests: number;
        total_denied: number;
        keys_used: number;
      };
    let usage = await read();
    await expect
      .poll(async () => {
        const before = usage;
        usage = await read();
        return usage.total_denied >= 1 && usage.total_requests === before.total_requests;
      })
      .toBe(true);
    await page.goto(`/usage/${createdId}`);
    const card = page.getByTestId("company-usage");
    await card.getByText("All live keys").waitFor();
    await expect
      .poll(() => card.getByTestId("company-usage-total").textContent())
      .toBe(String(usage.total_requests));
    expect(usage.total_requests).toBeGreaterThanOrEqual(5);
    await expect(card.getByTestId("company-usage-denied").textContent()).resolves.toBe(
      String(usage.total_denied),
    );
    await expect(card.getByTestId("company-usage-keys").textContent()).resolves.toBe(String(usage.keys_used));
    // The key's own card is still there, with its own smaller count.
    const own = Number(await page.getByTestId("usage-total").textContent());
    expect(own).toBeGreaterThanOrEqual(4);
    expect(own).toBeLessThan(usage.total_requests);
  });

  it("tells a locked-out person the real wait", async () => {
    const { page: fresh, errors: freshErrors, context } = await newPage(env, { locale: "de-DE" });
    const email = `locked-${Date.now()}@fixes.example`;
    // Locked for 14 minutes from now, as five failures and a few doublings would leave it.
    await env.store.db
      .insertInto("login_attempts")
      .values({
        email,
        failures: 9,
        locked_until: new Date(Date.now() + 14 * 60_000),
        updated_at: new Date(),
      })
      .execute();
    await fresh.goto("/");
    await byLabel(fresh, "Email").fill(email);
    await byLabel(fresh, "Password").fill("Wrong-Password-123");
    await fresh.getByRole("button", { name: "Sign in" }).click();
    await fresh.getByRole("alert").getByText("Too many failed sign-ins. Try again in 14 minutes.").waitFor();
    expect(freshErrors).toEqual([]);
    await context.close();
  });
});
