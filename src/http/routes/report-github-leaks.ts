import { createHash } from "node:crypto";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import { LatchkeyError } from "../../core/errors.ts";
import { platformCtx } from "../../services/actor.ts";
import { ErrorEnvelope } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** The bytes GitHub signed, kept by this route's own body parser (the app's reads text). */
const rawBodies = new WeakMap<FastifyRequest, Buffer>();

const Found = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 1024 }),
    type: Type.String({ maxLength: 200 }),
    url: Type.Optional(Type.String({ maxLength: 4096 })),
    source: Type.Optional(Type.String({ maxLength: 200 })),
  },
  // GitHub may add fields to its payload; they are ignored, not refused.
  { additionalProperties: true },
);

const Feedback = Type.Object({
  token_hash: Type.String({ description: "SHA-256 of the token, hex" }),
  token_type: Type.String(),
  label: Type.Union([Type.Literal("true_positive"), Type.Literal("false_positive")]),
});

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * GitHub's secret scanning partner endpoint. Anyone may call it (POLICY: public), but only a body
 * signed with one of GitHub's keys, from the operator's file, is read: the signature is checked
 * before the body is validated, and a wrong one changes nothing.
 */
export default function reportGitHubLeaks(app: App, { services }: RouteDeps) {
  app.register(async (plain) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    // The signature covers the exact bytes sent, so they are kept beside the parsed body; the body
    // limit and the JSON parser's hardening are the app's own.
    const parseJson = scope.getDefaultJsonParser("error", "error");
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
      const bytes = body as Buffer;
      rawBodies.set(request, bytes);
      parseJson(request, bytes.toString("utf8"), done);
    });
    scope.post(
      "/v1/leaks/github",
      {
        schema: {
          tags: ["leaks"],
          summary:
            "GitHub secret scanning: tokens found in public, signed by GitHub; answers whether each is a real key",
          security: [],
          headers: Type.Object({
            "github-public-key-identifier": Type.Optional(Type.String({ maxLength: 256 })),
            "github-public-key-signature": Type.Optional(Type.String({ maxLength: 512 })),
          }),
          body: Type.Array(Found, { maxItems: 1000 }),
          response: { 200: Type.Array(Feedback), "4xx": ErrorEnvelope },
        },
        preValidation: async (request) => {
          const signed = await services.leaks.verifyGitHubSignature(
            header(request, "github-public-key-identifier"),
            header(request, "github-public-key-signature"),
            rawBodies.get(request) ?? Buffer.alloc(0),
          );
          if (!signed) throw new LatchkeyError("SIGNATURE_INVALID");
        },
      },
      async (request) => {
        const ctx = {
          ...platformCtx(),
          ip: request.clientIp || null,
          userAgent: request.headers["user-agent"] ?? null,
        };
        const matched = await services.leaks.report(
          request.body.map((f) => ({ token: f.token, url: f.url, source: f.source })),
          "github",
          ctx,
        );
        // The hash, not the token: the answer then carries no key for a proxy or a log to keep.
        return request.body.map((f, i) => ({
          token_hash: createHash("sha256").update(f.token).digest("hex"),
          token_type: f.type,
          label: matched[i] ? ("true_positive" as const) : ("false_positive" as const),
        }));
      },
    );
  });
}
