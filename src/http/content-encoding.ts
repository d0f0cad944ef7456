// Compressed request bodies: decoded within the body limit, or refused. A body is never read as plain
// when its Content-Encoding says otherwise, and a small compressed body (a zip bomb) never costs more
// than the limit: decoding stops at the first byte past it.
import type { IncomingMessage, ServerResponse } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import zlib from "node:zlib";
import { LatchkeyError } from "../core/errors.ts";

/** The codings a request body may come in, each with what decodes it (RFC 9110 §8.4.1). */
const DECODERS: Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress> = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  // HTTP's "deflate" is the zlib format (RFC 1950), which createInflate reads.
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/**
 * What a Content-Encoding header asks for: null for a plain body (no header, empty, or identity only),
 * a coding we decode, or the 415 to answer. One coding only: a stacked list (`gzip, br`) is refused
 * rather than decoded twice; `identity` entries in a list change nothing.
 */
export function codingOf(header: string | undefined): string | null | LatchkeyError {
  if (header === undefined) return null;
  const codings = header
    .toLowerCase()
    .split(",")
    .map((coding) => coding.trim())
    .filter((coding) => coding !== "" && coding !== "identity");
  if (codings.length === 0) return null;
  const [coding] = codings;
  if (codings.length === 1 && coding !== undefined && Object.hasOwn(DECODERS, coding)) return coding;
  return new LatchkeyError("UNSUPPORTED_ENCODING");
}

/** The decoded body, with what Fastify reads to check a body's length against Content-Length. */
export type DecodedBody = Readable & { receivedEncodedLength: number };

/**
 * `raw` decoded as `coding`, as a stream for Fastify's body parser. Both the bytes received and the
 * bytes decoded are held to `limit`: past it the stream fails with 413 PAYLOAD_TOO_LARGE, and a body
 * that is not valid in its coding fails with 400 INVALID_ENCODING. On failure, or once `res` is done
 * (Fastify answered without reading the body, say for its content type), the decoder is destroyed and
 * the rest of the request is read off the wire and dropped, never decoded, so the connection stays
 * usable for its next request.
 */
export function decodedBody(
  raw: IncomingMessage,
  res: ServerResponse,
  coding: string,
  limit: number,
): DecodedBody {
  const decoder = (DECODERS[coding] as () => zlib.Gunzip)();
  const out = new PassThrough() as PassThrough & DecodedBody;
  out.receivedEncodedLength = 0;
  // Fastify listens for errors only once it reads the body; an error before that (or when it never
  // reads, having refused the content type) must not be an unhandled one.
  out.on("error", () => {});
  let decoded = 0;
  let stopped = false;

  function stop(err?: Error) {
    if (stopped) return;
    stopped = true;
    raw.off("data", onData);
    raw.off("end", onEnd);
    decoder.destroy();
    if (!raw.complete) raw.resume();
    if (err !== undefined) out.destroy(err);
  }

  function onData(chunk: Buffer) {
    out.receivedEncodedLength += chunk.length;
    if (out.receivedEncodedLength > limit) return stop(new LatchkeyError("PAYLOAD_TOO_LARGE"));
    if (!decoder.write(chunk)) raw.pause();
  }
  function onEnd() {
    decoder.end();
  }
  raw.on("data", onData);
  raw.on("end", onEnd);
  // A client that goes away mid-body: Fastify's reader gets the error, as it would from raw.
  raw.on("error", (err) => stop(err));
  decoder.on("drain", () => {
    if (!stopped) raw.resume();
  });
  decoder.on("data", (chunk: Buffer) => {
    decoded += chunk.length;
    if (decoded > limit) return stop(new LatchkeyError("PAYLOAD_TOO_LARGE"));
    if (!out.write(chunk)) decoder.pause();
  });
  out.on("drain", () => {
    if (!stopped) decoder.resume();
  });
  decoder.on("end", () => {
    if (!stopped) out.end();
  });
  // A corrupt or truncated body (zlib's Z_DATA_ERROR, Z_BUF_ERROR and the like).
  decoder.on("error", () => stop(new LatchkeyError("INVALID_ENCODING")));
  res.once("close", () => stop());
  return out;
}
