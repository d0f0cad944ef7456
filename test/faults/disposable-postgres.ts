import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The newest PostgreSQL server binaries Debian installed, or null when there are none. */
export function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

/**
 * A PostgreSQL of the test's own (initdb into a temp dir, trust auth, its own port and socket dir), so
 * it can be restarted and stopped; the shared one is never touched. The server refuses to run as root,
 * so as root its files belong to the `postgres` user and its commands run as that user.
 */
export class DisposablePostgres {
  readonly dir: string;
  private readonly data: string;
  constructor(
    private readonly bin: string,
    readonly port: number,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "latchkey-pg-"));
    this.data = join(this.dir, "data");
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private async tool(name: string, args: string[]): Promise<string> {
    const asRoot = process.getuid?.() === 0;
    const [file, argv] = asRoot
      ? ["runuser", ["-u", "postgres", "--", join(this.bin, name), ...args]]
      : [join(this.bin, name), args];
    const { stdout, stderr } = await run(file, argv, { cwd: this.dir });
    return stdout + stderr;
  }

  async init() {
    if (process.getuid?.() === 0) {
      const { stdout } = await run("id", ["-u", "postgres"]);
      const { stdout: gid } = await run("id", ["-g", "postgres"]);
      chownSync(this.dir, Number(stdout.trim()), Number(gid.trim()));
    }
    await this.tool("initdb", ["-D", this.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  }

  private get options() {
    return `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  }

  start() {
    return this.tool("pg_ctl", [
      "-D",
      this.data,
      "-o",
      this.options,
      "-l",
      join(this.dir, "log"),
      "-w",
      "start",
    ]);
  }

  /** `fast` ends every session, as a routine restart or failover does. */
  restart() {
    return this.tool("pg_ctl", [
      "-D",
      this.data,
      "-o",
      this.options,
      "-l",
      join(this.dir, "log"),
      "-m",
      "fast",
      "-w",
      "restart",
    ]);
  }

  /** `immediate`: the server is gone at once, as in a crash. */
  stop(mode: "fast" | "immediate" = "fast") {
    return this.tool("pg_ctl", ["-D", this.data, "-m", mode, "-w", "stop"]);
  }

  /** Stops the server if it runs and removes its files. */
  async destroy() {
    if (existsSync(join(this.data, "postmaster.pid"))) await this.stop("immediate").catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
