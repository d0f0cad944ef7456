import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseEnv, killChildren, type Server, serve } from "../helpers/cli.ts";

/**
 * SIGTERM (and SIGINT) on a real `latchkey serve` with real keep-alive connections: it stops accepting, finishes
 * what is in flight, answers what arrives on connections already open in the first moments (each
 * answer with the envelope and `Connection: close`), never resets one, and exits 0 after the flush.
 */

const SLOW = { timeout: 120_000 };
const ADMIN_TOKEN = randomBytes(24).toString("base64url");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server under test
  body: any;
  reused: boolean;
}

/** One request through `agent`; rejects with the socket error (ECONNRESET, …) if there is one. */
function send(agent: Agent, url: string, path: string, key: string, json?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const req = request(
      `${url}${path}`,
      {
        agent,
        method: body === undefined ? "GET" : "POST",
        headers: { "x-api-key": key, ...(body ? { "content-type": "application/json" } : {}) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(text),
            reused: req.reusedSocket,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe.each(["SIGTERM", "SIGINT"] as const)("latchkey serve on %s", (signal) => {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-shutdown-"));
  let server: Server;
  let key = "";

  beforeAll(async () => {
    server = await serve(baseEnv({ LATCHKEY_DATA_DIR: dir, LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN }));
    const res = await fetch(`${server.url}/v1/admin/companies`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Drain Co", owner_email: "owner@drain.test" }),
    });
    key = ((await res.json()) as { data: { management_key: { key: string } } }).data.management_key.key;
  }, SLOW.timeout);

  afterAll(() => {
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    "drains keep-alive connections without a reset, every answer an envelope, and exits 0",
    SLOW,
    async () => {
      const sockets = 12;
      const agent = new Agent({ keepAlive: true, maxSockets: sockets, scheduling: "fifo" });
      // Open the connections: as many requests at once as sockets, both on the verify fast path and
      // on a Fastify route. They stay open, idle, in the agent's pool.
      const verify = () => send(agent, server.url, "/v1/verify", key, { key, permissions: ["keys:manage"] });
      const list = () => send(agent, server.url, "/v1/keys", key);
      const warm = await Promise.all(Array.from({ length: sockets }, (_, i) => (i % 2 ? verify() : list())));
      for (const a of warm) expect(a.status).toBe(200);

      // A request in flight at the signal: its headers and half its body are sent before, the rest after.
      const body = JSON.stringify({ key, permissions: ["keys:manage"] });
      const slow = connect(server.port, "127.0.0.1");
      let slowAnswer = "";
      slow.setEncoding("utf8");
      slow.on("data", (d) => {
        slowAnswer += d;
      });
      const slowEnded = new Promise<void>((r) => slow.on("close", () => r()));
      const slowErrors: Error[] = [];
      slow.on("error", (err) => slowErrors.push(err));
      await new Promise<void>((r) => slow.once("connect", () => r()));
      slow.write(
        `POST /v1/verify HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: ${key}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`,
      );
      await sleep(100);

      process.kill(server.pid, signal);
      // Requests on the connections already open, in the first moments after the signal.
      const late = Array.from({ length: sockets - 2 }, (_, i) =>
        sleep(i * 40).then(() => (i % 2 ? verify() : list())),
      );
      await sleep(200);
      slow.write(body.slice(20));
      const answers = await Promise.allSettled(late);
      const failures = answers.filter((a) => a.status === "rejected").map((a) => String(a.reason));
      expect(failures).toEqual([]);
      for (const a of answers as PromiseFulfilledResult<Answer>[]) {
        expect(a.value.reused).toBe(true);
        expect(a.value.status).toBe(200);
        expect(a.value.body.success).toBe(true);
      }
      // Those answered after the signal was seen tell the client to leave this node.
      const last = (answers.at(-1) as PromiseFulfilledResult<Answer>).value;
      expect(last.headers.connection).toBe("close");

      await slowEnded;
      expect(slowErrors).toEqual([]);
      expect(slowAnswer).toMatch(/^HTTP\/1\.1 200 /);
      expect(slowAnswer.toLowerCase()).toContain("connection: close");
      expect(JSON.parse(slowAnswer.slice(slowAnswer.indexOf("\r\n\r\n") + 4))).toMatchObject({
        success: true,
        data: { valid: true },
      });

      // New connections are no longer accepted.
      const refused = await new Promise<string>((resolve) => {
        const s = connect(server.port, "127.0.0.1");
        s.on("connect", () => {
          s.destroy();
          resolve("connected");
        });
        s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
      });
      expect(refused).toBe("ECONNREFUSED");

      expect(await server.exited).toBe(0);
      expect(server.output()).not.toMatch(/\n\s+at /);
      agent.destroy();
    },
  );
});
