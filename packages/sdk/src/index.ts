export { checkKey, type KeyShape } from "./key-format.ts";
export {
  LatchkeyVerifier,
  type StreamState,
  type Verdict,
  type VerdictCode,
  type VerifierOptions,
  type VerifyRequest,
} from "./verifier.ts";
