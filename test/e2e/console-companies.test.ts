import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
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

/** One login in two companies: the account menu switches between them, and each shows only its own. */
describe("console: a person in two companies", () => {
  let env: Env;
  let first: Company;
  let second: Company;
  let factor: SecondFactor;
  let page: Page | undefined;
  const usernames = { first: "", second: "" };

  beforeAll(async () => {
    env = await startConsole();
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
    // They already have a login: no temporary password is made for them.
    expect(invited.body.data.temporary_password).toBeUndefined();
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
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") await failureShot(page, ctx.task.name);
  });

  it("signs in to the first company, switches to the second, and sees the second's API users only", async () => {
    const opened = await newPage(env);
    page = opened.page;
    await signIn(page, first.ownerEmail, PASSWORD, factor);
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await expect(page.getByTestId("current-company").textContent()).resolves.toBe("First Freight");

    await page.goto("/settings/access");
    const list = page.getByTestId("api-users-list");
    await list.getByText(usernames.first).waitFor();
    await expect(list.getByText(usernames.second).count()).resolves.toBe(0);

    await page.getByRole("button", { name: `Account: ${first.ownerEmail}` }).click();
    await page.getByRole("menuitem", { name: "Switch to Second Sprockets" }).waitFor();
    await shoot(page, "40-company-switcher");
    await page.getByRole("menuitem", { name: "Switch to Second Sprockets" }).click();
    // The console loads afresh in the other company.
    await page.waitForURL(/\/keys$/);
    await expect.poll(() => page?.getByTestId("current-company").textContent()).toBe("Second Sprockets");
    // A developer there, whatever they are in the first company.
    await page
      .getByRole("button", { name: `Account: ${first.ownerEmail}` })
      .getByText("Developer")
      .waitFor();

    await page.goto("/settings/access");
    await list.getByText(usernames.second).waitFor();
    await expect(list.getByText(usernames.first).count()).resolves.toBe(0);
    expect(opened.errors).toEqual([]);
    await opened.context.close();
  });
});
