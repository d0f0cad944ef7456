import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { freePort } from "./nodes.ts";

/** `latchkey` as a user runs it: bin/latchkey.js in a child process. */
export const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = join(ROOT, "bin/latchkey.js");

/** The parent's environment without anything Latchkey reads, so only what a test sets applies. */
export function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (
      name.startsWith("LATCHKEY_") ||
      ["DATABASE_URL", "PORT", "HOST", "REDIS_URL", "LOG_LEVEL"].includes(name)
    ) {
      delete env[name];
    }
  }
  delete env.NODE_OPTIONS;
  return { ...env, HOST: "127.0.0.1", ...extra };
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** Ends every child a test left running (for afterAll). */
export function killChildren(): void {
  for (const child of children) child.kill("SIGKILL");
}

/** Runs one CLI command to its end. `entry` replaces bin/latchkey.js (the compiled CLI). */
export function run(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
  entry = BIN,
): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [entry, ...args], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`latchkey ${args.join(" ")} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("error", fail);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      // Let the pipes drain before reporting.
      setImmediate(() => done({ code, signal, stdout, stderr }));
    });
  });
}

export interface Server {
  pid: number;
  url: string;
  port: number;
  output(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** `latchkey serve` on a spare port, once it answers /healthz. */
export async function serve(env: NodeJS.ProcessEnv, entry = BIN): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [entry, "serve"], {
    cwd: ROOT,
    env: { ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (code) => {
      children.delete(child);
      r(code);
    }),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (gone) throw new Error(`serve exited before answering:\n${out}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`serve did not answer /healthz in time:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    pid: child.pid as number,
    url,
    port,
    output: () => out,
    exited,
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}
