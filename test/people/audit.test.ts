import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";
import {
  type AuditEvent,
  allEvents,
  allStrings,
  asPerson,
  freshCode,
  login,
  mgmtKey,
  type NewCompany,
  newCompany,
  onboard,
  onboardOwner,
  type Person,
  relogin,
  uniqueEmail,
  wrongCode,
} from "./people-helpers.ts";

const UA = "latchkey-audit-test/1.0";

describe.each(BACKENDS)("people: the audit trail on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  let dev: Person;
  /** Everything secret handed out during the scenario; none may appear in the trail. */
  const secrets: string[] = [];
  const ids: Record<string, string> = {};
  let midpoint: Date;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Audit Co");
    secrets.push(co.key, co.owner.temporaryPassword);
    owner = await onboardOwner(h, co);
    secrets.push(owner.password, owner.secret as string, ...owner.recoveryCodes);

    // A failed sign-in, then a good one with a code.
    const bad = await login(h, owner.email, "Wrong-Password-For-Audit-1", { ip: "192.0.2.10" });
    expect(bad.statusCode).toBe(401);
    await relogin(h, owner);
    secrets.push(owner.session.cookie.slice("lk_session=".length), owner.session.csrf);

    const ua = { "user-agent": UA };
    const k1 = await asPerson(h, owner.session, "POST", "/v1/keys", {
      code: freshCode(h, owner),
      headers: ua,
      json: { name: "audited live", environment: "live", credential_id: co.credentialId, with_secret: true },
    });
    expect(k1.statusCode, k1.body).toBe(201);
    ids.k1 = k1.json().data.id;
    secrets.push(k1.json().data.key, k1.json().data.secret);

    const k2 = await mgmtKey(h, co, { name: "by machine" });
    ids.k2 = k2.id;
    secrets.push(k2.key);

    const fence = await asPerson(h, owner.session, "PATCH", `/v1/keys/${ids.k1}`, {
      code: freshCode(h, owner),
      json: { allowed_ips: ["198.51.100.0/24"] },
    });
    expect(fence.statusCode, fence.body).toBe(200);

    h.clock.advance(600);
    midpoint = new Date(h.clock.now.getTime());
    h.clock.advance(1);

    const rotated = await asPerson(h, owner.session, "POST", `/v1/keys/${ids.k1}/rotate`, {
      code: freshCode(h, owner),
      json: { grace_seconds: 60 },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    ids.k1b = rotated.json().data.id;
    secrets.push(rotated.json().data.key, rotated.json().data.secret);
    const revoked = await asPerson(h, owner.session, "DELETE", `/v1/keys/${ids.k1b}`, {
      code: freshCode(h, owner),
    });
    expect(revoked.statusCode, revoked.body).toBe(200);

    const cred = await asPerson(h, owner.session, "POST", "/v1/credentials", {
      json: { name: "audited credential", permissions: ["onramp:read"] },
    });
    expect(cred.statusCode, cred.body).toBe(201);
    ids.cred = cred.json().data.id;
    const described = await asPerson(h, owner.session, "PATCH", `/v1/credentials/${ids.cred}`, {
      json: { description: "now described" },
    });
    expect(described.statusCode).toBe(200);
    const credIps = await asPerson(h, owner.session, "PATCH", `/v1/credentials/${ids.cred}`, {
      code: freshCode(h, owner),
      json: { allowed_ips: ["203.0.113.0/24"] },
    });
    expect(credIps.statusCode, credIps.body).toBe(200);
    const pw = await asPerson(h, owner.session, "POST", `/v1/credentials/${ids.cred}/password`, {
      code: freshCode(h, owner),
    });
    expect(pw.statusCode, pw.body).toBe(200);
    secrets.push(pw.json().data.password);
    const off = await asPerson(h, owner.session, "PATCH", `/v1/credentials/${ids.cred}`, {
      json: { status: "inactive" },
    });
    expect(off.statusCode).toBe(200);

    const devEmail = uniqueEmail("audited-dev");
    const inv = await asPerson(h, owner.session, "POST", "/v1/users", {
      json: { email: devEmail, role: "developer" },
    });
    expect(inv.statusCode, inv.body).toBe(201);
    const devId: string = inv.json().data.id;
    ids.dev = devId;
    secrets.push(inv.json().data.temporary_password);
    dev = await onboard(h, devId, devEmail, inv.json().data.temporary_password, {
      password: "Dev-Secret-Words-938",
    });
    secrets.push(dev.password, dev.secret as string, ...dev.recoveryCodes);
    const role = await asPerson(h, owner.session, "PATCH", `/v1/users/${ids.dev}`, {
      json: { role: "viewer" },
    });
    expect(role.statusCode, role.body).toBe(200);
    const disabled = await asPerson(h, owner.session, "PATCH", `/v1/users/${ids.dev}`, {
      json: { status: "disabled" },
    });
    expect(disabled.statusCode).toBe(200);
  });
  afterAll(() => h.close());

  const events = () => allEvents(h, { session: owner.session });
  const find = (list: AuditEvent[], action: string, target?: string) =>
    list.filter((e) => e.action === action && (target === undefined || e.target?.id === target));

  it("records every write with its actor, target, changes, address, user agent and 2FA flag", async () => {
    const list = await events();
    const expected: [string, string | undefined][] = [
      ["company.created", co.id],
      ["user.created", owner.id],
      ["credential.created", co.credentialId],
      ["user.password_changed", owner.id],
      ["user.totp_enrolled", owner.id],
      ["user.login_failed", owner.id],
      ["user.login", owner.id],
      ["key.created", ids.k1],
      ["key.created", ids.k2],
      ["allowed_ips.changed", ids.k1],
      ["key.rotated", ids.k1],
      ["key.revoked", ids.k1b],
      ["credential.created", ids.cred],
      ["credential.updated", ids.cred],
      ["allowed_ips.changed", ids.cred],
      ["credential.password_generated", ids.cred],
      ["credential.deactivated", ids.cred],
      ["user.created", ids.dev],
      ["user.login", ids.dev],
      ["user.password_changed", ids.dev],
      ["user.totp_enrolled", ids.dev],
      ["user.role_changed", ids.dev],
      ["user.disabled", ids.dev],
    ];
    for (const [action, target] of expected) {
      expect(find(list, action, target).length, `${action} on ${target}`).toBeGreaterThanOrEqual(1);
    }

    const [byPerson] = find(list, "key.created", ids.k1) as [AuditEvent];
    expect(byPerson).toMatchObject({
      actor: { type: "user", id: owner.id, label: owner.email },
      target: { type: "key", id: ids.k1 },
      totp_used: true,
      ip: "127.0.0.1",
      user_agent: UA,
    });
    expect(byPerson.changes).toMatchObject({ after: { name: "audited live", environment: "live" } });
    expect(byPerson.id).toMatch(/^evt_/);
    expect(Number.isNaN(Date.parse(byPerson.at))).toBe(false);

    const [byKey] = find(list, "key.created", ids.k2) as [AuditEvent];
    expect(byKey).toMatchObject({
      actor: { type: "key", id: co.keyId, label: co.keyPrefix },
      totp_used: false,
    });

    for (const [action, target] of [
      ["key.rotated", ids.k1],
      ["key.revoked", ids.k1b],
      ["allowed_ips.changed", ids.k1],
      ["allowed_ips.changed", ids.cred],
      ["credential.password_generated", ids.cred],
    ] as const) {
      const [e] = find(list, action, target) as [AuditEvent];
      expect(e, `${action}`).toMatchObject({
        actor: { type: "user", id: owner.id, label: owner.email },
        totp_used: true,
      });
    }
    const [ips] = find(list, "allowed_ips.changed", ids.k1) as [AuditEvent];
    expect(ips.changes).toMatchObject({
      before: { allowed_ips: [] },
      after: { allowed_ips: ["198.51.100.0/24"] },
    });
    const [roleChange] = find(list, "user.role_changed", ids.dev) as [AuditEvent];
    expect(roleChange.changes).toMatchObject({ before: { role: "developer" }, after: { role: "viewer" } });
    const [deactivated] = find(list, "credential.deactivated", ids.cred) as [AuditEvent];
    expect(deactivated.changes).toMatchObject({
      before: { status: "active" },
      after: { status: "inactive" },
    });

    const failed = find(list, "user.login_failed", owner.id);
    expect(failed.some((e) => e.ip === "192.0.2.10")).toBe(true);
    const logins = find(list, "user.login", owner.id);
    expect(logins.some((e) => e.totp_used && e.actor.type === "user" && e.actor.label === owner.email)).toBe(
      true,
    );

    // Newest first, by sequence.
    const seqs = list.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
  });

  it("holds no secret anywhere: no key, key secret, password, TOTP secret, recovery code or session token", async () => {
    const list = await events();
    const exported = await asPerson(h, owner.session, "GET", "/v1/audit/export");
    expect(exported.statusCode).toBe(200);
    const strings = [...allStrings(list), exported.body];
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThanOrEqual(10);
      for (const s of strings)
        expect(s.includes(secret), `secret ${secret.slice(0, 12)}… leaked`).toBe(false);
    }
    for (const s of strings) {
      expect(s).not.toMatch(/lk_(live|test)_s[ks]_[0-9A-Za-z]{30,}/);
      expect(s).not.toMatch(/\$argon2/);
    }
  });

  it("filters by actor (id or email), action (exact or prefix.*), target, since and until", async () => {
    const all = await events();
    const byEmail = await allEvents(
      h,
      { session: owner.session },
      `actor=${encodeURIComponent(owner.email)}`,
    );
    expect(byEmail.length).toBeGreaterThan(5);
    expect(byEmail.every((e) => e.actor.label === owner.email)).toBe(true);
    expect(byEmail.length).toBe(
      all.filter((e) => e.actor.label === owner.email || e.actor.id === owner.email).length,
    );

    const byKeyId = await allEvents(h, { session: owner.session }, `actor=${co.keyId}`);
    expect(byKeyId.length).toBeGreaterThanOrEqual(1);
    expect(byKeyId.every((e) => e.actor.id === co.keyId)).toBe(true);

    const created = await allEvents(h, { session: owner.session }, "action=key.created");
    expect(created.map((e) => e.target?.id).sort()).toEqual(
      all
        .filter((e) => e.action === "key.created")
        .map((e) => e.target?.id)
        .sort(),
    );
    expect(created.length).toBeGreaterThanOrEqual(3);

    const keyEvents = await allEvents(h, { session: owner.session }, "action=key.*");
    expect(keyEvents.every((e) => e.action.startsWith("key."))).toBe(true);
    expect(new Set(keyEvents.map((e) => e.action))).toEqual(
      new Set(["key.created", "key.rotated", "key.revoked"]),
    );

    const onK1 = await allEvents(h, { session: owner.session }, `target=${ids.k1}`);
    expect(onK1.every((e) => e.target?.id === ids.k1)).toBe(true);
    expect(onK1.map((e) => e.action).sort()).toEqual(["allowed_ips.changed", "key.created", "key.rotated"]);

    const combined = await allEvents(
      h,
      { session: owner.session },
      `action=allowed_ips.changed&target=${ids.cred}`,
    );
    expect(combined).toHaveLength(1);

    const iso = encodeURIComponent(midpoint.toISOString());
    const since = await allEvents(h, { session: owner.session }, `since=${iso}`);
    const until = await allEvents(h, { session: owner.session }, `until=${iso}`);
    expect(since.length).toBeGreaterThan(0);
    expect(until.length).toBeGreaterThan(0);
    expect(since.every((e) => Date.parse(e.at) >= midpoint.getTime())).toBe(true);
    expect(until.every((e) => Date.parse(e.at) < midpoint.getTime())).toBe(true);
    expect(since.length + until.length).toBe(all.length);
    expect(since.some((e) => e.action === "key.rotated")).toBe(true);
    expect(until.some((e) => e.action === "key.created" && e.target?.id === ids.k1)).toBe(true);
    const window = await allEvents(
      h,
      { session: owner.session },
      `since=${encodeURIComponent(new Date(0).toISOString())}&until=${iso}&action=key.created`,
    );
    expect(window.map((e) => e.target?.id).sort()).toEqual([ids.k1, ids.k2, co.keyId].sort());

    const bad = await asPerson(h, owner.session, "GET", "/v1/audit?since=yesterday");
    expect(bad.statusCode).toBe(400);
  });

  it("pages with a cursor: every event once, newest first, whatever the page size", async () => {
    const all = await events();
    for (const [limit, query] of [
      [3, ""],
      [1, "action=key.*&"],
      [7, `target=${ids.cred}&`],
    ] as const) {
      const seen: AuditEvent[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await asPerson(
          h,
          owner.session,
          "GET",
          `/v1/audit?${query}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
        );
        expect(res.statusCode, res.body).toBe(200);
        const d = res.json().data;
        expect(d.events.length).toBeLessThanOrEqual(limit);
        seen.push(...d.events);
        cursor = d.next_cursor;
        pages += 1;
        expect(pages).toBeLessThan(100);
      } while (cursor);
      const expected = await allEvents(h, { session: owner.session }, query.replace(/&$/, ""));
      expect(seen.map((e) => e.id)).toEqual(expected.map((e) => e.id));
      expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
      if (query === "") {
        expect(seen.map((e) => e.id)).toEqual(all.map((e) => e.id));
        expect(pages).toBe(Math.ceil(all.length / limit));
      }
    }
  });

  it("exports the trail as NDJSON, oldest first, honouring filters", async () => {
    const all = await events();
    const res = await asPerson(h, owner.session, "GET", "/v1/audit/export");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    expect(res.body.endsWith("\n")).toBe(true);
    const lines = res.body.split("\n").filter((l) => l !== "");
    expect(lines.length).toBe(all.length);
    const parsed = lines.map((l) => JSON.parse(l) as AuditEvent);
    expect(parsed.map((e) => e.id)).toEqual([...all].reverse().map((e) => e.id));
    expect(parsed.map((e) => e.seq)).toEqual(parsed.map((_, i) => i + 1));
    expect(parsed[0]).toEqual([...all].reverse()[0]);

    const filtered = await asPerson(
      h,
      owner.session,
      "GET",
      `/v1/audit/export?action=key.*&actor=${owner.id}`,
    );
    const fl = filtered.body
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as AuditEvent);
    expect(fl.length).toBeGreaterThan(0);
    expect(fl.every((e) => e.action.startsWith("key.") && e.actor.id === owner.id)).toBe(true);
    const listed = await allEvents(h, { session: owner.session }, `action=key.*&actor=${owner.id}`);
    expect(fl.map((e) => e.id)).toEqual(listed.map((e) => e.id).reverse());

    const byKey = await h.call("GET", "/v1/audit/export", { key: co.key });
    expect(byKey.statusCode).toBe(200);
  });

  it("GET /v1/audit/verify finds an intact chain valid", async () => {
    const all = await events();
    for (const res of [
      await asPerson(h, owner.session, "GET", "/v1/audit/verify"),
      await h.call("GET", "/v1/audit/verify", { key: co.key }),
    ]) {
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().data).toEqual({
        valid: true,
        events_checked: all.length,
        first_broken_event_id: null,
      });
    }
  });

  it("a management key with audit:read reads the trail; one without gets 403", async () => {
    const reader = await mgmtKey(h, co, {
      name: "auditor",
      environment: "live",
      permissions: ["audit:read"],
    });
    const other = await mgmtKey(h, co, {
      name: "no audit",
      environment: "live",
      permissions: ["keys:manage"],
    });
    for (const url of ["/v1/audit", "/v1/audit/verify", "/v1/audit/export", `/v1/audit?target=${ids.k1}`]) {
      const ok = await h.call("GET", url, { key: reader.key });
      expect(ok.statusCode, `${url}: ${ok.body}`).toBe(200);
      const refused = await h.call("GET", url, { key: other.key });
      expect(refused.statusCode, url).toBe(403);
      expect(refused.json().error.code).toBe("INSUFFICIENT_PERMISSIONS");
    }
  });

  it("the store holds passwords, recovery codes, TOTP secrets and session tokens only hashed or sealed", async () => {
    const user = await h.store.db
      .selectFrom("users")
      .selectAll()
      .where("id", "=", owner.id)
      .executeTakeFirstOrThrow();
    expect(user.password_hash).toMatch(/^\$argon2id\$/);
    const dump = JSON.stringify(user);
    expect(dump).not.toContain(owner.password);
    expect(dump).not.toContain(owner.secret as string);
    const codes = await h.store.db
      .selectFrom("recovery_codes")
      .selectAll()
      .where("user_id", "=", owner.id)
      .execute();
    expect(codes).toHaveLength(10);
    const sessions = await h.store.db
      .selectFrom("sessions")
      .selectAll()
      .where("user_id", "=", owner.id)
      .execute();
    expect(sessions.length).toBeGreaterThan(0);
    const stored = JSON.stringify([codes, sessions]);
    for (const code of owner.recoveryCodes) expect(stored).not.toContain(code);
    expect(stored).not.toContain(owner.session.cookie.slice("lk_session=".length));
  });

  it("a refused write records nothing; its event and its change happen together", async () => {
    await relogin(h, owner);
    const before = await events();
    const refused = await asPerson(h, owner.session, "POST", "/v1/keys", {
      code: wrongCode(owner.secret as string, h.clock.now),
      json: { name: "never", environment: "test", credential_id: co.testCredentialId },
    });
    expect(refused.statusCode).toBe(403);
    const dup = await asPerson(h, owner.session, "POST", "/v1/users", {
      json: { email: owner.email, role: "viewer" },
    });
    expect(dup.statusCode).toBe(409);
    const after = await events();
    expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));
  });
});

describe.each(BACKENDS)("people: tampering with the audit trail on %s", (kind) => {
  let h: Harness;
  let untouched: Company;

  beforeAll(async () => {
    h = await createHarness(kind);
    untouched = await h.createCompany();
  });
  afterAll(() => h.close());

  /** A company with a handful of events, oldest first as stored. */
  const companyWithEvents = async () => {
    const c: Company = await h.createCompany();
    for (const name of ["one", "two", "three"]) await h.createKey(c, { name, environment: "test" });
    const verify = await h.call("GET", "/v1/audit/verify", { key: c.key });
    expect(verify.json().data.valid).toBe(true);
    const rows = await h.store.db
      .selectFrom("audit_events")
      .select(["id", "seq", "changes"])
      .where("chain", "=", c.id)
      .orderBy("seq", "asc")
      .execute();
    expect(rows.length).toBeGreaterThanOrEqual(6);
    return { c, rows };
  };
  const verifyOf = async (c: Company) => {
    const res = await h.call("GET", "/v1/audit/verify", { key: c.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data as {
      valid: boolean;
      events_checked: number;
      first_broken_event_id: string | null;
    };
  };

  it("an edited row breaks the chain at that row; restoring it mends it", async () => {
    const { c, rows } = await companyWithEvents();
    const victim = rows[3] as (typeof rows)[number];
    const original = JSON.stringify(victim.changes);
    await sql`UPDATE audit_events SET changes = ${JSON.stringify({ after: { name: "forged" } })}::jsonb
              WHERE id = ${victim.id}`.execute(h.store.db);
    const broken = await verifyOf(c);
    expect(broken.valid).toBe(false);
    expect(broken.first_broken_event_id).toBe(victim.id);

    await sql`UPDATE audit_events SET changes = ${original}::jsonb WHERE id = ${victim.id}`.execute(
      h.store.db,
    );
    expect(await verifyOf(c)).toEqual({
      valid: true,
      events_checked: rows.length,
      first_broken_event_id: null,
    });
  });

  it("an edited actor or 2FA flag is caught as well", async () => {
    const { c, rows } = await companyWithEvents();
    const victim = rows[rows.length - 2] as (typeof rows)[number];
    await sql`UPDATE audit_events SET actor_label = 'someone-else', totp_used = true WHERE id = ${victim.id}`.execute(
      h.store.db,
    );
    const broken = await verifyOf(c);
    expect(broken.valid).toBe(false);
    expect(broken.first_broken_event_id).toBe(victim.id);
  });

  it("a deleted middle row is detected at its successor", async () => {
    const { c, rows } = await companyWithEvents();
    const victim = rows[2] as (typeof rows)[number];
    const successor = rows[3] as (typeof rows)[number];
    await sql`DELETE FROM audit_events WHERE id = ${victim.id}`.execute(h.store.db);
    const broken = await verifyOf(c);
    expect(broken.valid).toBe(false);
    expect(broken.first_broken_event_id).toBe(successor.id);

    // The operator's view: only this company's chain is broken.
    const all = await h.call("GET", "/v1/admin/audit/verify", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(all.statusCode).toBe(200);
    const chains = all.json().data.chains as { chain: string; valid: boolean }[];
    expect(all.json().data.valid).toBe(false);
    expect(chains.find((x) => x.chain === c.id)?.valid).toBe(false);
    expect(chains.find((x) => x.chain === untouched.id)?.valid).toBe(true);
  });

  it("concurrent writes keep one unbroken chain", async () => {
    const c: Company = await h.createCompany();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        h.call("POST", "/v1/keys", {
          key: c.key,
          json: { name: `parallel ${i}`, environment: "test", credential_id: c.testCredentialId },
        }),
      ),
    );
    expect(results.map((r) => r.statusCode)).toEqual(Array(12).fill(201));
    const count = await h.store.db
      .selectFrom("audit_events")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("chain", "=", c.id)
      .executeTakeFirstOrThrow();
    expect(await verifyOf(c)).toEqual({
      valid: true,
      events_checked: Number(count.n),
      first_broken_event_id: null,
    });
  });

  it("a deleted newest row is detected, and the untouched company's chain stays valid", async () => {
    const { c, rows } = await companyWithEvents();
    const newest = rows[rows.length - 1] as (typeof rows)[number];
    await sql`DELETE FROM audit_events WHERE id = ${newest.id}`.execute(h.store.db);
    const broken = await verifyOf(c);
    expect(broken.valid).toBe(false);
    expect(broken.events_checked).toBe(rows.length - 1);
    const other = await verifyOf(untouched);
    expect(other.valid).toBe(true);
  });

  it("deleting the whole trail is detected", async () => {
    const { c } = await companyWithEvents();
    await sql`DELETE FROM audit_events WHERE chain = ${c.id}`.execute(h.store.db);
    expect((await verifyOf(c)).valid).toBe(false);
  });
});
