import { describe, expect, it } from "vitest";
import { CommandError, failureLine, report } from "../../src/cli/failures.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";

/**
 * The CLI's one mapping from a failure to its line, for the failures the CLI tests cannot cause on
 * this machine (a PostgreSQL whose disk is full, a listen refused for privileges) and for what must
 * never show (a password, a stack unless asked for).
 */

const pgConfig = loadConfig({
  DATABASE_URL: "postgres://app:s3cret-pw@db.internal:6432/latchkey",
  LATCHKEY_SECRET: "s".repeat(32),
});
const embedded = loadConfig({ LATCHKEY_DATA_DIR: "/srv/latchkey" });
const coded = (message: string, props: Record<string, unknown>) => Object.assign(new Error(message), props);

describe("failureLine", () => {
  it("says a full PostgreSQL disk is the database server's, naming DATABASE_URL's host and not its password", () => {
    const line = failureLine(
      coded('could not extend file "base/1/2": No space left on device', { code: "53100" }),
      {
        config: pgConfig,
      },
    );
    expect(line).toBe(
      "the disk of PostgreSQL at db.internal:6432 is full (SQLSTATE 53100; DATABASE_URL): free space on the database server",
    );
  });

  it("says ENOSPC on the embedded store is the data dir's disk", () => {
    const line = failureLine(
      coded("ENOSPC: no space left on device, open '/srv/latchkey/x'", { code: "ENOSPC" }),
      {
        config: embedded,
      },
    );
    expect(line).toContain("the disk holding /srv/latchkey (LATCHKEY_DATA_DIR) is full");
  });

  it("names the host of an unknown name and the database of a missing one, never the password", () => {
    for (const code of ["ENOTFOUND", "EAI_AGAIN"]) {
      const line = failureLine(coded(`getaddrinfo ${code} db.internal`, { code, syscall: "getaddrinfo" }), {
        config: pgConfig,
      });
      expect(line).toBe(
        `the PostgreSQL host "db.internal" in DATABASE_URL cannot be resolved (${code}): check the host name`,
      );
    }
    const missing = failureLine(coded('database "latchkey" does not exist', { code: "3D000" }), {
      config: pgConfig,
    });
    expect(missing).toContain('the database "latchkey" does not exist on db.internal:6432');
    const login = failureLine(coded('password authentication failed for user "app"', { code: "28P01" }), {
      config: pgConfig,
    });
    expect(login).toContain("refused the login");
    for (const line of [missing, login]) expect(line).not.toContain("s3cret-pw");
  });

  it("reads a refused connection inside Node's AggregateError (every address of a name)", () => {
    const err = new AggregateError([
      coded("connect ECONNREFUSED ::1:6432", { code: "ECONNREFUSED" }),
      coded("connect ECONNREFUSED 127.0.0.1:6432", { code: "ECONNREFUSED" }),
    ]);
    expect(failureLine(err, { config: pgConfig })).toBe(
      "PostgreSQL at db.internal:6432 refused the connection (DATABASE_URL): is it running, and is that its host and port?",
    );
  });

  it("names PORT for a port in use or one that needs privileges", () => {
    const inUse = coded("listen EADDRINUSE", { code: "EADDRINUSE", syscall: "listen", port: 8080 });
    expect(failureLine(inUse, { config: embedded })).toMatch(/^port 8080 is already in use .*PORT/);
    const denied = coded("listen EACCES", { code: "EACCES", syscall: "listen", port: 80 });
    expect(failureLine(denied, { config: { ...embedded, port: 80 } })).toMatch(
      /^not allowed to listen on .*:80 \(PORT, HOST\)/,
    );
  });

  it("prints our own errors' messages as they are, and anything else by its first line", () => {
    expect(failureLine(new ConfigError("LATCHKEY_SECRET must be at least 32 characters long"))).toBe(
      "LATCHKEY_SECRET must be at least 32 characters long",
    );
    expect(failureLine(new CommandError("EMAIL_TAKEN", "That email is already in use."))).toBe(
      "That email is already in use.",
    );
    expect(failureLine(new Error("first\nsecond"))).toBe("first");
  });
});

describe("report", () => {
  it("adds the stack only with LOG_LEVEL=debug or trace", () => {
    const before = process.env.LOG_LEVEL;
    try {
      delete process.env.LOG_LEVEL;
      expect(report(new Error("boom"))).toBe("latchkey: boom");
      process.env.LOG_LEVEL = "debug";
      expect(report(new Error("boom"))).toMatch(/^latchkey: boom\nError: boom\n\s+at /);
    } finally {
      if (before === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = before;
    }
  });
});
