import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SmtpMailer } from "../../src/services/mailer.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import { LocalSmtp } from "../helpers/smtp.ts";
import { allEvents, mgmtKey, type NewCompany, newCompany, onboardOwner } from "./people-helpers.ts";

const TEST = { "x-latchkey-environment": "test" };

/**
 * An API user's email for notices (the WEpayments "can be a fictitious email"): shown, changed and
 * audited like its other fields, and its keys' leak and expiry notices go there as well as to the owners.
 */
describe.each(BACKENDS)("an API user's email for notices on %s, with SMTP", (kind) => {
  let h: Harness;
  let smtp: LocalSmtp;
  let co: NewCompany;

  beforeAll(async () => {
    smtp = new LocalSmtp();
    const url = await smtp.start();
    h = await createHarness(kind, {
      services: { mailer: new SmtpMailer(url, "Latchkey <keys@example.test>") },
    });
    co = await newCompany(h, "Notice Co");
    await onboardOwner(h, co);
  });
  afterAll(async () => {
    await h.close();
    await smtp.close();
  });

  async function apiUser(body: Record<string, unknown>, key = co.key) {
    const res = await h.call("POST", "/v1/credentials", {
      key,
      json: { name: "Checkout", permissions: ["keys:verify"], ...body },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string; email: string | null; environment: string };
  }

  async function leak(credentialId: string, environment: "live" | "test", name: string) {
    const key = await mgmtKey(h, co, {
      name,
      environment,
      credential_id: credentialId,
      permissions: ["keys:verify"],
    });
    const res = await h.call("POST", "/v1/leaks", {
      json: { token: key.key, url: "https://gist.example/y" },
    });
    expect(res.statusCode).toBe(202);
    await h.services.leaks.settled();
    await h.services.keyNoticeMail.settled();
    await smtp.waitForMatch(co.owner.email, (m) => m.text.includes(name));
    await h.services.mail.settled();
  }

  it("stores it lower-cased, shows it, changes and clears it, audited", async () => {
    const made = await apiUser({ email: "Ops.Team@Merchant.Example" });
    expect(made.email).toBe("ops.team@merchant.example");
    const read = await h.call("GET", `/v1/credentials/${made.id}`, { key: co.key });
    expect(read.json().data.email).toBe("ops.team@merchant.example");
    expect((await apiUser({})).email).toBeNull();

    const changed = await h.call("PATCH", `/v1/credentials/${made.id}`, {
      key: co.key,
      json: { email: "Billing@Merchant.Example" },
    });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json().data.email).toBe("billing@merchant.example");
    const cleared = await h.call("PATCH", `/v1/credentials/${made.id}`, {
      key: co.key,
      json: { email: null },
    });
    expect(cleared.json().data.email).toBeNull();

    const events = await allEvents(h, { key: co.key }, `target=${made.id}`);
    const created = events.find((e) => e.action === "credential.created");
    expect(created?.changes).toMatchObject({ after: { email: "ops.team@merchant.example" } });
    const updates = events.filter((e) => e.action === "credential.updated").map((e) => e.changes);
    expect(updates).toContainEqual({
      before: { email: "ops.team@merchant.example" },
      after: { email: "billing@merchant.example" },
    });
    expect(updates).toContainEqual({ before: { email: "billing@merchant.example" }, after: { email: null } });
  });

  it("is not unique: two API users may share one (it is no sign-in)", async () => {
    const a = await apiUser({ email: "shared@merchant.example" });
    const b = await apiUser({ email: "Shared@merchant.example" });
    expect(a.email).toBe(b.email);
  });

  it("mails a leaked key's notice to its API user's email and the owners", async () => {
    const cred = await apiUser({ email: "Leak.Watch@Merchant.Example" });
    await leak(cred.id, "live", "Leaky live");
    const mail = await smtp.waitForMatch("leak.watch@merchant.example", (m) => m.text.includes("Leaky live"));
    expect(mail.subject).toMatch(/found in public/);
    expect(mail.to).toEqual(["leak.watch@merchant.example"]);
  });

  it("mails only the owners for an API user without one", async () => {
    const cred = await apiUser({});
    const before = smtp.messages.length;
    await leak(cred.id, "live", "Leaky bare");
    const sent = smtp.messages.slice(before).filter((m) => m.text.includes("Leaky bare"));
    expect(sent.flatMap((m) => m.to)).toEqual([co.owner.email]);
  });

  it("stops mailing an address once it is cleared", async () => {
    const cred = await apiUser({ email: "gone@merchant.example" });
    await h.call("PATCH", `/v1/credentials/${cred.id}`, { key: co.key, json: { email: null } });
    await leak(cred.id, "live", "Leaky cleared");
    expect(smtp.to("gone@merchant.example")).toHaveLength(0);
  });

  it("mails an expiring key's notice to its API user's email", async () => {
    const cred = await apiUser({ email: "expiry@merchant.example" });
    const expires = new Date(h.clock.now.getTime() + 3 * 24 * 3600_000).toISOString();
    await mgmtKey(h, co, {
      name: "Short lived user key",
      environment: "live",
      credential_id: cred.id,
      permissions: ["keys:verify"],
      expires_at: expires,
    });
    await h.services.expiryScheduler.runOnce();
    await h.services.keyNoticeMail.settled();
    const mail = await smtp.waitForMatch("expiry@merchant.example", (m) =>
      m.text.includes("Short lived user key"),
    );
    expect(mail.subject).toMatch(/expires soon/);
    expect(mail.text).toContain(expires);
  });

  it("mails a test API user's address for its test key, and keeps worlds and companies apart", async () => {
    const testUser = await apiUser({ environment: "test", email: "sandbox@merchant.example" });
    expect(testUser.environment).toBe("test");
    await leak(testUser.id, "test", "Leaky test");
    await smtp.waitForMatch("sandbox@merchant.example", (m) => m.text.includes("Leaky test"));

    const live = await apiUser({ email: "live-only@merchant.example" });
    // A test caller neither reads nor changes a live API user's email.
    const testKey = await mgmtKey(h, co, { name: "test manager", permissions: ["keys:manage"] });
    const asTest = await h.call("PATCH", `/v1/credentials/${live.id}`, {
      key: testKey.key,
      headers: TEST,
      json: { email: "attacker@evil.example" },
    });
    expect(asTest.statusCode).toBeGreaterThanOrEqual(400);
    expect(asTest.statusCode).toBeLessThan(500);
    // Another company can neither read nor change it.
    const other = await newCompany(h, "Other Notice Co");
    const foreignRead = await h.call("GET", `/v1/credentials/${live.id}`, { key: other.key });
    expect(foreignRead.statusCode).toBe(404);
    const foreign = await h.call("PATCH", `/v1/credentials/${live.id}`, {
      key: other.key,
      json: { email: "attacker@evil.example" },
    });
    expect(foreign.statusCode).toBe(404);
    const still = await h.call("GET", `/v1/credentials/${live.id}`, { key: co.key });
    expect(still.json().data.email).toBe("live-only@merchant.example");
  });
});
