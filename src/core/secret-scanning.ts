import { createPublicKey, type KeyObject, verify } from "node:crypto";

/**
 * GitHub's secret scanning partner contract: GitHub POSTs what it found, signs the raw body with
 * ECDSA P-256 over SHA-256, and names the key in `Github-Public-Key-Identifier`; its public keys are
 * the document GitHub serves at `GET /meta/public_keys/secret_scanning`.
 */
export interface ScanningKey {
  id: string;
  key: KeyObject;
  current: boolean;
}

/** The keys of a `{public_keys: [{key_identifier, key, is_current}]}` document; throws saying what is wrong. */
export function parseScanningKeys(doc: unknown): ScanningKey[] {
  const list = (doc as { public_keys?: unknown } | null)?.public_keys;
  if (!Array.isArray(list)) throw new Error("expected {public_keys: [...]}, as GitHub serves it");
  return list.map((entry, i) => {
    const { key_identifier: id, key: pem, is_current: current } = (entry ?? {}) as Record<string, unknown>;
    if (typeof id !== "string" || id === "") throw new Error(`public_keys[${i}].key_identifier is missing`);
    if (typeof pem !== "string") throw new Error(`public_keys[${i}].key is not a PEM string`);
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      throw new Error(`public_keys[${i}].key is not a PEM public key`);
    }
    // Only what GitHub signs with is taken, so a mistaken file cannot widen what verifies.
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new Error(`public_keys[${i}].key is not an ECDSA P-256 key`);
    }
    return { id, key, current: current === true };
  });
}

/**
 * Whether `signature` (base64 of a DER ECDSA signature, as GitHub sends it) signs `body` with the key
 * named `keyId`. Header values are untrusted: a missing or unknown id, or a signature that is not
 * base64, is simply false.
 */
export function verifyScanningSignature(
  keys: readonly ScanningKey[],
  keyId: string | undefined,
  signature: string | undefined,
  body: Buffer,
): boolean {
  if (!keyId || !signature) return false;
  const found = keys.find((k) => k.id === keyId);
  if (!found) return false;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature) || signature.length > 256) return false;
  try {
    return verify("sha256", body, { key: found.key, dsaEncoding: "der" }, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}
