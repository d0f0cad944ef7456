import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command } from "commander";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import type { Services } from "../services/services.ts";
import { CommandError, type FailureContext, report } from "./failures.ts";

// The store, the services and the server (Fastify, PGlite, node-postgres) are imported by the commands
// that use them, not here: `latchkey --version` and `--help` would otherwise load all of it first.

/** What a failure is reported with: the configuration, once a command has read it. */
const context: FailureContext = {};

/** Reads the configuration and keeps it for the failure report. */
function config(): Config {
  context.config = loadConfig();
  return context.config;
}

/**
 * Runs a platform operation: through the running embedded server's API when one holds the data dir
 * (two processes must never open it), else against the store directly.
 */
async function asPlatform<T>(
  config: Config,
  command: string,
  http: { method: "GET" | "POST"; path: string; body?: unknown },
  local: (services: Services) => Promise<T>,
  opts: { createStore?: boolean } = {},
): Promise<T> {
  const { readLock } = await import("../store/lock.ts");
  const holder = config.databaseUrl ? null : readLock(config.dataDir);
  if (holder?.url && holder.control_token) {
    const res = await fetch(`${holder.url}${http.path}`, {
      method: http.method,
      headers: {
        authorization: `Bearer ${holder.control_token}`,
        ...(http.body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(http.body === undefined ? {} : { body: JSON.stringify(http.body) }),
    });
    const json = (await res.json()) as {
      success: boolean;
      data?: T;
      error?: { code: string; message: string };
    };
    if (!json.success || json.data === undefined)
      throw new CommandError(
        json.error?.code ?? "INTERNAL_ERROR",
        json.error?.message ?? `HTTP ${res.status}`,
      );
    return json.data;
  }
  // A command run where no store is (a terminal without the server's DATABASE_URL, another directory)
  // would otherwise make a new embedded one and write there, unseen by the real server.
  const { embeddedStoreExists } = await import("../store/store.ts");
  if (!config.databaseUrl && !opts.createStore && !embeddedStoreExists(config.dataDir)) {
    throw new ConfigError(
      `no store to ${command} into: DATABASE_URL is unset and ${resolve(config.dataDir)} (LATCHKEY_DATA_DIR) holds no ` +
        "embedded store. Set DATABASE_URL to your PostgreSQL, or LATCHKEY_DATA_DIR to the running server's data dir" +
        (command === "bootstrap" ? ", or pass --create-store to start a new embedded store here." : "."),
    );
  }
  // A one-shot command: no cluster and no usage flush timer, only the store and the services.
  const { createRuntime, runtimeOptions } = await import("../runtime.ts");
  const { store, secret, catalog, keyPrefix } = runtimeOptions(config, command);
  const runtime = await createRuntime({ store, secret, catalog, keyPrefix });
  try {
    return await local(runtime.services);
  } catch (err) {
    // A service's refusal (EMAIL_TAKEN, …) reads as the server's would over HTTP.
    const { LatchkeyError } = await import("../core/errors.ts");
    if (err instanceof LatchkeyError) throw new CommandError(err.code, err.message);
    throw err;
  } finally {
    await runtime.close();
  }
}

/**
 * Checks --owner-email before any store or server is reached, with TypeBox's email format (the format
 * POST /v1/admin/companies' schema gives owner_email); the server checks the whole body again.
 * TypeBox's schema and value modules are not loaded for this: they take longer than the whole command.
 */
async function checkOwnerEmail(email: string): Promise<void> {
  const { IsEmail } = await import("typebox/format");
  if (!IsEmail(email))
    throw new CommandError(
      "VALIDATION_ERROR",
      `--owner-email ${JSON.stringify(email)} is not an email address`,
    );
}

/** The release, from package.json (the CLI runs from a checkout or an installed package alike). */
const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

const program = new Command()
  .name("latchkey")
  .version(VERSION)
  .description(
    "Self-hosted API credentials: scoped keys, IP allowlists, rotation, revocation and verification.",
  );

program
  .command("serve")
  .description("Start the server (embedded store unless DATABASE_URL is set); migrations are applied first")
  .action(async () => {
    const cfg = config();
    const { startServer } = await import("../server.ts");
    const running = await startServer(cfg);
    running.app.log.info(
      {
        url: running.url,
        store: running.store.kind,
        data_dir: running.store.kind === "pglite" ? cfg.dataDir : undefined,
      },
      "latchkey is listening",
    );
    // Stops accepting, lets what is in flight finish (answers from now on close their connection),
    // flushes usage and exits 0; a problem on the way is one line and exit 1.
    const shutdown = async (signal: string) => {
      running.app.log.info({ signal }, "shutting down");
      try {
        await running.stop();
      } catch (err) {
        console.error(report(err, context).replace(/^latchkey: /, "latchkey: shutting down: "));
        process.exit(1);
      }
      const lost = running.services.usage.pendingKeys;
      if (lost > 0) {
        console.error(
          `latchkey: shutting down: the usage (last use, counts) of ${lost} key(s) since the last flush could not be written to the store, so it is lost`,
        );
        process.exit(1);
      }
      process.exit(0);
    };
    process.once("SIGINT", () => void shutdown("SIGINT"));
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
  });

program
  .command("migrate")
  .description("Apply pending migrations and exit")
  .action(async () => {
    const cfg = config();
    const { storeOptions } = await import("../runtime.ts");
    const { migrateToLatest, openStore } = await import("../store/store.ts");
    const store = await openStore(storeOptions(cfg, "migrate"));
    try {
      const applied = await migrateToLatest(store.db);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "already up to date");
    } finally {
      await store.close();
    }
  });

program
  .command("bootstrap")
  .description("Create a company with its owner, default live and test API credentials and a management key")
  .requiredOption("--company <name>", "the company's name")
  .requiredOption("--owner-email <email>", "the owner's email address")
  .option("--json", "print the result as JSON (the same as POST /v1/admin/companies)")
  .option("--create-store", "with no server running and no store in LATCHKEY_DATA_DIR, create one there")
  .action(async (opts: { company: string; ownerEmail: string; json?: boolean; createStore?: boolean }) => {
    const cfg = config();
    const body = { name: opts.company, owner_email: opts.ownerEmail };
    await checkOwnerEmail(body.owner_email);
    const { platformCtx } = await import("../services/actor.ts");
    const data = await asPlatform(
      cfg,
      "bootstrap",
      { method: "POST", path: "/v1/admin/companies", body },
      (services) => services.companies.create(body, platformCtx()),
      { createStore: opts.createStore === true },
    );
    if (opts.json) {
      console.log(JSON.stringify(data, null, 2));
      return;
    }
    const d = data as {
      company: { id: string; name: string };
      owner: { email: string; existing_login: boolean; temporary_password?: string };
      default_credential: { username: string };
      default_test_credential: { username: string };
      management_key: { key: string };
    };
    console.log(`Company        ${d.company.name} (${d.company.id})`);
    console.log(
      d.owner.temporary_password === undefined
        ? `Owner          ${d.owner.email}, who already has a login (they sign in with their own password)`
        : `Owner          ${d.owner.email}, temporary password ${d.owner.temporary_password}`,
    );
    console.log(`API credential ${d.default_credential.username} (live)`);
    console.log(`API credential ${d.default_test_credential.username} (test)`);
    console.log(`Management key ${d.management_key.key}`);
    console.log("The key and password are shown this once. Store them now.");
  });

program
  .command("audit")
  .description("Audit trail tools")
  .command("verify")
  .description("Check every audit hash chain; exits 1 when an event was edited or deleted")
  .option("--json", "print the result as JSON")
  .action(async (opts: { json?: boolean }) => {
    const result = await asPlatform(
      config(),
      "audit verify",
      { method: "GET", path: "/v1/admin/audit/verify" },
      (services) => services.audit.verifyAll(),
    );
    if (opts.json) console.log(JSON.stringify(result, null, 2));
    else {
      for (const c of result.chains) {
        console.log(
          `${c.valid ? "ok     " : "BROKEN "} ${c.chain}  ${c.events_checked} events` +
            (c.first_broken_event_id ? `, first broken: ${c.first_broken_event_id}` : ""),
        );
      }
      console.log(result.valid ? "every chain is intact" : "the audit trail has been tampered with");
    }
    if (!result.valid) process.exitCode = 1;
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(report(err, context));
  process.exit(1);
});
