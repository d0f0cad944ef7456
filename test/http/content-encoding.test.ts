import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * Compressed request bodies, over real sockets (inject never meets the verify fast path): gzip, deflate
 * and br are decoded within LATCHKEY_BODY_LIMIT, on the verify route and on a write route; a zip bomb
 * stops at the limit with 413; a coding nobody decodes gets 415, a corrupt body 400, each with the
 * error envelope. The harness's app has the default body limit, 64 KiB.
 */

const BODY_LIMIT = 64 * 1024;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function post(
  port: number,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  agent: http.Agent | false = false,
  chunked = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const length = chunked ? { "transfer-encoding": "chunked" } : { "content-length": body.length };
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        agent,
        headers: { "content-type": "application/json", ...length, ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("no answer in 10 s")));
    if (chunked) {
      // In pieces, with no length announced: the limit is counted as the bytes arrive.
      for (let at = 0; at < body.length; at += 4096) req.write(body.subarray(at, at + 4096));
      req.end();
    } else {
      req.end(body);
    }
  });
}

function expectError(answer: Answer, status: number, code: string) {
  expect(answer.status, answer.body).toBe(status);
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  expect(JSON.parse(answer.body)).toEqual({
    success: false,
    error: { code, message: expect.any(String), request_id: answer.headers["x-request-id"] },
  });
}

const CODINGS: [string, (input: Buffer) => Buffer][] = [
  ["gzip", (input) => gzipSync(input)],
  ["x-gzip", (input) => gzipSync(input)],
  ["deflate", (input) => deflateSync(input)],
  ["br", (input) => brotliCompressSync(input)],
  ["identity", (input) => input],
  ["GZip", (input) => gzipSync(input)],
];

/**
 * A gzip body of `members` concatenated gzip members, each `member` zero bytes when decoded: small on
 * the wire (a member of 4 MiB is about 4 KB), huge decoded. Node's gunzip reads every member.
 */
function gzipBomb(member: number, members: number): Buffer {
  const one = gzipSync(Buffer.alloc(member), { level: 9 });
  return Buffer.concat(Array.from({ length: members }, () => one));
}

describe.each(BACKENDS)("compressed request bodies on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let subject: { id: string; key: string };
  let port: number;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Encoding Company");
    subject = await h.createKey(co, { permissions: ["payin:read"] });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    port = (h.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await h?.close();
  });

  const asCompany = (encoding: string) => ({ "x-api-key": co.key, "content-encoding": encoding });

  it.each(CODINGS)("verifies a key sent in a %s body", async (encoding, encode) => {
    const body = encode(Buffer.from(JSON.stringify({ key: subject.key, permissions: ["payin:read"] })));
    const answer = await post(port, "/v1/verify", asCompany(encoding), body);
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body).data).toMatchObject({ valid: true, code: "VALID", key_id: subject.id });
  });

  it("creates a key from a gzip body, and the key verifies", async () => {
    const body = gzipSync(
      JSON.stringify({ name: "Zipped", environment: "live", permissions: ["payin:read"] }),
    );
    const created = await post(port, "/v1/keys", asCompany("gzip"), body);
    expect(created.status, created.body).toBe(201);
    const key = JSON.parse(created.body).data;
    expect(key.name).toBe("Zipped");
    const verified = await post(
      port,
      "/v1/verify",
      { "x-api-key": co.key },
      Buffer.from(JSON.stringify({ key: key.key })),
    );
    expect(JSON.parse(verified.body).data).toMatchObject({ code: "VALID", key_id: key.id });
  });

  it("stops a zip bomb at the body limit with 413, without holding what it would inflate to", async () => {
    // 60 KB on the wire (within the limit), 60 MiB decoded.
    const bomb = gzipBomb(4 * 1024 * 1024, 15);
    expect(bomb.length).toBeLessThan(BODY_LIMIT);
    // The most memory buffers held at any moment while the bomb is answered (a decoder that read it
    // all would hold 60 MiB; one that stops at the limit, about the limit).
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const sample = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 2);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const path of ["/v1/verify", "/v1/keys"]) {
        expectError(await post(port, path, asCompany("gzip"), bomb, agent), 413, "PAYLOAD_TOO_LARGE");
      }
      // The connection still answers its next request.
      const next = await post(port, "/v1/verify", asCompany("gzip"), gzipSync(JSON.stringify({})), agent);
      expect(JSON.parse(next.body).data.code).toBe("MALFORMED");
    } finally {
      clearInterval(sample);
      agent.destroy();
    }
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    expect(peak - before).toBeLessThan(16 * 1024 * 1024);
  });

  it("decodes a chunked gzip body, and stops a chunked bomb or an oversized chunked body with 413", async () => {
    const ok = await post(
      port,
      "/v1/verify",
      asCompany("gzip"),
      gzipSync(JSON.stringify({ key: subject.key })),
      false,
      true,
    );
    expect(JSON.parse(ok.body).data.code).toBe("VALID");
    const bomb = gzipBomb(4 * 1024 * 1024, 15);
    expectError(await post(port, "/v1/keys", asCompany("gzip"), bomb, false, true), 413, "PAYLOAD_TOO_LARGE");
    // Random bytes stay as large compressed: past the limit on the wire, whatever they decode to.
    const big = gzipSync(randomBytes(BODY_LIMIT + 1024), { level: 0 });
    expectError(await post(port, "/v1/keys", asCompany("gzip"), big, false, true), 413, "PAYLOAD_TOO_LARGE");
  });

  it("refuses a compressed body over the limit on the wire with 413", async () => {
    // Random bytes do not compress: the gzip body itself is over the limit.
    const big = gzipSync(
      JSON.stringify({ key: subject.key, ip: Buffer.alloc(BODY_LIMIT, 1).toString("base64") }),
      { level: 0 },
    );
    expect(big.length).toBeGreaterThan(BODY_LIMIT);
    expectError(await post(port, "/v1/verify", asCompany("gzip"), big), 413, "PAYLOAD_TOO_LARGE");
  });

  it.each(["foo", "compress", "zstd", "gzip, gzip", "gzip, br"])(
    "refuses Content-Encoding %j with 415 UNSUPPORTED_ENCODING, never reading the body as plain",
    async (encoding) => {
      // Plain JSON that would verify if it were read as such.
      const body = Buffer.from(JSON.stringify({ key: subject.key }));
      for (const path of ["/v1/verify", "/v1/keys"]) {
        expectError(await post(port, path, asCompany(encoding), body), 415, "UNSUPPORTED_ENCODING");
      }
    },
  );

  it("refuses a corrupt or truncated compressed body with 400 INVALID_ENCODING", async () => {
    const json = Buffer.from(JSON.stringify({ key: subject.key }));
    const gz = gzipSync(json);
    const bodies: [string, Buffer][] = [
      ["gzip", Buffer.concat([gz.subarray(0, 10), Buffer.from("this is no deflate stream")])],
      ["gzip", gz.subarray(0, gz.length - 4)],
      ["gzip", json],
      ["deflate", json],
      ["br", Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ];
    for (const [encoding, body] of bodies) {
      for (const path of ["/v1/verify", "/v1/keys"]) {
        expectError(await post(port, path, asCompany(encoding), body), 400, "INVALID_ENCODING");
      }
    }
  });
});
