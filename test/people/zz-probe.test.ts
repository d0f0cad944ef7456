import { afterAll, beforeAll, describe, it } from "vitest";
import { createHarness, type Harness } from "../helpers/harness.ts";
import { asPerson, freshCode, invite, mgmtKey, newCompany, onboardOwner } from "./people-helpers.ts";

describe("probe", () => {
  let h: Harness;
  beforeAll(async () => { h = await createHarness("pglite"); });
  afterAll(() => h.close());
  it("esc", async () => {
    const co = await newCompany(h);
    const owner = await onboardOwner(h, co);
    const dev = await invite(h, owner, "developer");
    const live = await mgmtKey(h, co, { environment: "live", permissions: ["onramp:read"] });
    const live2 = await mgmtKey(h, co, { environment: "live", permissions: ["onramp:read"] });
    const m = await asPerson(h, dev.session, "POST", "/v1/keys", { code: freshCode(h, dev), json: { name: "d", environment: "test", credential_id: co.credentialId, permissions: ["keys:manage", "onramp:read"] } });
    const k = m.json().data.key;
    const out = [m.statusCode,
      (await h.call("PATCH", `/v1/keys/${live.id}`, { key: k, json: { allowed_ips: ["1.2.3.4"] } })).statusCode,
      (await h.call("POST", `/v1/keys/${live.id}/rotate`, { key: k, json: {} })).statusCode,
      (await h.call("DELETE", `/v1/keys/${live2.id}`, { key: k })).statusCode];
    process.stderr.write(`PROBE ${out.join(",")}\n`);
  });
});
