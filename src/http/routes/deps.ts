import type { Services } from "../../services/services.ts";
import type { Metrics } from "../metrics.ts";

export interface RouteDeps {
  services: Services;
  platformTokens: readonly string[];
  controlToken?: string;
  health: () => Record<string, unknown>;
  ready: (timeoutMs: number) => Promise<void>;
  metrics: Metrics;
}
