import { Type } from "typebox";
import { EVENT_TYPES } from "../core/events.ts";
import { MAX_URL_LENGTH } from "../core/webhooks.ts";

export { WebhookDeliveryView, WebhookView, WebhookWithSecret } from "../core/webhook-views.ts";

export const WebhookIdParams = Type.Object({ id: Type.String({ pattern: "^wh_[0-9A-Za-z]{22}$" }) });
export const DeliveryIdParams = Type.Object({
  id: Type.String({ pattern: "^wh_[0-9A-Za-z]{22}$" }),
  delivery_id: Type.String({ pattern: "^dlv_[0-9A-Za-z]{22}$" }),
});
export const WebhookUrl = Type.String({
  minLength: 8,
  maxLength: MAX_URL_LENGTH,
  pattern: "^[Hh][Tt][Tt][Pp][Ss]?://[\\x21-\\x7e]+$",
  description: "http or https, no user name or password, no fragment",
});
/**
 * The types to hear. Any string is taken here so an unknown type answers UNKNOWN_EVENT_TYPE naming it,
 * rather than a schema error; the service checks each against the list.
 */
export const EventTypes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  minItems: 1,
  maxItems: EVENT_TYPES.length * 2,
  description: `any of ${EVENT_TYPES.join(", ")}; left out, every type`,
});
