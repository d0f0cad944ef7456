import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Secret, TOTP } from "otpauth";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { expect } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { buildApp } from "../../src/http/app.ts";
import { createRuntime } from "../../src/runtime.ts";
import type { Store } from "../../src/store/store.ts";
import { openTestStore } from "../helpers/backends.ts";

export const ADMIN = "e2e-admin-token-0123456789abcdef";
export const PASSWORD = "Violet-Harbour-Lantern-47";
export const SCREENSHOTS = resolve(import.meta.dirname, "../../test-results/screenshots");
export const DESKTOP = { width: 1280, height: 900 };
export const MOBILE = { width: 390, height: 844 };

/** Debian's Chromium, never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export interface Env {
  url: string;
  /** The server's store, for the few facts a browser cannot make (a key created months ago). */
  store: Store;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * A real server listening on a free port, built the way `latchkey serve` builds it (console included),
 * on a fresh embedded store started from the run's migrated template; and a headless Chromium.
 */
export async function startConsole(
  opts: {
    /** Deliver webhooks, as `latchkey serve` does, to receivers at these special addresses. */
    webhooks?: { allowedNetworks: string[] };
    /** A port of the caller's choosing (a mail's links must name it before the server starts). */
    port?: number;
    services?: Omit<NonNullable<Parameters<typeof createRuntime>[0]["services"]>, "usageFlushMs">;
    /** A permission catalog file (LATCHKEY_CATALOG) instead of the default one. */
    catalogPath?: string;
  } = {},
): Promise<Env> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LATCHKEY_ADMIN_TOKEN: ADMIN,
    ...(opts.catalogPath ? { LATCHKEY_CATALOG: opts.catalogPath } : {}),
  });
  const store = await openTestStore("pglite");
  const runtime = await createRuntime({
    store,
    secret: "e2e-secret-0123456789abcdef0123456789abcdef",
    catalog: config.catalog,
    keyPrefix: config.keyPrefix,
    services: { ...opts.services, usageFlushMs: 100, ...(opts.webhooks ? { webhooks: opts.webhooks } : {}) },
  });
  if (opts.webhooks) runtime.services.webhookDeliverer.start(200);
  const app = await buildApp({ services: runtime.services, platformTokens: [ADMIN], logger: false });
  await app.listen({ port: opts.port ?? 0, host: "127.0.0.1" });
  const address = app.server.address();
  if (typeof address !== "object" || !address) throw new Error("the server has no address");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    url: `http://127.0.0.1:${address.port}`,
    store,
    browser,
    async close() {
      await browser.close().catch(() => {});
      await app.close();
      await runtime.close();
      await store.close();
    },
  };
}

/** A browser context that fails the test on any page error or console error. */
export async function newPage(
  env: Env,
  /**
   * The browser's language and time zone: the console writes and reads dates in its locale, so a test
   * that types or reads one says which (British English unless told).
   */
  opts: { locale?: string; timezoneId?: string } = {},
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await env.browser.newContext({
    viewport: DESKTOP,
    baseURL: env.url,
    locale: opts.locale ?? "en-GB",
    ...(opts.timezoneId ? { timezoneId: opts.timezoneId } : {}),
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.url }).catch(() => {});
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // A 4xx answer the console handles is logged by Chromium as a failed resource; that is expected.
    if (m.type() === "error" && !m.text().includes("Failed to load resource"))
      errors.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(10_000);
  return { context, page, errors };
}

/**
 * Saves the current screen at desktop and phone width (a dialog: only what the window shows), and checks
 * what a person relies on at each: every control has a name, text has enough contrast, and at phone
 * width nothing pushes the page sideways.
 */
export async function shoot(page: Page, name: string, opts: { fullPage?: boolean } = {}) {
  const fullPage = opts.fullPage ?? true;
  // A full-page capture of a scrolled page draws the fixed header where the window was: start at the top.
  if (fullPage) await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(150);
  expect(await unlabelledControls(page), `${name}: controls without a label`).toEqual([]);
  expect(await lowContrastText(page), `${name}: text below WCAG AA contrast`).toEqual([]);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}-1280.png`), fullPage });
  await page.setViewportSize(MOBILE);
  await page.waitForTimeout(300);
  expect(await horizontalOverflow(page), `${name}: wider than a 390 px phone`).toEqual([]);
  expect(await lowContrastText(page), `${name}: text below WCAG AA contrast at 390 px`).toEqual([]);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}-390.png`), fullPage });
  await page.setViewportSize(DESKTOP);
  await page.waitForTimeout(200);
}

/** Visible inputs, buttons and other controls that have no accessible name (a placeholder is not one). */
export function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const selector =
      "input, select, textarea, button, a[href], [role=button], [role=checkbox], [role=radio], [role=combobox], [role=switch], [role=tab], [role=menuitem]";
    for (const el of Array.from(document.querySelectorAll<HTMLElement>(selector))) {
      if (el instanceof HTMLInputElement && el.type === "hidden") continue;
      if (el.closest("[aria-hidden=true], [inert]")) continue;
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      // Mantine's radios and checkboxes draw their own box over a transparent input: still a control.
      if (style.display === "none" || style.visibility === "hidden" || (box.width === 0 && box.height === 0))
        continue;
      const byIds = (el.getAttribute("aria-labelledby") ?? "")
        .split(/\s+/)
        .map((id) => (id ? (document.getElementById(id)?.textContent ?? "") : ""))
        .join(" ");
      const labels = "labels" in el && el.labels ? Array.from(el.labels as NodeListOf<HTMLLabelElement>) : [];
      const name = [
        el.getAttribute("aria-label") ?? "",
        byIds,
        ...labels.map((l) => l.textContent ?? ""),
        el.getAttribute("title") ?? "",
        el.matches("button, a, [role=button], [role=tab], [role=menuitem]") ? (el.textContent ?? "") : "",
      ]
        .join(" ")
        .trim();
      if (!name) out.push(el.outerHTML.slice(0, 160));
    }
    return out;
  });
}

/**
 * Text whose colour against what is behind it falls under WCAG AA: 4.5:1, or 3:1 for large text.
 * Disabled controls are exempt, as WCAG allows; text over an image is not checked.
 */
export function lowContrastText(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type RGBA = [number, number, number, number];
    const parse = (c: string): RGBA => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m?.[1]) return [0, 0, 0, 0];
      const p = m[1]
        .split(/[ ,/]+/)
        .filter(Boolean)
        .map(Number);
      return [p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 1];
    };
    const over = (top: RGBA, bottom: RGBA): RGBA => {
      const a = top[3] + bottom[3] * (1 - top[3]);
      if (a === 0) return [0, 0, 0, 0];
      const ch = (i: 0 | 1 | 2) => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a;
      return [ch(0), ch(1), ch(2), a];
    };
    const lum = ([r, g, b]: RGBA) => {
      const f = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const cache = new Map<Element, RGBA>();
    const background = (el: Element): RGBA => {
      const known = cache.get(el);
      if (known) return known;
      const layers: RGBA[] = [];
      // The chosen option of a segmented control sits on a sibling "indicator", not on an ancestor.
      const indicator = el
        .closest(".mantine-SegmentedControl-label[data-active]")
        ?.closest(".mantine-SegmentedControl-root")
        ?.querySelector(".mantine-SegmentedControl-indicator");
      if (indicator) layers.push(parse(getComputedStyle(indicator).backgroundColor));
      for (let e: Element | null = el; e; e = e.parentElement) {
        const s = getComputedStyle(e);
        const bg = parse(s.backgroundColor);
        const alpha = Number(s.opacity);
        if (bg[3] > 0) layers.push([bg[0], bg[1], bg[2], bg[3] * alpha]);
        if (bg[3] * alpha >= 1) break;
      }
      let out: RGBA = [255, 255, 255, 1];
      for (const layer of layers.reverse()) out = over(layer, out);
      cache.set(el, out);
      return out;
    };
    const out: string[] = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set<Element>();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || seen.has(el) || !(n.textContent ?? "").trim()) continue;
      seen.add(el);
      if (el.closest("[aria-hidden=true], [inert], [disabled], [data-disabled], .visually-hidden, svg"))
        continue;
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      if (style.visibility === "hidden" || box.width === 0 || box.height === 0) continue;
      if (Number(style.opacity) === 0) continue;
      const bg = background(el);
      const fg = over(parse(style.color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a) as [number, number];
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = Number.parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5))
        out.push(
          `${ratio.toFixed(2)}:1 "${(n.textContent ?? "").trim().slice(0, 40)}" (${style.color} on rgb(${bg.slice(0, 3).map(Math.round).join(",")}))`,
        );
    }
    return out;
  });
}

/** Elements that stick out past the right edge of the window (a table inside its own scroller is fine). */
export function horizontalOverflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= width) return [];
    const out: string[] = [];
    for (const el of Array.from(document.querySelectorAll<HTMLElement>("body *"))) {
      const r = el.getBoundingClientRect();
      if (
        r.right > width + 1 &&
        r.width > 0 &&
        !el.closest(".mantine-ScrollArea-root, [class*=ScrollContainer]")
      )
        out.push(`${el.tagName.toLowerCase()}.${el.className} ends at ${Math.round(r.right)} px`);
      if (out.length >= 5) break;
    }
    return out.length > 0 ? out : [`the page is ${document.documentElement.scrollWidth} px wide`];
  });
}

/** What the page showed when a test failed, to see why. */
export async function failureShot(page: Page | undefined, name: string) {
  await page
    ?.screenshot({ path: join(SCREENSHOTS, `failed-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.png`) })
    .catch(() => {});
}

/** An answer's envelope; tests read its fields directly. */
// biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field with expect
type Envelope = { success: boolean; data?: any; error?: any };

/** JSON over HTTP to the running server. */
export async function http(
  env: Env,
  method: string,
  path: string,
  opts: { json?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Envelope }> {
  const headers: Record<string, string> = { accept: "application/json", ...(opts.headers ?? {}) };
  if (opts.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${env.url}${path}`, {
    method,
    headers,
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Envelope };
}

export interface Company {
  id: string;
  ownerEmail: string;
  temporaryPassword: string;
  managementKey: string;
  defaultCredentialId: string;
  /** The company's default test API user: test keys belong to it (or another test API user). */
  defaultTestCredentialId: string;
}

let counter = 0;
export async function createCompany(env: Env, name = "Acme Payments"): Promise<Company> {
  counter += 1;
  const email = `owner${counter}-${Date.now()}@acme.example`;
  const res = await http(env, "POST", "/v1/admin/companies", {
    headers: { authorization: `Bearer ${ADMIN}` },
    json: { name, owner_email: email },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const d = res.body.data;
  return {
    id: d.company.id,
    ownerEmail: email,
    temporaryPassword: d.owner.temporary_password,
    managementKey: d.management_key.key,
    defaultCredentialId: d.default_credential.id,
    defaultTestCredentialId: d.default_test_credential.id,
  };
}

export async function verifyKey(env: Env): Promise<string> {
  const res = await http(env, "POST", "/v1/admin/verify-keys", {
    headers: { authorization: `Bearer ${ADMIN}` },
    json: { name: "gateway" },
  });
  expect(res.status).toBe(201);
  return res.body.data.key;
}

/**
 * Second factors for one person. Each TOTP code works once and only for a later 30-second step than the
 * last one used, with one step of drift accepted: this hands out the current and next step's codes and
 * falls back to a recovery code rather than sleeping until the next step.
 */
export class SecondFactor {
  private last = -1;
  recovery: string[] = [];
  constructor(readonly secret: string) {}
  private totp() {
    return new TOTP({ algorithm: "SHA1", digits: 6, period: 30, secret: Secret.fromBase32(this.secret) });
  }
  next(): string {
    const current = Math.floor(Date.now() / 30_000);
    const step = Math.max(this.last + 1, current);
    if (step <= current + 1) {
      this.last = step;
      return this.totp().generate({ timestamp: step * 30_000 + 1000 });
    }
    const code = this.recovery.shift();
    if (!code) throw new Error("out of second factors");
    return code;
  }
  /** The step used by a code the server accepted elsewhere (enrolment confirms one). */
  used(step = Math.floor(Date.now() / 30_000)) {
    this.last = Math.max(this.last, step);
  }
}

/** An input by its label, whether or not the label carries the "required" asterisk. */
export const byLabel = (page: Page | Locator, label: string) =>
  page.getByLabel(new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}( \\*)?$`));

/** Signs in through the console: email, password, then the 2FA step when asked. */
export async function signIn(page: Page, email: string, password: string, factor?: SecondFactor) {
  await page.goto("/");
  await byLabel(page, "Email").fill(email);
  await byLabel(page, "Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  if (factor) {
    await byLabel(page, "Authentication code").fill(factor.next());
    await page.getByRole("button", { name: "Verify" }).click();
  }
}

/** First sign-in of a person: temporary password, a new one, and (unless skipped) 2FA enrolment. */
export async function firstSignIn(
  page: Page,
  email: string,
  temporary: string,
  opts: { enrol: boolean; shots?: boolean } = { enrol: true },
): Promise<SecondFactor | null> {
  await signIn(page, email, temporary);
  await page.getByRole("heading", { name: "Choose your password" }).waitFor();
  if (opts.shots) await shoot(page, "01-first-password");
  await byLabel(page, "Temporary password").fill(temporary);
  await byLabel(page, "New password").fill(PASSWORD);
  await byLabel(page, "New password again").fill(PASSWORD);
  await page.getByRole("button", { name: "Save password" }).click();
  await page.getByRole("heading", { name: "Set up two-factor authentication" }).waitFor();
  if (!opts.enrol) {
    await page.getByRole("button", { name: /Skip for now/ }).click();
    return null;
  }
  const secretInput = byLabel(page, "Secret");
  await expect.poll(() => secretInput.inputValue()).not.toBe("");
  await expect(
    page.getByRole("img", { name: "QR code for your authenticator app" }).isVisible(),
  ).resolves.toBe(true);
  if (opts.shots) await shoot(page, "02-enrol-2fa");
  const factor = new SecondFactor(await secretInput.inputValue());
  await byLabel(page, "Code from the app").fill(factor.next());
  await page.getByRole("button", { name: "Turn on 2FA" }).click();
  const codes = page.getByTestId("recovery-codes").locator("code");
  await codes.first().waitFor();
  factor.recovery = await codes.allInnerTexts();
  expect(factor.recovery).toHaveLength(10);
  if (opts.shots) {
    await shoot(page, "03-recovery-codes");
    // Copy puts every code on the clipboard; the download is a text file holding every code.
    await page.getByRole("button", { name: "Copy codes" }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    for (const code of factor.recovery) expect(copied).toContain(code);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download .txt" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("latchkey-recovery-codes.txt");
    const path = await download.path();
    const text = readFileSync(path, "utf8");
    for (const code of factor.recovery) expect(text).toContain(code);
  }
  await page.getByRole("button", { name: /I have saved them/ }).click();
  // Shown once: gone from the page as soon as the person moves on.
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  const html = await page.content();
  for (const code of factor.recovery) expect(html).not.toContain(code);
  return factor;
}

/** A person's session over HTTP, for setting up what a browser test does not exercise itself. */
export class HttpSession {
  constructor(
    private readonly env: Env,
    public cookie: string,
    public csrf: string,
  ) {}

  static async signIn(env: Env, email: string, password: string, totp?: string): Promise<HttpSession> {
    const res = await fetch(`${env.url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password, ...(totp ? { totp_code: totp } : {}) }),
    });
    const body = (await res.json()) as Envelope;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return new HttpSession(env, sessionCookie(res), body.data.csrf_token);
  }

  async call(method: string, path: string, json?: unknown, totp?: string) {
    const headers: Record<string, string> = {
      cookie: this.cookie,
      "x-csrf-token": this.csrf,
      accept: "application/json",
    };
    if (json !== undefined) headers["content-type"] = "application/json";
    if (totp) headers["x-totp-code"] = totp;
    const res = await fetch(`${this.env.url}${path}`, {
      method,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
    const body = (await res.json()) as Envelope;
    const renewed = res.headers.getSetCookie().find((c) => c.startsWith("lk_session="));
    if (renewed) this.cookie = renewed.split(";")[0] ?? this.cookie;
    if (typeof body.data?.csrf_token === "string") this.csrf = body.data.csrf_token;
    return { status: res.status, body };
  }
}

function sessionCookie(res: Response): string {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("lk_session="));
  if (!set) throw new Error("no session cookie");
  return set.split(";")[0] as string;
}

/** An owner who has changed the temporary password and enrolled 2FA, over HTTP. */
export async function readyOwner(
  env: Env,
  company: Company,
): Promise<{ session: HttpSession; factor: SecondFactor }> {
  const session = await HttpSession.signIn(env, company.ownerEmail, company.temporaryPassword);
  expect(
    (
      await session.call("POST", "/v1/auth/password", {
        current_password: company.temporaryPassword,
        new_password: PASSWORD,
      })
    ).status,
  ).toBe(200);
  const setup = await session.call("POST", "/v1/auth/totp/setup", {});
  const factor = new SecondFactor(setup.body.data.secret);
  const confirmed = await session.call("POST", "/v1/auth/totp/confirm", { code: factor.next() });
  expect(confirmed.status).toBe(200);
  factor.recovery = confirmed.body.data.recovery_codes;
  return { session, factor };
}
