import { generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { generateToken } from "../../src/core/key-format.ts";
import { leakOutcome } from "../../src/core/leaks.ts";
import { parseScanningKeys, verifyScanningSignature } from "../../src/core/secret-scanning.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Leaked keys"));
/** The fenced blocks of the README's Leaked keys section, in order. */
const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({
  lang: m[1],
  code: m[2] as string,
}));

describe("the README's key format for secret scanners", () => {
  const regex = new RegExp(`^${(blocks.find((b) => b.lang === "")?.code ?? "").trim()}$`);
  const check = new Function(
    "require",
    `${blocks.find((b) => b.lang === "js")?.code}; return isLatchkeyToken;`,
  )(createRequire(import.meta.url)) as (t: string) => boolean;

  it("matches every kind of key we mint, and its checksum code accepts them", () => {
    for (const env of ["live", "test"] as const) {
      for (const kind of ["sk", "ss"] as const) {
        for (let i = 0; i < 50; i++) {
          const token = generateToken("lk", env, kind);
          expect(regex.test(token), token).toBe(true);
          expect(check(token), token).toBe(true);
        }
      }
    }
  });

  it("does not match other brands or lengths, and the checksum drops a changed character", () => {
    const token = generateToken("lk", "live", "sk");
    expect(regex.test(generateToken("wp3", "live", "sk"))).toBe(false);
    expect(regex.test(`${token}x`)).toBe(false);
    expect(regex.test(token.slice(0, -1))).toBe(false);
    const flipped = token.slice(0, 20) + (token[20] === "a" ? "b" : "a") + token.slice(21);
    expect(check(flipped)).toBe(false);
  });
});

describe("leakOutcome", () => {
  it("keeps a revoked key revoked and otherwise does what the policy says", () => {
    expect(leakOutcome("revoke", "active")).toBe("revoked");
    expect(leakOutcome("notify", "active")).toBe("notified");
    expect(leakOutcome("revoke", "revoked")).toBe("already_revoked");
    expect(leakOutcome("notify", "revoked")).toBe("already_revoked");
  });
});

describe("GitHub's signing keys", () => {
  const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = ec.publicKey.export({ type: "spki", format: "pem" }).toString();
  const doc = { public_keys: [{ key_identifier: "k1", key: pem, is_current: true }] };

  it("takes GitHub's document and verifies a DER signature over the exact bytes", () => {
    const keys = parseScanningKeys(doc);
    const body = Buffer.from('[{"token":"x","type":"t"}]');
    const sig = sign("sha256", body, { key: ec.privateKey, dsaEncoding: "der" }).toString("base64");
    expect(verifyScanningSignature(keys, "k1", sig, body)).toBe(true);
    expect(verifyScanningSignature(keys, "k2", sig, body)).toBe(false);
    expect(verifyScanningSignature(keys, "k1", sig, Buffer.from(`${body} `))).toBe(false);
    expect(verifyScanningSignature(keys, undefined, sig, body)).toBe(false);
    expect(verifyScanningSignature(keys, "k1", "%%%", body)).toBe(false);
    expect(verifyScanningSignature(keys, "k1", Buffer.from("junk").toString("base64"), body)).toBe(false);
  });

  it("refuses a document that is not GitHub's, or a key GitHub does not sign with", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const rsaPem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
    const p384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    const p384Pem = p384.publicKey.export({ type: "spki", format: "pem" }).toString();
    for (const bad of [
      null,
      {},
      { public_keys: {} },
      { public_keys: [{ key: pem }] },
      { public_keys: [{ key_identifier: "k", key: "not a pem" }] },
      { public_keys: [{ key_identifier: "k", key: rsaPem }] },
      { public_keys: [{ key_identifier: "k", key: p384Pem }] },
    ]) {
      expect(() => parseScanningKeys(bad), JSON.stringify(bad)).toThrow();
    }
  });
});
