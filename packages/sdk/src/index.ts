export type * from "./api-types.ts";
export {
  type Caller,
  type CallOptions,
  type ClientOptions,
  type ForwardAuthAnswer,
  type ForwardAuthRequest,
  LatchkeyApiError,
  LatchkeyClient,
  OPERATIONS,
  type Operation,
  type OperationName,
} from "./client.ts";
export {
  type ErrorEnvelope,
  type GuardAnswer,
  type GuardOptions,
  type GuardRequest,
  LatchkeyGuard,
  type LatchkeyIdentity,
} from "./guard.ts";
export { checkKey, type KeyShape } from "./key-format.ts";
export {
  type CatalogDocument,
  CatalogRouteError,
  compileCatalogRoutes,
  fetchCatalog,
  type RouteMapper,
  type RouteMatch,
} from "./routes.ts";
export {
  LatchkeyVerifier,
  type StreamState,
  type Verdict,
  type VerdictCode,
  type VerifierOptions,
  type VerifyRequest,
} from "./verifier.ts";
