import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { baseEnv, killChildren, type Server, serve } from "../helpers/cli.ts";
import { freePort } from "../helpers/nodes.ts";
import { DisposablePostgres, postgresBinDir } from "./disposable-postgres.ts";

/**
 * SIGTERM while the database is gone: the last usage counts cannot be written, and `latchkey serve`
 * says so in one line (no stack) and exits 1 rather than 0, instead of hanging or pretending.
 */

const SLOW = { timeout: 120_000 };
const ADMIN_TOKEN = "shutdown-test-admin-token-0123456789";
const BIN_DIR = postgresBinDir();
const RUN = BACKENDS.includes("postgres") && BIN_DIR !== null;
if (!RUN) console.warn("skipping the shutdown-without-store test: no initdb, or the postgres backend is off");

describe.runIf(RUN)("shutting down while PostgreSQL is gone", () => {
  let pg: DisposablePostgres;
  let server: Server;

  beforeAll(async () => {
    pg = new DisposablePostgres(BIN_DIR as string, await freePort());
    await pg.init();
    await pg.start();
    server = await serve(
      baseEnv({
        DATABASE_URL: pg.url,
        LATCHKEY_SECRET: "shutdown-test-secret-0123456789abcdef0123456789",
        LATCHKEY_ADMIN_TOKEN: ADMIN_TOKEN,
        LATCHKEY_USAGE_FLUSH_MS: "3600000",
      }),
    );
  }, SLOW.timeout);

  afterAll(async () => {
    killChildren();
    await pg?.destroy();
  });

  it("says the usage it could not write, in one line, and exits 1", SLOW, async () => {
    const res = await fetch(`${server.url}/v1/admin/companies`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Gone Co", owner_email: "owner@gone.test" }),
    });
    const key = ((await res.json()) as { data: { management_key: { key: string } } }).data.management_key.key;
    const verified = await fetch(`${server.url}/v1/verify`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: JSON.stringify({ key, permissions: ["keys:manage"] }),
    });
    expect(((await verified.json()) as { data: { valid: boolean } }).data.valid).toBe(true);

    await pg.stop("immediate");
    expect(await server.stop()).toBe(1);
    const lines = server.output().trim().split("\n");
    expect(lines.at(-1)).toBe(
      "latchkey: shutting down: the usage (last use, counts) of 1 key(s) since the last flush could not be written to the store, so it is lost",
    );
    expect(server.output()).not.toMatch(/\n\s+at /);
  });
});
