import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * No log line, at any level, carries a secret: not a header that holds one, not a body, and not the raw
 * bytes of a request Node's HTTP parser refused (its error's rawPacket is the whole request). The app
 * logs at trace into memory while requests carrying distinctive secrets arrive over real sockets.
 */

const BASIC_PASSWORD = "basic-pw-Secret-5d1e";
const SECRETS = {
  "x-api-secret": "api-secret-Secret-71c9",
  authorization: `Basic ${Buffer.from(`ws_logs@Company.Logs:${BASIC_PASSWORD}`).toString("base64")}`,
  cookie: "lk_session=session-Secret-a83f",
  "x-totp-code": "totp-Secret-0c42",
  "x-csrf-token": "csrf-Secret-9be0",
  "latchkey-verify-key": "verify-key-Secret-33d7",
};
const BODY_SECRET = "body-Secret-e61b";

/** Everything a line could show a value as: its text, and the text of any Buffer it serialised. */
function readable(lines: string[]): string {
  const out: string[] = [];
  const walk = (value: unknown) => {
    if (value === null || typeof value !== "object") return;
    const obj = value as Record<string, unknown>;
    if (obj.type === "Buffer" && Array.isArray(obj.data))
      out.push(Buffer.from(obj.data as number[]).toString());
    for (const child of Object.values(obj)) walk(child);
  };
  for (const line of lines) {
    out.push(line);
    walk(JSON.parse(line));
  }
  return out.join("\n");
}

/** Sends raw bytes and waits for the server to answer and close (or for a second of silence). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
    const chunks: Buffer[] = [];
    const quiet = setTimeout(() => socket.destroy(), 3000);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(quiet);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
  });
}

function post(port: number, path: string, headers: Record<string, string>, body: string) {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        agent: false,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          ...headers,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe.each(BACKENDS)("secrets in logs on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let app: App;
  let port: number;
  let subject: { id: string; key: string };
  const lines: string[] = [];

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Log Secrets Company");
    subject = await h.createKey(co, { permissions: ["payin:read"] });
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    app = await buildApp({
      services: h.services,
      platformTokens: [ADMIN_TOKEN],
      logger: { level: "trace", stream },
      requestTimeout: 1500,
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  /** The secret headers, with a real key in X-API-Key, as wire lines. */
  const secretLines = () =>
    [`X-API-Key: ${co.key}`, ...Object.entries(SECRETS).map(([name, value]) => `${name}: ${value}`)]
      .map((line) => `${line}\r\n`)
      .join("");
  const secretValues = () => [co.key, subject.key, BASIC_PASSWORD, BODY_SECRET, ...Object.values(SECRETS)];

  it("never logs them, for requests the parser refuses and for ordinary ones", async () => {
    const body = JSON.stringify({ key: subject.key, secret: BODY_SECRET });
    // A header line that is no header.
    const badHeader = await raw(
      port,
      `POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n${secretLines()}Not a header\r\n\r\n`,
    );
    expect(badHeader).toMatch(/^HTTP\/1\.1 400 /);
    expect(badHeader).toContain('"code":"VALIDATION_ERROR"');
    // A chunked body whose chunk size is not hexadecimal, after the body's secrets, on the verify path.
    const badChunk = await raw(
      port,
      `POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${secretLines()}` +
        `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\nzz\r\n`,
    );
    expect(badChunk).toMatch(/^HTTP\/1\.1 400 /);
    // Headers too large for the parser, with the secrets in front.
    const tooLarge = await raw(
      port,
      `POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n${secretLines()}X-Padding: ${"p".repeat(20_000)}\r\n\r\n`,
    );
    expect(tooLarge).toMatch(/^HTTP\/1\.1 431 /);
    // A body that never finishes: 408.
    const late = await raw(
      port,
      `POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${secretLines()}` +
        `Content-Length: ${body.length + 10}\r\n\r\n${body}`,
    );
    expect(late).toMatch(/^HTTP\/1\.1 408 /);
    // Ordinary requests with the same headers: the fast path, Fastify, a bad body, Basic auth.
    const headers = { "x-api-key": co.key, ...SECRETS };
    const { authorization: _basic, ...withKey } = headers;
    // A key + secret pair (the secret is wrong): answered, as a verdict.
    expect(await post(port, "/v1/verify", withKey, body)).toBe(200);
    expect(await post(port, "/v1/verify", withKey, JSON.stringify({ key: subject.key }))).toBe(200);
    expect(await post(port, "/v1/verify", withKey, `{"key":"${BODY_SECRET}`)).toBe(400);
    expect(await post(port, "/v1/keys", headers, body)).toBeGreaterThanOrEqual(400);
    expect(await post(port, "/v1/keys", { authorization: SECRETS.authorization }, "{}")).toBe(401);

    // The log saw it all (so this is not the test of an empty log)...
    const text = readable(lines);
    expect(lines.filter((line) => line.includes('"client error"')).length).toBeGreaterThanOrEqual(4);
    expect(lines.some((line) => line.includes('"incoming request"'))).toBe(true);
    // ...and holds none of it.
    expect(text).not.toContain("rawPacket");
    for (const secret of secretValues()) expect(text, secret).not.toContain(secret);
  });

  it("redacts secret headers from any line that would carry them", () => {
    const before = lines.length;
    const headers = { "x-api-key": co.key, ...SECRETS };
    app.log.error({ req: { headers } }, "a request");
    app.log.error({ request: { headers } }, "a request under another name");
    app.log.error({ err: Object.assign(new Error("parse"), { rawPacket: Buffer.from(secretLines()) }) }, "x");
    const text = readable(lines.slice(before));
    expect(lines.length).toBe(before + 3);
    expect(text.replaceAll('"rawPacket":"[Redacted]"', "")).not.toContain("rawPacket");
    for (const secret of secretValues()) expect(text, secret).not.toContain(secret);
  });
});
