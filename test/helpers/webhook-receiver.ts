import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  headers: Record<string, string>;
  body: string;
  path: string;
}

/** What the receiver does with a request: answer with a status (and headers), or never answer. */
export type Answer = { status: number; headers?: Record<string, string> } | "hang";

/**
 * A real HTTP receiver on 127.0.0.1 for webhook tests: it records every request and answers as told,
 * by default 204.
 */
export class Receiver {
  readonly received: Received[] = [];
  answers: Answer[] = [];
  fallback: Answer = { status: 204 };
  private readonly hanging = new Set<ServerResponse>();
  private readonly server = createServer((req, res) => this.handle(req, res));

  static async start(): Promise<Receiver> {
    const r = new Receiver();
    r.server.listen(0, "127.0.0.1");
    await once(r.server, "listening");
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      this.received.push({ headers, body: Buffer.concat(chunks).toString("utf8"), path: req.url ?? "/" });
      const answer = this.answers.shift() ?? this.fallback;
      if (answer === "hang") {
        this.hanging.add(res);
        return;
      }
      res.writeHead(answer.status, answer.headers ?? {});
      res.end();
    });
  }

  ids(): string[] {
    return this.received.map((r) => r.headers["webhook-id"] as string);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close").catch(() => undefined);
  }
}
