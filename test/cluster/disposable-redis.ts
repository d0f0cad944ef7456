import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

/** A Redis of the test's own, so it can be stopped and started again; the shared one is never touched. */
export class DisposableRedis {
  private proc: ChildProcess | null = null;
  constructor(readonly port: number) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    const proc = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(this.port), "--save", "", "--appendonly", "no"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    this.proc = proc;
    let out = "";
    await new Promise<void>((resolve, reject) => {
      proc.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ready to accept connections")) resolve();
      });
      proc.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  }
  /** SIGSTOP: a partition that keeps every connection open while nothing is answered. */
  freeze() {
    this.proc?.kill("SIGSTOP");
  }
  thaw() {
    this.proc?.kill("SIGCONT");
  }
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    proc.kill("SIGKILL");
    await once(proc, "exit");
    this.proc = null;
  }
}
