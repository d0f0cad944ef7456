import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyReply } from "fastify";
import { LatchkeyError } from "../core/errors.ts";
import type { App } from "./types.ts";

/** Where `npm run build` puts the console. */
const CONSOLE_DIR = resolve(import.meta.dirname, "../../web/dist");

/**
 * The console runs only its own bundled script and talks only to this origin. Styles allow inline
 * because the component library writes its theme variables into a style element at run time; the QR
 * code at enrolment is an SVG shown through a data: URL.
 */
const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

function consoleHeaders(reply: FastifyReply) {
  reply.header("content-security-policy", CONSOLE_CSP);
  reply.header("x-content-type-options", "nosniff");
  reply.header("x-frame-options", "DENY");
  reply.header("referrer-policy", "no-referrer");
}

/** Paths that belong to the API: they answer JSON, never the console page. */
function isApiPath(url: string): boolean {
  const path = url.split("?", 1)[0] ?? "";
  return path === "/v1" || path.startsWith("/v1/") || path === "/openapi.json" || path.startsWith("/healthz");
}

/**
 * Serves the built console at `/` when `web/dist` exists. Any other path a browser navigates to gets
 * the console's page, so deep links work; API clients (which do not ask for HTML) and anything under
 * /v1/ keep getting the JSON ROUTE_NOT_FOUND envelope. Without a build the API runs alone.
 */
export async function registerConsole(app: App, dir: string = CONSOLE_DIR): Promise<void> {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return;
  const indexHtml = readFileSync(indexPath);
  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/",
    // One route per built file, found now, so the catch-all below sees only what is not a file.
    wildcard: false,
    index: false,
    schemaHide: true,
    setHeaders: (reply) => consoleHeaders(reply),
  });
  app.get("/*", { schema: { hide: true } }, async (request, reply) => {
    const accept = request.headers.accept ?? "";
    if (isApiPath(request.url) || !accept.includes("text/html")) throw new LatchkeyError("ROUTE_NOT_FOUND");
    consoleHeaders(reply);
    return reply.type("text/html; charset=utf-8").send(indexHtml);
  });
}
