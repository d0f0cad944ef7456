import { type Static, Type } from "typebox";
import { Environment, Nullable } from "./views.ts";

/*
 * The public shapes of webhook endpoints and their deliveries, defined once (see views.ts): the routes
 * validate and document with them, the webhook service builds them, the console type-checks with them.
 */

export const WebhookView = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description: Type.String(),
  environment: Environment,
  /** The event types it hears; null: every type. */
  events: Nullable(Type.Array(Type.String())),
  status: Type.Union([Type.Literal("enabled"), Type.Literal("disabled")]),
  /** Why it was disabled: by a person, by a 410 Gone, or after its deliveries kept failing. */
  disabled_reason: Nullable(Type.String()),
  disabled_at: Nullable(Type.String()),
  /** Until when the replaced signing secret still signs beside the current one (after rotate-secret). */
  previous_secret_expires_at: Nullable(Type.String()),
  created_at: Type.String(),
  created_by: Type.String(),
  updated_at: Type.String(),
});

/** An endpoint as created or after rotate-secret: the only times its signing secret is shown. */
export const WebhookWithSecret = Type.Object({
  ...WebhookView.properties,
  secret: Type.String({ description: "The signing secret (whsec_…). Shown this once, never again." }),
});

export const WebhookAttemptView = Type.Object({
  attempt: Type.Integer(),
  at: Type.String(),
  duration_ms: Type.Integer(),
  status_code: Nullable(Type.Integer()),
  error: Nullable(Type.String()),
  next_attempt_at: Nullable(Type.String()),
});

export const WebhookDeliveryView = Type.Object({
  id: Type.String(),
  /** The event's id, sent as `webhook-id` on every attempt. */
  event_id: Type.String(),
  event_type: Type.String(),
  status: Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed")]),
  attempts: Type.Integer(),
  next_attempt_at: Nullable(Type.String()),
  last_attempt_at: Nullable(Type.String()),
  last_status_code: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  delivered_at: Nullable(Type.String()),
  created_at: Type.String(),
  attempt_log: Type.Array(WebhookAttemptView),
});

export type WebhookView = Static<typeof WebhookView>;
export type WebhookWithSecret = Static<typeof WebhookWithSecret>;
export type WebhookAttemptView = Static<typeof WebhookAttemptView>;
export type WebhookDeliveryView = Static<typeof WebhookDeliveryView>;
