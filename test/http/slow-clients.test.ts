import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { type Running, startServer } from "../../src/server.ts";
import { BACKENDS, createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness, SECRET } from "../helpers/harness.ts";

/**
 * A client that sends its request slowly (a body one byte a second) gets 408 REQUEST_TIMEOUT with the
 * envelope once the request timeout has passed since its first byte, and its connection is closed, on
 * Fastify's routes and on the verify fast path alike. Requests that arrive in time, and connections
 * waiting between keep-alive requests, are not touched. Real sockets: inject has no timeouts.
 */

const TIMEOUT = 1500;
/** Node looks for late requests every 75 ms at this timeout; the rest is a loaded machine's slack. */
const MARGIN = 1000;

interface Trickled {
  status: string;
  headers: string;
  body: string;
  /** Milliseconds from connecting to the server's close. */
  closedAfter: number;
}

/** On a raw connection: `head` at once, then `rest` one byte a second, until the server closes it. */
function trickle(port: number, head: string, rest: string): Promise<Trickled> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const started = Date.now();
    const chunks: Buffer[] = [];
    let sent = 0;
    let drip: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${Date.now() - started} ms`));
    }, 10_000);
    socket.on("connect", () => {
      socket.write(head);
      drip = setInterval(() => {
        if (sent < rest.length && socket.writable) socket.write(rest.charAt(sent++));
      }, 1000);
    });
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    // Writing the next byte to a connection the server has just closed: still a close.
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(guard);
      clearInterval(drip);
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      const headers = split < 0 ? text : text.slice(0, split);
      resolve({
        status: headers.split("\r\n")[0] ?? "",
        headers,
        body: split < 0 ? "" : text.slice(split + 4),
        closedAfter: Date.now() - started,
      });
    });
  });
}

function expectTimedOut(answer: Trickled) {
  expect(answer.status).toBe("HTTP/1.1 408 Request Timeout");
  expect(answer.headers).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
  expect(answer.headers).toMatch(/\r\nconnection: close(\r\n|$)/i);
  const body = JSON.parse(answer.body);
  expect(body).toEqual({
    success: false,
    error: { code: "REQUEST_TIMEOUT", message: expect.any(String), request_id: expect.any(String) },
  });
  expect(answer.headers).toContain(`x-request-id: ${body.error.request_id}`);
  expect(answer.closedAfter).toBeGreaterThanOrEqual(TIMEOUT - 100);
  expect(answer.closedAfter).toBeLessThan(TIMEOUT + MARGIN);
}

interface Answer {
  status: number;
  body: string;
  localPort: number | undefined;
}

/** A request over node:http; `pause` ms between the first half of the body and the rest. */
function request(
  port: number,
  path: string,
  headers: Record<string, string>,
  body: string,
  opts: { agent?: http.Agent; pause?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        agent: opts.agent ?? false,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          ...headers,
        },
      },
      (res) => {
        const localPort = res.socket.localPort;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), localPort }),
        );
      },
    );
    req.on("error", reject);
    if (opts.pause === undefined) return void req.end(body);
    const half = Math.floor(body.length / 2);
    req.write(body.slice(0, half));
    setTimeout(() => req.end(body.slice(half)), opts.pause);
  });
}

const rawHead = (path: string, headers: Record<string, string>, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
  Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("") +
  `Content-Length: ${length}\r\n\r\n`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(BACKENDS)("slow clients on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let app: App;
  let port: number;
  let subject: { id: string; key: string };
  /** Requests that reached Fastify: the verify fast path's never do. */
  let reachedFastify = 0;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Slow Clients Company");
    subject = await h.createKey(co, { permissions: ["payin:read"] });
    app = await buildApp({
      services: h.services,
      platformTokens: [ADMIN_TOKEN],
      logger: false,
      requestTimeout: TIMEOUT,
    });
    app.addHook("onRequest", (_request, _reply, done) => {
      reachedFastify += 1;
      done();
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const newKey = () =>
    JSON.stringify({
      name: "slow",
      environment: "live",
      credential_id: co.credentialId,
      permissions: ["payin:read"],
    });
  const verifying = () => JSON.stringify({ key: subject.key });

  it("a body sent one byte a second to POST /v1/keys gets 408 and a closed connection", async () => {
    const body = newKey();
    const before = reachedFastify;
    expectTimedOut(await trickle(port, rawHead("/v1/keys", { "X-API-Key": co.key }, body.length), body));
    expect(reachedFastify).toBe(before + 1);
  });

  it("a body sent one byte a second to POST /v1/verify gets 408 on the fast path", async () => {
    const body = verifying();
    const before = reachedFastify;
    expectTimedOut(await trickle(port, rawHead("/v1/verify", { "X-API-Key": co.key }, body.length), body));
    // The fast path had taken it: Fastify never saw it.
    expect(reachedFastify).toBe(before);
  });

  it("headers sent one byte a second get 408 too", async () => {
    expectTimedOut(await trickle(port, "POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n", "X-Slow: yes\r\n"));
  });

  it("requests that arrive in time are answered, slow ones too, and keep-alive survives idle waits", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const created = await request(port, "/v1/keys", { "x-api-key": co.key }, newKey(), { agent });
      expect(created.status).toBe(201);
      // Idle on the keep-alive connection for longer than the request timeout: not a slow request.
      await sleep(TIMEOUT + 300);
      const before = reachedFastify;
      const verified = await request(port, "/v1/verify", { "x-api-key": co.key }, verifying(), { agent });
      expect([verified.status, JSON.parse(verified.body).data.code]).toEqual([200, "VALID"]);
      expect(reachedFastify).toBe(before);
      expect(verified.localPort).toBe(created.localPort);
      // Half the body, a pause well inside the timeout, the rest: answered, on both paths.
      const slowCreate = await request(port, "/v1/keys", { "x-api-key": co.key }, newKey(), {
        agent,
        pause: TIMEOUT / 3,
      });
      expect(slowCreate.status).toBe(201);
      const slowVerify = await request(port, "/v1/verify", { "x-api-key": co.key }, verifying(), {
        agent,
        pause: TIMEOUT / 3,
      });
      expect([slowVerify.status, JSON.parse(slowVerify.body).data.code]).toEqual([200, "VALID"]);
      expect(reachedFastify).toBe(before + 1);
      expect(slowVerify.localPort).toBe(created.localPort);
    } finally {
      agent.destroy();
    }
  });
});

describe("LATCHKEY_REQUEST_TIMEOUT_MS", () => {
  const rejects = (value: string) => {
    try {
      loadConfig({ LATCHKEY_REQUEST_TIMEOUT_MS: value });
    } catch (err) {
      return err as Error;
    }
    throw new Error(`"${value}" was accepted`);
  };

  it("is 10 s by default and reads a number of milliseconds", () => {
    expect(loadConfig({}).requestTimeoutMs).toBe(10_000);
    expect(loadConfig({ LATCHKEY_REQUEST_TIMEOUT_MS: "2500" }).requestTimeoutMs).toBe(2500);
  });

  it("refuses what is not a timeout, naming the variable", () => {
    for (const value of ["0", "-1", "999", "1.5s", "ten", "3600001"]) {
      const err = rejects(value);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(/^LATCHKEY_REQUEST_TIMEOUT_MS must be an integer from 1000 to 3600000/);
    }
  });

  it.runIf(BACKENDS.includes("postgres"))("is the timeout of the server started from it", async () => {
    const schema = await createTestSchema();
    let running: Running | undefined;
    try {
      running = await startServer(
        loadConfig({
          DATABASE_URL: schema.url,
          LATCHKEY_SECRET: SECRET,
          HOST: "127.0.0.1",
          PORT: "0",
          LATCHKEY_REQUEST_TIMEOUT_MS: String(TIMEOUT),
        }),
        { logger: false },
      );
      const port = Number(new URL(running.url).port);
      expectTimedOut(await trickle(port, rawHead("/v1/keys", {}, 100), "x".repeat(100)));
    } finally {
      await running?.stop();
      await schema.drop();
    }
  });
});
