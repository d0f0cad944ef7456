import {
  createServer,
  type IncomingMessage,
  type ServerOptions,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import cookie from "@fastify/cookie";
import swagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type ConnectionError, type FastifyError, type FastifyServerOptions } from "fastify";
import { ERRORS, type ErrorCode, LatchkeyError } from "../core/errors.ts";
import { clientIp, compileTrustedProxies } from "../core/ip.ts";
import { randomBase62 } from "../core/random.ts";
import type { Services } from "../services/services.ts";
import { isStoreUnavailable } from "../store/store.ts";
import { registerConsole } from "./console.ts";
import { codingOf, decodedBody } from "./content-encoding.ts";
import { errorEnvelope, errorHandler, sendError } from "./errors.ts";
import { createMetrics, UNMATCHED_ROUTE } from "./metrics.ts";
import { registerRoutes } from "./routes/index.ts";
import type { App } from "./types.ts";
import { verifyFastPath } from "./verify-fast-path.ts";

export interface AppOptions {
  services: Services;
  trustedProxies?: readonly string[];
  /** Tokens accepted on the platform operator routes: LATCHKEY_ADMIN_TOKEN and the local CLI's token. */
  platformTokens?: readonly string[];
  /** The running embedded server's token for the local CLI (kept in the data dir's lock file). */
  controlToken?: string;
  bodyLimit?: number;
  /**
   * Milliseconds a request's headers and body have, from its first byte, to arrive
   * (LATCHKEY_REQUEST_TIMEOUT_MS); a later one gets 408 REQUEST_TIMEOUT and the connection is closed.
   */
  requestTimeout?: number;
  /** Pino options, or false for silence (tests). */
  logger?: boolean | Record<string, unknown>;
  version?: string;
  /** Extra facts for /healthz (the store kind). */
  health?: () => Record<string, unknown>;
  /** Readiness: resolves when the store answers within `timeoutMs` (the runtime's `store.ping`). */
  ready?: (timeoutMs: number) => Promise<void>;
  /** False sends every /v1/verify and /v1/authorize through Fastify (the tests compare the two paths). */
  verifyFastPath?: boolean;
}

/** Request headers that carry a secret: a key, a secret, a password, a session, a code or a token. */
const SECRET_HEADERS = [
  "authorization",
  "x-api-key",
  "x-api-secret",
  "cookie",
  "x-totp-code",
  "x-csrf-token",
  "latchkey-verify-key",
];

/**
 * Never logged, whatever a log line carries: keys, secrets, passwords, the headers that hold them, and
 * the raw bytes of a request Node's parser refused (a parser error's rawPacket is the whole request).
 * Latchkey's own lines never carry headers or bodies; these paths are what catches a line that would.
 */
const REDACT = [
  ...SECRET_HEADERS.flatMap((name) => [`req.headers["${name}"]`, `*.headers["${name}"]`]),
  "rawPacket",
  "*.rawPacket",
  "*.key",
  "*.secret",
  "*.password",
  "*.temporary_password",
  // Leak reports carry the leaked token itself.
  "*.token",
  "*[*].token",
];

type ServerTimeouts = "keepAliveTimeout" | "requestTimeout" | "connectionTimeout";

/** The request timeout when none is given: LATCHKEY_REQUEST_TIMEOUT_MS's default. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * How often Node looks for requests past their timeout: a twentieth of it, from 50 ms to 1 s (Node's
 * own default, 30 s, would let a 10 s timeout run to 40 s). Each look walks only the connections with
 * a request still arriving.
 */
const checkEvery = (timeout: number) => Math.max(50, Math.min(1000, Math.floor(timeout / 20)));

/** What a failure Node reports on a connection (its parser, its request timer) answers. */
const CLIENT_ERRORS: Record<string, { status: number; code: ErrorCode; message?: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: "REQUEST_TIMEOUT" },
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: "VALIDATION_ERROR",
    message: "The request headers are too large.",
  },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, code: "PAYLOAD_TOO_LARGE" },
};
const BAD_HTTP = {
  status: 400,
  code: "VALIDATION_ERROR",
  message: "The request is not valid HTTP.",
} as const;

/** Whether a request carries a body Fastify may read: not a GET, HEAD or TRACE, and a length or chunks. */
function hasBody(raw: IncomingMessage): boolean {
  if (raw.method === "GET" || raw.method === "HEAD" || raw.method === "TRACE") return false;
  const length = raw.headers["content-length"];
  return raw.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Request ids: `req_` + 10 random base62 characters for this process + a base-36 counter. */
function requestIds(): () => string {
  const node = `req_${randomBase62(10)}`;
  let counter = 0;
  return () => {
    counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
    return node + counter.toString(36);
  };
}

export async function buildApp(opts: AppOptions): Promise<App> {
  const logger =
    opts.logger === undefined || opts.logger === false
      ? false
      : { ...(opts.logger === true ? {} : opts.logger), redact: REDACT };
  const bodyLimit = opts.bodyLimit ?? 64 * 1024;
  const requestTimeout = opts.requestTimeout ?? REQUEST_TIMEOUT_MS;
  const trusted = compileTrustedProxies(opts.trustedProxies ?? []);
  // Unique per node and cheap: a random node part and a counter (no entropy is needed per request).
  const nextRequestId = requestIds();
  const metrics = createMetrics(opts.services);
  const fast =
    opts.verifyFastPath === false
      ? null
      : verifyFastPath({
          services: opts.services,
          trusted,
          bodyLimit,
          nextRequestId,
          metrics,
          logError: (err) => app.log.error({ err }, "unhandled error"),
        });
  const app = Fastify({
    logger,
    bodyLimit,
    requestTimeout,
    // The server Fastify would make, with /v1/verify's fast path in front of it. Node times every
    // request from its first byte until its body is in, on every route and the fast path alike (a
    // connection waiting between keep-alive requests is not timed by this); a request still arriving
    // after `requestTimeout` is reported to clientErrorHandler, below, which answers 408.
    serverFactory: (handler, fastifyOptions) => {
      const options = fastifyOptions as unknown as Required<Pick<FastifyServerOptions, ServerTimeouts>> & {
        http?: ServerOptions;
      };
      const server = createServer(
        {
          ...options.http,
          requestTimeout: options.requestTimeout,
          headersTimeout: options.requestTimeout,
          connectionsCheckingInterval: checkEvery(options.requestTimeout),
        },
        (req, res) => {
          if (fast === null || !fast.handle(req, res, handler)) handler(req, res);
        },
      );
      server.keepAliveTimeout = options.keepAliveTimeout;
      server.setTimeout(options.connectionTimeout);
      return server;
    },
    clientErrorHandler: (err, socket) => clientError(err, socket),
    // A stopping server drains its connections first (src/server.ts); a request that still reaches a
    // closing Fastify is served, as the store is open until it has closed, rather than given Fastify's
    // own 503, which lacks the envelope.
    return503OnClosing: false,
    genReqId: nextRequestId,
    // Client-supplied request ids are not trusted: ours are the ones logged and returned.
    requestIdHeader: false,
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 },
    // Errors the router raises before a route is found (bad percent-encoding, over-long ids) get the
    // same envelope as everything else, and never echo the URL back.
    frameworkErrors: (err, request, reply) => {
      const code = err.code === "FST_ERR_BAD_URL" ? "VALIDATION_ERROR" : "URI_TOO_LONG";
      reply.header("x-request-id", request.id);
      return sendError(
        reply,
        request,
        code,
        code === "VALIDATION_ERROR" ? "The URL is not valid." : undefined,
      );
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  /**
   * A request Node's parser refused, or one that did not arrive in time: answered with the envelope
   * where nothing of another answer is on the wire yet, and the connection closed. Fastify's own
   * handler would log the error itself, and a parser error carries the whole request (its rawPacket:
   * keys, Basic passwords, session cookies); this logs its code only.
   */
  function clientError(err: ConnectionError, socket: Socket) {
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    const answer = CLIENT_ERRORS[err.code] ?? BAD_HTTP;
    app.log.debug({ client_error: err.code, status: answer.status }, "client error");
    // The answer in progress on this connection, if any: it may be this request's (not begun, so the
    // envelope can take its place) or an earlier pipelined request's (whose bytes must come first).
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    const free = !inFlight || (!inFlight.headersSent && inFlight.req?.complete === false);
    if (!socket.writable || !free) {
      socket.destroy();
      return;
    }
    const requestId = nextRequestId();
    const body = JSON.stringify(
      errorEnvelope(answer.code, answer.message ?? ERRORS[answer.code].message, requestId),
    );
    const head =
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\n` +
      "content-type: application/json; charset=utf-8\r\n" +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n`;
    // Ended, then closed once the answer is out (closing at once could reset it away); a peer that
    // never reads it is dropped after a second.
    const drop = setTimeout(() => socket.destroy(), 1000);
    drop.unref();
    socket.end(head + body, () => {
      clearTimeout(drop);
      socket.destroy();
    });
  }

  // An empty JSON body (a POST with nothing to say, like a rotation with the default grace) reads as {},
  // not as a parse error; anything else goes through Fastify's hardened parser.
  const parseJson = app.getDefaultJsonParser("error", "error");
  // JSON only: Fastify's text/plain parser would let a cross-site form post reach the routes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === "") return done(null, {});
    parseJson(request, text, done);
  });

  // A compressed body is decoded before it is parsed, within the same body limit (content-encoding.ts);
  // a coding we do not decode is refused with 415, never parsed as plain. Methods whose body Fastify
  // never reads (GET, HEAD, TRACE) and requests without a body are left alone.
  app.addHook("preParsing", (request, reply, payload, done) => {
    const header = request.headers["content-encoding"];
    if (header === undefined || !hasBody(request.raw)) return done(null, payload);
    const coding = codingOf(header);
    if (coding === null) return done(null, payload);
    if (coding instanceof LatchkeyError) return done(coding);
    done(null, decodedBody(request.raw, reply.raw, coding, bodyLimit));
  });

  // A POST with no body at all reads the same as an empty one. (Hooks on every request are written in
  // callback style: verification is the hot path, and an async hook costs a promise per request.)
  app.addHook("preValidation", (request, _reply, done) => {
    if (request.body === undefined && request.method !== "GET" && request.method !== "HEAD")
      request.body = {};
    done();
  });

  if (fast !== null)
    app.addHook("preClose", (done) => {
      fast.close();
      done();
    });
  app.decorateRequest("clientIp", "");
  app.decorateRequest("actor", null);
  app.decorateRequest("isHttps", false);
  app.addHook("onRequest", (request, reply, done) => {
    const peer = request.socket.remoteAddress ?? "";
    request.clientIp = clientIp(
      peer,
      request.headers["x-forwarded-for"],
      trusted,
      request.headers["x-real-ip"],
    );
    const proto = request.headers["x-forwarded-proto"];
    request.isHttps =
      (request.socket as TLSSocket).encrypted === true ||
      (trusted(peer) && typeof proto === "string" && proto.split(",")[0]?.trim() === "https");
    // Set now rather than in onSend: headers survive into error replies, and one hook fewer runs.
    reply.header("x-request-id", request.id);
    reply.header("cache-control", "no-store");
    done();
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof LatchkeyError ? err.code === "STORE_UNAVAILABLE" : isStoreUnavailable(err))
      metrics.storeUnavailable();
    return errorHandler(err, request, reply);
  });
  // Every answer Fastify gives is timed by its route's pattern (never the URL: ids stay out of labels).
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.is404 ? undefined : request.routeOptions.url;
    metrics.answered(route ?? UNMATCHED_ROUTE, request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  app.addHook("onClose", (_app, done) => {
    metrics.close();
    done();
  });
  app.setNotFoundHandler(async () => {
    throw new LatchkeyError("ROUTE_NOT_FOUND");
  });

  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Latchkey",
        version: opts.version ?? "0.1.0",
        description: "API credentials, scoped keys and their verification.",
      },
      components: {
        securitySchemes: {
          apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
          apiSecret: { type: "apiKey", in: "header", name: "X-API-Secret" },
          bearer: { type: "http", scheme: "bearer" },
          basic: { type: "http", scheme: "basic" },
          verifyKey: { type: "apiKey", in: "header", name: "Latchkey-Verify-Key" },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }, { basic: [] }],
    },
  });

  registerRoutes(app, {
    services: opts.services,
    platformTokens: opts.platformTokens ?? [],
    ...(opts.controlToken ? { controlToken: opts.controlToken } : {}),
    health: opts.health ?? (() => ({})),
    // An app built without a store to ask (a bench or a test of the HTTP layer alone) is ready.
    ready: opts.ready ?? (async () => {}),
    metrics,
  });
  await registerConsole(app);
  return app;
}
