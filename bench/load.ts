// The load generator in a process of its own; runs autocannon on request and reports.
import autocannon from "autocannon";

export interface LoadRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
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
  const result = await autocannon({
    url: message.url,
    connections: message.connections,
    duration: message.seconds,
    pipelining: 1,
    method: "POST",
    headers: message.headers,
    body: message.body,
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
