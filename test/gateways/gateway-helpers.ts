import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The shipped gateway configurations, as a platform would copy them. */
export const GATEWAYS_DIR = resolve(import.meta.dirname, "../../examples/gateways");

/** Whether a program is on the path; the suites that need one say so and skip without it. */
export function installed(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Fills a shipped file's `${NAME}` values, as `envsubst 'NAMES'` would: only the names given. */
export function fill(path: string, values: Record<string, string>): string {
  let text = readFileSync(path, "utf8");
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`\${${name}}`, value);
  return text;
}

/** What the platform's API behind the gateway saw of one request. */
export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** The platform's API: answers 200 with what it received, so a test sees what the gateway passed on. */
export async function startUpstream(): Promise<{
  server: Server;
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const entry = { method: req.method ?? "", url: req.url ?? "", headers: req.headers };
      seen.push(entry);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ upstream: true, ...entry }));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    server,
    port,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Resolves once something accepts connections on the port. */
export async function listening(port: number, proc: ChildProcess, output: () => string, withinMs = 15_000) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`exited (${proc.exitCode}):\n${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A gateway process of the test's own, on its own config in a temporary directory. */
export class GatewayProcess {
  readonly dir = mkdtempSync(join(tmpdir(), "latchkey-gw-"));
  private proc: ChildProcess | null = null;
  private out = "";

  write(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  async start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = process.env) {
    const proc = spawn(command, args, { cwd: this.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stdout?.on("data", (d) => {
      this.out += d;
    });
    proc.stderr?.on("data", (d) => {
      this.out += d;
    });
    await listening(port, proc, () => this.output);
  }

  get output(): string {
    return this.out;
  }

  async stop() {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      await once(proc, "exit");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
