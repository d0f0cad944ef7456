import type { Page } from "playwright-core";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Receiver } from "../helpers/webhook-receiver.ts";
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
} from "./console-helpers.ts";

/** The Webhooks page against a real server that delivers, and a real receiver on 127.0.0.1. */
describe("console: webhooks", () => {
  let env: Env;
  let company: Company;
  let receiver: Receiver;
  let factor: SecondFactor;
  let page: Page | undefined;
  let secret = "";

  beforeAll(async () => {
    env = await startConsole({ webhooks: { allowedNetworks: ["127.0.0.1/32"] } });
    receiver = await Receiver.start();
    company = await createCompany(env, "Hook Co");
    factor = (await readyOwner(env, company)).factor;
  });
  afterAll(async () => {
    await receiver?.close();
    await env?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  it("adds an endpoint with a 2FA code and shows its signing secret once", async () => {
    const opened = await newPage(env);
    page = opened.page;
    await signIn(page, company.ownerEmail, PASSWORD, factor);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByRole("heading", { name: "Webhooks" }).waitFor();
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await byLabel(page, "URL").fill(`${receiver.url}/latchkey`);
    await byLabel(page, "Description").fill("Billing sync");
    await byLabel(page, "2FA code").fill(factor.next());
    await page.getByRole("button", { name: "Add endpoint" }).last().click();
    const shown = page.getByTestId("secret-signing-secret");
    await shown.waitFor();
    secret = await shown.inputValue();
    expect(secret).toMatch(/^whsec_/);
    await shoot(page, "30-webhook-secret", { fullPage: false });
    await page.getByLabel("I have copied it and stored it somewhere safe").check();
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByTestId("webhook-row").waitFor();
    expect(await page.content()).not.toContain(secret);
  });

  it("lists deliveries as they are made, signed with that secret", async () => {
    const p = page as Page;
    const created = await http(env, "POST", "/v1/keys", {
      headers: { "x-api-key": company.managementKey },
      json: { name: "Hooked key", environment: "live", credential_id: company.defaultCredentialId },
    });
    expect(created.status).toBe(201);
    await expect.poll(() => receiver.received.length, { timeout: 10_000 }).toBe(1);
    const got = receiver.received[0] as (typeof receiver.received)[0];
    expect(new Webhook(secret).verify(got.body, got.headers)).toMatchObject({ type: "key.created" });
    await p.getByRole("button", { name: /^Actions for / }).click();
    await p.getByRole("menuitem", { name: "Deliveries" }).click();
    const row = p.getByTestId("delivery-row").first();
    await row.waitFor();
    await expect
      .poll(
        async () => {
          await p.getByRole("button", { name: "Refresh" }).click();
          return row.textContent();
        },
        { timeout: 10_000 },
      )
      .toMatch(/delivered/i);
    await shoot(p, "31-webhooks-deliveries");
  });

  it("shows a notice when the endpoint was disabled by a 410, and enables it again", async () => {
    const p = page as Page;
    receiver.answers = [{ status: 410 }];
    await p.getByRole("button", { name: /^Actions for / }).click();
    await p.getByRole("menuitem", { name: "Send test event" }).click();
    await expect.poll(() => receiver.received.length, { timeout: 10_000 }).toBe(2);
    await p.reload();
    const notice = p.getByTestId("webhook-disabled-notice");
    await notice.waitFor();
    await expect(notice.textContent()).resolves.toContain("410 Gone");
    await shoot(p, "32-webhook-disabled");
    await notice.getByRole("button", { name: "Enable again" }).click();
    await expect.poll(() => notice.count()).toBe(0);
    await expect(p.getByTestId("webhook-row").textContent()).resolves.toMatch(/enabled/i);
  });
});
