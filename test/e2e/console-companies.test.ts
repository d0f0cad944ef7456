import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SmtpMailer } from "../../src/services/mailer.ts";
import { freePort } from "../helpers/nodes.ts";
import { LocalSmtp, linkOf } from "../helpers/smtp.ts";
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
  startConsole,
} from "./console-helpers.ts";

/**
 * One login in two companies: the second company's invitation is mailed (a real local SMTP server) and
 * accepted in the browser after signing in; the account menu then switches between them, and each
 * shows only its own.
 */
describe("console: a person in two companies", () => {
  let env: Env;
  let smtp: LocalSmtp;
  let first: Company;
  let second: Company;
  let factor: SecondFactor;
  let page: Page | undefined;
  const usernames = { first: "", second: "" };

  beforeAll(async () => {
    smtp = new LocalSmtp();
    const smtpUrl = await smtp.start();
    const port = await freePort();
    env = await startConsole({
      port,
      services: {
        mailer: new SmtpMailer(smtpUrl, "Latchkey <keys@acme.example>"),
        publicUrl: `http://127.0.0.1:${port}`,
      },
    });
    first = await createCompany(env, "First Freight");
    second = await createCompany(env, "Second Sprockets");
    // The first company's owner is the person under test; the second company's owner invites them.
    ({ factor } = await readyOwner(env, first));
    const { session: secondOwner } = await readyOwner(env, second);
    const invited = await secondOwner.call("POST", "/v1/users", {
      email: first.ownerEmail,
      role: "developer",
    });
    expect(invited.status, JSON.stringify(invited.body)).toBe(201);
    // They already have a login: no temporary password is made for them, and with SMTP no link shown.
    expect(invited.body.data.temporary_password).toBeUndefined();
    expect(invited.body.data.accept_link).toBeUndefined();
    for (const [which, co] of [
      ["first", first],
      ["second", second],
    ] as const) {
      const cred = await http(env, "GET", `/v1/credentials/${co.defaultCredentialId}`, {
        headers: { "x-api-key": co.managementKey },
      });
      usernames[which] = cred.body.data.username;
    }
    expect(usernames.first).not.toBe(usernames.second);
  });
  afterAll(async () => {
    await env?.close();
    await smtp?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  it("follows the mailed link, signs in, joins the second company, and sees each company's API users only", async () => {
    const mail = await smtp.waitForMatch(first.ownerEmail, (m) => m.subject.includes("Second Sprockets"));
    expect(mail.subject).toBe("You were invited to Second Sprockets on Latchkey");
    const link = linkOf(mail);
    expect(link).toContain("/accept-membership#token=");
    const opened = await newPage(env);
    page = opened.page;
    // Not signed in: the link's page asks for the login first, then comes back to the offer.
    await page.goto(link);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    expect(page.url()).not.toContain("token=");
    await byLabel(page, "Email").fill(first.ownerEmail);
    await byLabel(page, "Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await byLabel(page, "Authentication code").fill(factor.next());
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "Join a company" }).waitFor();
    await shoot(page, "41-join-company");
    await page.getByRole("button", { name: "Join the company" }).click();
    // Joined, the console loads afresh in the second company, as a developer there.
    await page.waitForURL(/\/keys$/);
    await expect.poll(() => page?.getByTestId("current-company").textContent()).toBe("Second Sprockets");
    await page
      .getByRole("button", { name: `Account: ${first.ownerEmail}` })
      .getByText("Developer")
      .waitFor();
    const list = page.getByTestId("api-users-list");
    await page.goto("/settings/access");
    await list.getByText(usernames.second).waitFor();
    await expect(list.getByText(usernames.first).count()).resolves.toBe(0);

    await page.getByRole("button", { name: `Account: ${first.ownerEmail}` }).click();
    await page.getByRole("menuitem", { name: "Switch to First Freight" }).waitFor();
    await shoot(page, "40-company-switcher");
    await page.getByRole("menuitem", { name: "Switch to First Freight" }).click();
    await page.waitForURL(/\/keys$/);
    await expect.poll(() => page?.getByTestId("current-company").textContent()).toBe("First Freight");
    await page.goto("/settings/access");
    await list.getByText(usernames.first).waitFor();
    await expect(list.getByText(usernames.second).count()).resolves.toBe(0);

    // The link worked once: opened again, it is refused.
    await page.goto(link);
    await page.getByRole("button", { name: "Join the company" }).click();
    await page.getByText("This link is not valid").waitFor();
    expect(opened.errors.filter((e) => !e.includes("400"))).toEqual([]);
    await opened.context.close();
  });
});
