import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { platformCtx } from "../../src/services/actor.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

interface Target {
  type: string;
  id: string;
  label?: string | null;
  credential_id?: string | null;
}
interface Event {
  action: string;
  target: Target | null;
}

/**
 * The audit list names each event's target as it is called now (looked up when read, not stored, so
 * the chain's hashes are untouched), with a key's API user for the console's link; and never names an
 * object of another company or of a world the reader cannot see.
 */
describe.each(BACKENDS)("audit targets named on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  let testAuditor = "";

  const events = async (key: string, query = "") => {
    const res = await h.call("GET", `/v1/audit${query}`, { key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.events as Event[];
  };

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Audit Labels Co");
    other = await h.createCompany("Audit Labels Other");
    testAuditor = (await h.createKey(co, { environment: "test", permissions: ["audit:read", "keys:manage"] }))
      .key;
  });
  afterAll(() => h.close());

  it("names a key by its current name and prefix, with its API user", async () => {
    const k = await h.createKey(co, { name: "Checkout backend", permissions: ["payin:read"] });
    const prefix = (await h.call("GET", `/v1/keys/${k.id}`, { key: co.key })).json().data.prefix as string;
    const renamed = await h.call("PATCH", `/v1/keys/${k.id}`, { key: co.key, json: { name: "Checkout v2" } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const about = await events(co.key, `?target=${k.id}`);
    expect(about.map((e) => e.action).sort()).toEqual(["key.created", "key.updated"]);
    for (const e of about)
      expect(e.target).toEqual({
        type: "key",
        id: k.id,
        label: `Checkout v2 (${prefix}…)`,
        credential_id: co.credentialId,
      });
  });

  it("names an API user by its name", async () => {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Settlement service", permissions: ["payin:read"] },
    });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json().data.id as string;
    const [created] = await events(co.key, `?target=${id}`);
    expect(created?.target).toEqual({ type: "credential", id, label: "Settlement service" });
  });

  it("names a test key for a test reader, and never a live object", async () => {
    const tk = await h.createKey(co, {
      environment: "test",
      name: "Sandbox key",
      permissions: ["payin:read"],
    });
    const [seen] = await events(testAuditor, `?target=${tk.id}`);
    expect(seen?.target?.label).toMatch(/^Sandbox key \(/);
    expect(seen?.target?.credential_id).toBe(co.testCredentialId);

    // An event a test reader may read whose target is a live key: the key stays unnamed.
    const live = await h.createKey(co, { name: "Live secret name", permissions: ["payin:read"] });
    await h.services.audit.record(platformCtx(), {
      action: "key.updated",
      companyId: co.id,
      environment: "test",
      target: { type: "key", id: live.id },
    });
    const [odd] = await events(testAuditor, `?target=${live.id}`);
    expect(odd?.target).toEqual({ type: "key", id: live.id, label: null, credential_id: null });
    expect(JSON.stringify(await events(testAuditor))).not.toContain("Live secret name");
    // A live reader sees the same event with the name.
    const [named] = await events(co.key, `?target=${live.id}&action=key.updated`);
    expect(named?.target?.label).toMatch(/^Live secret name \(/);
  });

  it("never names another company's object, even in an event that points at it", async () => {
    const foreign = await h.createKey(other, { name: "Other company key", permissions: ["payin:read"] });
    await h.services.audit.record(platformCtx(), {
      action: "key.updated",
      companyId: co.id,
      target: { type: "key", id: foreign.id },
    });
    const [e] = await events(co.key, `?target=${foreign.id}`);
    expect(e?.target).toEqual({ type: "key", id: foreign.id, label: null, credential_id: null });
    // And the other company's own trail is its own.
    expect(JSON.stringify(await events(other.key))).not.toContain("Checkout v2");
  });

  it("names the targets in an export as in the list, and leaves the chain as it was", async () => {
    const listed = await events(co.key);
    const exported = (await h.call("GET", "/v1/audit/export", { key: co.key })).body
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Event & { id: string });
    const byId = new Map(exported.map((e) => [e.id, e]));
    for (const e of listed as (Event & { id: string })[]) expect(byId.get(e.id)?.target).toEqual(e.target);
    // Renamed objects keep their events' hashes: the names are not part of the events.
    const res = await h.call("GET", "/v1/audit/verify", { key: co.key });
    expect(res.json().data).toMatchObject({ valid: true, first_broken_event_id: null });
  });
});
