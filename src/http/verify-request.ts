// What `POST /v1/verify` accepts and who may ask it, in one place for the route and for the fast path
// in front of it (verify-fast-path.ts), which must refuse and answer exactly as the route does.
import { Type } from "typebox";
import { POLICY } from "../core/access/policy.ts";
import { MAX_COST } from "../core/credits.ts";
import { Environment, Permissions } from "./schemas.ts";

const Token = Type.String({ minLength: 1, maxLength: 256 });

export const VerifyBody = Type.Object(
  {
    key: Type.Optional(Token),
    secret: Type.Optional(Token),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    password: Type.Optional(Token),
    permissions: Type.Optional(Permissions),
    ip: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    environment: Type.Optional(Environment),
    cost: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_COST,
        description: "Credits to spend, for a key that has credits (default 1; 0 checks without spending)",
      }),
    ),
  },
  { additionalProperties: false },
);

/** Company keys verify their own company's keys; platform verify keys any company's (see POLICY). */
export const VERIFY_ACCESS = POLICY["keys.verify"];
