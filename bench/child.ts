import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

// Every measurement runs in a fresh process: in one long-lived process, the figures of a section
// depended on what earlier sections had left behind (autocannon ran at half speed after the store benches).

export interface Child<T = Record<string, unknown>> {
  process: ChildProcess;
  /** The child's first message: "ready" (with what it offers) or its whole result. */
  first: T;
}

const running = new Set<ChildProcess>();

/**
 * Forks bench/<script> with this process's Node flags (tsx, --expose-gc) and waits for its first message.
 * `quietStdout`: the child's stdout goes to this process's stderr (a server's log must not mix with the
 * tables on stdout).
 */
export function spawn<T>(
  script: string,
  args: string[] = [],
  opts: { quietStdout?: boolean } = {},
): Promise<Child<T>> {
  const proc = fork(fileURLToPath(new URL(script, import.meta.url)), args, {
    stdio: ["ignore", opts.quietStdout ? 2 : "inherit", "inherit", "ipc"],
  });
  running.add(proc);
  proc.once("exit", () => running.delete(proc));
  return new Promise((resolve, reject) => {
    const early = (code: number | null) =>
      reject(new Error(`${script} ${args.join(" ")} exited with ${code}`));
    proc.once("exit", early);
    proc.once("message", (message) => {
      proc.off("exit", early);
      resolve({ process: proc, first: message as T });
    });
  });
}

/** Sends a message and waits for the reply of the given type. */
export function ask<T>(child: Child<unknown>, message: Record<string, unknown>, reply: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`child exited with ${code} before "${reply}"`));
    const listener = (m: { type: string }) => {
      if (m.type !== reply) return;
      child.process.off("message", listener);
      child.process.off("exit", onExit);
      resolve(m as T);
    };
    child.process.on("message", listener);
    child.process.once("exit", onExit);
    child.process.send(message);
  });
}

/** Asks the child to stop and waits until it has exited. */
export async function stop(child: Child<unknown>): Promise<void> {
  if (child.process.exitCode !== null) return;
  const exited = new Promise((resolve) => child.process.once("exit", resolve));
  child.process.send({ type: "stop" });
  await exited;
}

/** Waits for a child that exits by itself once it has reported. */
export async function exited(child: Child<unknown>): Promise<void> {
  if (child.process.exitCode !== null) return;
  await new Promise((resolve) => child.process.once("exit", resolve));
}

export function killAll(): void {
  for (const proc of running) if (proc.exitCode === null && proc.pid) process.kill(proc.pid);
}
