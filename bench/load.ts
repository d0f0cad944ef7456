// The load generator in a process of its own; runs autocannon on request and reports.
import autocannon from "autocannon";

export interface LoadRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /**
   * When given, each request takes the next of these bodies instead of `body` (round robin over all
   * connections), so a peer that writes to the key's row on every verify is not measured queueing on one
   * row lock. autocannon then rebuilds every request, which costs it CPU: only for slow servers.
   */
  bodies?: string[];
  seconds: number;
  connections: number;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
}

type Message = ({ type: "load" } & LoadRequest) | { type: "stop" };

process.on("message", async (message: Message) => {
  if (message.type === "stop") {
    process.disconnect();
    return;
  }
  const bodies = message.bodies;
  let next = 0;
  const result = await autocannon({
    url: message.url,
    connections: message.connections,
    duration: message.seconds,
    pipelining: 1,
    method: "POST",
    headers: message.headers,
    body: message.body,
    ...(bodies && bodies.length > 0
      ? { requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }] }
      : {}),
  });
  const loaded: LoadResult = {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failed: result.non2xx + result.errors + result.timeouts,
  };
  process.send?.({ type: "loaded", ...loaded });
});
process.send?.({ type: "ready" });
