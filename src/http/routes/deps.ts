import type { Services } from "../../services/services.ts";

export interface RouteDeps {
  services: Services;
  platformTokens: readonly string[];
  controlToken?: string;
  health: () => Record<string, unknown>;
}

/** Errors every route may answer with, for the OpenAPI document. */
export const COMMON_ERRORS = [400, 401, 403, 404, 409, 413, 415, 429] as const;
