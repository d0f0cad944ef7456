import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERRORS, type ErrorCode, LatchkeyError } from "../core/errors.ts";
import { isStoreFull, isStoreUnavailable } from "../store/store.ts";

/** Seconds a caller is asked to wait while the store is unreachable (a restart takes about that). */
export const STORE_RETRY_AFTER_SECONDS = 1;

/** Seconds a caller is asked to wait while the store's disk is full (freeing space takes an operator). */
export const STORE_FULL_RETRY_AFTER_SECONDS = 30;

/** Fastify's own error codes for bad input, mapped onto our catalog. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "VALIDATION_ERROR",
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_JSON",
  FST_ERR_CTP_EMPTY_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_BAD_URL: "VALIDATION_ERROR",
  FST_ERR_ASYNC_CONSTRAINT: "VALIDATION_ERROR",
};

interface ErrorExtra {
  field?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

/** The envelope every failure answers with. */
export function errorEnvelope(code: ErrorCode, message: string, requestId: string, extra: ErrorExtra = {}) {
  const error: Record<string, unknown> = { code, message, request_id: requestId };
  if (extra.field) error.field = extra.field;
  if (extra.details && Object.keys(extra.details).length > 0) error.details = extra.details;
  return { success: false as const, error };
}

/** What a LatchkeyError answers: its status, its envelope, and Retry-After for a throttled caller. */
export function latchkeyErrorReply(err: LatchkeyError, requestId: string) {
  const { field, ...details } = err.details ?? {};
  return {
    status: err.status,
    body: errorEnvelope(err.code, err.message, requestId, {
      field: typeof field === "string" ? field : undefined,
      details,
    }),
    // Throttled callers, and callers of a node whose store is away, are told when to come back, in the
    // header clients and proxies understand.
    retryAfter:
      typeof details.retry_after === "number" && [429, 503].includes(ERRORS[err.code].status)
        ? details.retry_after
        : null,
  };
}

/** The answer while the store cannot be reached: 503 STORE_UNAVAILABLE, retry after a second. */
export function storeUnavailable(): LatchkeyError {
  return new LatchkeyError("STORE_UNAVAILABLE", undefined, { retry_after: STORE_RETRY_AFTER_SECONDS });
}

/**
 * What an error that is not a LatchkeyError answers: 503 with Retry-After when the store is unreachable
 * or its disk is full, else a 500 (`log` is told of the 500s only: an outage and a full disk are logged
 * once by the store). For the error handler and the verify fast path.
 */
export function unexpectedErrorReply(err: unknown, requestId: string, log: (err: unknown) => void) {
  if (isStoreUnavailable(err)) return latchkeyErrorReply(storeUnavailable(), requestId);
  if (isStoreFull(err)) {
    const full = new LatchkeyError("STORE_FULL", undefined, { retry_after: STORE_FULL_RETRY_AFTER_SECONDS });
    return latchkeyErrorReply(full, requestId);
  }
  log(err);
  return {
    status: 500,
    body: errorEnvelope("INTERNAL_ERROR", ERRORS.INTERNAL_ERROR.message, requestId),
    retryAfter: null,
  };
}

export function sendError(
  reply: FastifyReply,
  request: FastifyRequest,
  code: ErrorCode,
  message: string = ERRORS[code].message,
  extra: ErrorExtra & { status?: number } = {},
) {
  return reply
    .status(extra.status ?? ERRORS[code].status)
    .type("application/json")
    .send(errorEnvelope(code, message, request.id, extra));
}

function validationField(err: FastifyError): string | undefined {
  const first = err.validation?.[0];
  if (!first) return undefined;
  const params = first.params as Record<string, unknown>;
  const name = (params.missingProperty ?? params.additionalProperty) as string | undefined;
  const path = first.instancePath.replace(/^\//, "").replaceAll("/", ".");
  return [path, name].filter(Boolean).join(".") || undefined;
}

function sendReply(reply: FastifyReply, answer: ReturnType<typeof latchkeyErrorReply>) {
  if (answer.retryAfter !== null) reply.header("retry-after", answer.retryAfter);
  return reply.status(answer.status).type("application/json").send(answer.body);
}

/**
 * The one place a failure becomes a status and an envelope. An unreachable store is a 503 with
 * Retry-After; anything else unexpected is a logged 500.
 */
export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err instanceof LatchkeyError) return sendReply(reply, latchkeyErrorReply(err, request.id));
  if (err.validation) {
    const field = validationField(err);
    const where = err.validationContext ?? "request";
    const first = err.validation[0];
    const params = (first?.params ?? {}) as Record<string, unknown>;
    const reason =
      first?.keyword === "additionalProperties"
        ? "is not a known field"
        : first?.keyword === "required"
          ? "is required"
          : (first?.message ?? "is not valid");
    return sendError(reply, request, "VALIDATION_ERROR", `${where}${field ? `.${field}` : ""} ${reason}.`, {
      field,
      details:
        first?.keyword === "pattern" || first?.keyword === "format"
          ? {}
          : { rule: first?.keyword, ...params },
    });
  }
  // A value the database refuses as data (class 22: bad encoding, out of range) is the caller's input.
  if (typeof err.code === "string" && /^22[0-9A-Z]{3}$/.test(err.code)) {
    return sendError(reply, request, "VALIDATION_ERROR", "A value in the request cannot be stored.");
  }
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return sendError(reply, request, mapped);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    // Any other client error Fastify raises (e.g. prototype poisoning) is still the client's.
    return sendError(reply, request, "VALIDATION_ERROR", err.message);
  }
  return sendReply(
    reply,
    unexpectedErrorReply(err, request.id, (e) => request.log.error({ err: e }, "unhandled error")),
  );
}
