import type { Services } from "../../services/services.ts";

export interface RouteDeps {
  services: Services;
  platformTokens: readonly string[];
  controlToken?: string;
  health: () => Record<string, unknown>;
  ready: (timeoutMs: number) => Promise<void>;
}
