import { createServer, type ServerOptions } from "node:http";
import type { TLSSocket } from "node:tls";
import cookie from "@fastify/cookie";
import swagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyServerOptions } from "fastify";
import { LatchkeyError } from "../core/errors.ts";
import { clientIp, compileTrustedProxies } from "../core/ip.ts";
import { randomBase62 } from "../core/random.ts";
import type { Services } from "../services/services.ts";
import { registerConsole } from "./console.ts";
import { errorHandler, sendError } from "./errors.ts";
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
  /** Pino options, or false for silence (tests). */
  logger?: boolean | Record<string, unknown>;
  version?: string;
  /** Extra facts for /healthz (the store kind). */
  health?: () => Record<string, unknown>;
  /** False sends every /v1/verify through Fastify (the tests compare the two paths). */
  verifyFastPath?: boolean;
}

/** Never logged, whatever a log line carries: keys, secrets, passwords and the headers that hold them. */
const REDACT = [
  "req.headers.authorization",
  'req.headers["x-api-key"]',
  'req.headers["x-api-secret"]',
  "req.headers.cookie",
  "*.key",
  "*.secret",
  "*.password",
  "*.temporary_password",
];

type ServerTimeouts = "keepAliveTimeout" | "requestTimeout" | "connectionTimeout";

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
  const trusted = compileTrustedProxies(opts.trustedProxies ?? []);
  // Unique per node and cheap: a random node part and a counter (no entropy is needed per request).
  const nextRequestId = requestIds();
  const fast =
    opts.verifyFastPath === false
      ? null
      : verifyFastPath({
          services: opts.services,
          trusted,
          bodyLimit,
          nextRequestId,
          logError: (err) => app.log.error({ err }, "unhandled error"),
        });
  const app = Fastify({
    logger,
    bodyLimit,
    // The server Fastify would make, with /v1/verify's fast path in front of it.
    serverFactory: (handler, fastifyOptions) => {
      const options = fastifyOptions as unknown as Required<Pick<FastifyServerOptions, ServerTimeouts>> & {
        http?: ServerOptions;
      };
      const server = createServer(options.http ?? {}, (req, res) => {
        if (fast === null || !fast.handle(req, res, handler)) handler(req, res);
      });
      server.keepAliveTimeout = options.keepAliveTimeout;
      server.requestTimeout = options.requestTimeout;
      server.setTimeout(options.connectionTimeout);
      return server;
    },
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
    request.clientIp = clientIp(peer, request.headers["x-forwarded-for"], trusted);
    const proto = request.headers["x-forwarded-proto"];
    request.isHttps =
      (request.socket as TLSSocket).encrypted === true ||
      (trusted(peer) && typeof proto === "string" && proto.split(",")[0]?.trim() === "https");
    // Set now rather than in onSend: headers survive into error replies, and one hook fewer runs.
    reply.header("x-request-id", request.id);
    reply.header("cache-control", "no-store");
    done();
  });
  app.setErrorHandler(errorHandler);
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
  });
  await registerConsole(app);
  return app;
}
