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
  type SecondFactor as Factor,
  failureShot,
  firstSignIn,
  newPage,
  PASSWORD,
  SecondFactor,
  shoot,
  signIn,
  startConsole,
} from "./console-helpers.ts";

const NEW_PASSWORD = "Copper-Meadow-Falcon-93";

/**
 * Getting back in, in a real Chromium against a real server that mails through a real local SMTP
 * server: an invitation followed from its mail, forgot-password through to signing in with the new
 * password, and an owner resetting a person's 2FA, after which they enrol again.
 */
describe("console: email and recovery in a browser", () => {
  let env: Env;
  let smtp: LocalSmtp;
  let company: Company;
  let owner: Page;
  let person: Page;
  let ownerFactor: Factor;
  let personFactor: Factor;
  const email = `dev-${Date.now()}@acme.example`;

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
    company = await createCompany(env);
    ({ page: owner } = await newPage(env));
    ({ page: person } = await newPage(env));
  });
  afterAll(async () => {
    await env?.close();
    await smtp?.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") {
      await failureShot(owner, `${ctx.task.name}-owner`);
      await failureShot(person, `${ctx.task.name}-person`);
    }
  });

  /** Sets a password on the page a mailed link opens, then goes to sign in. */
  const choosePassword = async (page: Page, link: string, password: string, heading: string) => {
    await page.goto(link);
    await page.getByRole("heading", { name: heading }).waitFor();
    // The token is read from the #fragment and wiped from the address bar.
    expect(page.url()).not.toContain("token=");
    await byLabel(page, "New password").fill(password);
    await byLabel(page, "New password again").fill(password);
    await page.getByRole("button", { name: "Save password" }).click();
    await page.getByRole("heading", { name: "Password set" }).waitFor();
    await page.getByRole("button", { name: "Go to sign in" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
  };

  /** Enrols 2FA on the enrolment page and moves past the recovery codes. */
  const enrol = async (page: Page): Promise<Factor> => {
    await page.getByRole("heading", { name: "Set up two-factor authentication" }).waitFor();
    const secret = byLabel(page, "Secret");
    await expect.poll(() => secret.inputValue()).not.toBe("");
    const factor = new SecondFactor(await secret.inputValue());
    await byLabel(page, "Code from the app").fill(factor.next());
    await page.getByRole("button", { name: "Turn on 2FA" }).click();
    await page.getByTestId("recovery-codes").locator("code").first().waitFor();
    factor.recovery = await page.getByTestId("recovery-codes").locator("code").allInnerTexts();
    await page.getByRole("button", { name: /I have saved them/ }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    return factor;
  };

  it("invites a person by email; they follow the link, choose a password and enrol", async () => {
    ownerFactor = (await firstSignIn(owner, company.ownerEmail, company.temporaryPassword)) as Factor;
    await owner.getByRole("link", { name: "Settings › Access control" }).click();
    await owner.getByRole("tab", { name: "People" }).click();
    await owner.getByRole("button", { name: "Invite person" }).click();
    const dialog = owner.getByRole("dialog", { name: "Invite a person" });
    await byLabel(dialog, "Email").fill(email);
    await dialog.getByRole("button", { name: "Invite" }).click();
    await owner.getByText(`An invitation was emailed to ${email}`).waitFor();
    await owner.getByRole("button", { name: "OK" }).click();
    const invitation = await smtp.waitFor(email);
    expect(invitation.subject).toContain("Acme Payments");
    await choosePassword(person, linkOf(invitation), PASSWORD, "Choose your password");
    await signIn(person, email, PASSWORD);
    personFactor = await enrol(person);
  });

  it("resets a forgotten password through the link in the mail, and signs in with the new one", async () => {
    await person.getByRole("button", { name: /^Account:/ }).click();
    await person.getByRole("menuitem", { name: "Sign out" }).click();
    await person.getByRole("heading", { name: "Sign in" }).waitFor();
    await person.getByRole("button", { name: "Forgot password?" }).click();
    await person.getByRole("heading", { name: "Reset your password" }).waitFor();
    await byLabel(person, "Email").fill(email);
    await person.getByRole("button", { name: "Send link" }).click();
    await person
      .getByRole("status")
      .getByText(/a link to reset its password is on its way/)
      .waitFor();
    await shoot(person, "40-forgot-password");
    const mail = await smtp.waitFor(email, 3); // the invitation, the new device, the reset
    expect(mail.subject).toBe("Reset your Latchkey password");
    const link = linkOf(mail);
    await choosePassword(person, link, NEW_PASSWORD, "Choose a new password");
    // The old password is dead, the new one works with the second factor.
    await signIn(person, email, PASSWORD);
    await person.getByText("The email or password is wrong.").waitFor();
    await signIn(person, email, NEW_PASSWORD, personFactor);
    await person.getByRole("heading", { name: "API keys" }).waitFor();
    // Used once: the link again is refused by the server, and the page says so.
    await person.goto(link);
    await byLabel(person, "New password").fill("Another-Quiet-Orchard-58");
    await byLabel(person, "New password again").fill("Another-Quiet-Orchard-58");
    await person.getByRole("button", { name: "Save password" }).click();
    await person.getByText(/This link is not valid/).waitFor();
    await shoot(person, "41-reset-link-used");
  });

  it("lets an owner reset the person's 2FA with their own code; the person enrols again", async () => {
    await owner.reload();
    await owner.getByTestId("people-list").getByText(email).waitFor();
    const row = owner.getByTestId("people-list").getByRole("row").filter({ hasText: email });
    await row.getByRole("button", { name: "Reset 2FA" }).click();
    const dialog = owner.getByRole("dialog", { name: `Reset the 2FA of ${email}?` });
    await shoot(owner, "42-reset-2fa");
    await byLabel(dialog, "2FA code").fill(ownerFactor.next());
    await dialog.getByRole("button", { name: "Reset 2FA" }).click();
    await owner.getByText(`The 2FA of ${email} was reset.`).waitFor();
    await owner.getByRole("button", { name: "OK" }).click();
    await expect.poll(() => row.getByText("Not set up").count()).toBe(1);
    const notice = await smtp.waitFor(email, 4);
    expect(notice.subject).toMatch(/two-factor authentication was reset/);
    // The person's session ended; they sign in with the password alone and must enrol again.
    await person.goto("/");
    await person.getByRole("heading", { name: "Sign in" }).waitFor();
    await signIn(person, email, NEW_PASSWORD);
    await enrol(person);
  });
});
