import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, LOG_LEVELS, loadConfig } from "../src/config.ts";

const SECRET = "s".repeat(32);
const TOKEN = "t".repeat(24);

/** loadConfig's error for an environment, or a failure if it accepted it. */
function rejects(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig defaults", () => {
  it("runs on the embedded store at port 8080 with brand lk and the default catalog", () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.host).toBe("0.0.0.0");
    expect(config.keyPrefix).toBe("lk");
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toBe(resolve(".latchkey"));
    expect(config.dataDir).toBe(join(process.cwd(), ".latchkey"));
    expect(config.secret).toBeUndefined();
    expect(config.adminToken).toBeUndefined();
    expect(config.trustedProxies).toEqual([]);
    expect(config.catalog.permissions.has("payment_transaction:read")).toBe(true);
    expect(config.catalog.permissions.has("keys:manage")).toBe(true);
  });

  it("treats empty variables as unset", () => {
    const config = loadConfig({
      PORT: "",
      LATCHKEY_KEY_PREFIX: "",
      LATCHKEY_SECRET: "",
      LATCHKEY_ADMIN_TOKEN: "",
      LATCHKEY_DATA_DIR: "",
      LATCHKEY_TRUSTED_PROXIES: "",
      DATABASE_URL: "",
    });
    expect(config).toMatchObject({ port: 8080, keyPrefix: "lk", secret: undefined, adminToken: undefined });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toBe(resolve(".latchkey"));
  });

  it("reads what it is given", () => {
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      LATCHKEY_DATA_DIR: "some/where",
      LATCHKEY_KEY_PREFIX: "wp3",
      LATCHKEY_SECRET: SECRET,
      LATCHKEY_ADMIN_TOKEN: TOKEN,
      DATABASE_URL: "postgres://u@h/db",
      LATCHKEY_TRUSTED_PROXIES: " 10.0.0.0/8 , ::ffff:192.168.1.1,2001:db8::/32 ",
    });
    expect(config).toMatchObject({
      port: 0,
      host: "127.0.0.1",
      keyPrefix: "wp3",
      secret: SECRET,
      adminToken: TOKEN,
      databaseUrl: "postgres://u@h/db",
    });
    expect(config.dataDir).toBe(resolve("some/where"));
    expect(config.trustedProxies).toEqual(["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]);
  });

  it("loads a catalog file from LATCHKEY_CATALOG", () => {
    const config = loadConfig({ LATCHKEY_CATALOG: resolve("examples/catalogs/web3pay.json") });
    expect(config.catalog.permissions.has("onramp:create")).toBe(true);
    expect(config.catalog.permissions.has("payment_transaction:read")).toBe(false);
    expect(config.catalog.permissions.has("keys:verify")).toBe(true);
  });
});

describe("loadConfig rejects", () => {
  it("a LATCHKEY_SECRET shorter than 32 characters", () => {
    expect(rejects({ LATCHKEY_SECRET: "s".repeat(31) }).message).toContain("LATCHKEY_SECRET");
    expect(rejects({ LATCHKEY_SECRET: "x" }).message).toMatch(/LATCHKEY_SECRET.*32/);
    expect(loadConfig({ LATCHKEY_SECRET: SECRET }).secret).toBe(SECRET);
  });

  it("a LATCHKEY_ADMIN_TOKEN shorter than 24 characters", () => {
    expect(rejects({ LATCHKEY_ADMIN_TOKEN: "t".repeat(23) }).message).toMatch(/LATCHKEY_ADMIN_TOKEN.*24/);
    expect(loadConfig({ LATCHKEY_ADMIN_TOKEN: TOKEN }).adminToken).toBe(TOKEN);
  });

  it.each(["abc", "-1", "65536", "80.5", "99999999", "NaN", "Infinity"])("PORT=%j", (port) => {
    const err = rejects({ PORT: port });
    expect(err.message).toContain("PORT");
    expect(err.message).toContain(port);
  });

  it.each([
    ["not-an-ip", "not-an-ip"],
    ["10.0.0.0/8,nonsense", "nonsense"],
    ["10.0.0.0/33", "10.0.0.0/33"],
    ["192.168.1.1, 300.1.1.1", "300.1.1.1"],
    ["2001:db8::/129", "2001:db8::/129"],
  ])("LATCHKEY_TRUSTED_PROXIES=%j, naming the bad entry", (value, bad) => {
    const err = rejects({ LATCHKEY_TRUSTED_PROXIES: value });
    expect(err.message).toContain("LATCHKEY_TRUSTED_PROXIES");
    expect(err.message).toContain(`"${bad}"`);
  });

  it.each(["LK", "1lk", "a".repeat(17), "wp-3", "wp_3", "w p", "é"])("LATCHKEY_KEY_PREFIX=%j", (prefix) => {
    const err = rejects({ LATCHKEY_KEY_PREFIX: prefix });
    expect(err.message).toContain("LATCHKEY_KEY_PREFIX");
  });

  it("accepts the longest and shortest valid prefixes", () => {
    expect(loadConfig({ LATCHKEY_KEY_PREFIX: "a".repeat(16) }).keyPrefix).toBe("a".repeat(16));
    expect(loadConfig({ LATCHKEY_KEY_PREFIX: "x" }).keyPrefix).toBe("x");
  });

  describe("LATCHKEY_CATALOG", () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-config-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };

    it("that is missing", () => {
      expect(rejects({ LATCHKEY_CATALOG: join(dir, "missing.json") }).message).toMatch(
        /LATCHKEY_CATALOG.*missing\.json/,
      );
    });

    it("that is not JSON", () => {
      expect(rejects({ LATCHKEY_CATALOG: file("bad.json", "# groups") }).message).toContain(
        "LATCHKEY_CATALOG",
      );
    });

    it("that is not a valid catalog, with the catalog's own reason", () => {
      const path = file(
        "reserved.json",
        JSON.stringify({
          groups: [{ id: "a", name: "A", entities: [{ id: "keys", name: "K", actions: ["read"] }] }],
        }),
      );
      const message = rejects({ LATCHKEY_CATALOG: path }).message;
      expect(message).toContain("LATCHKEY_CATALOG");
      expect(message).toContain(path);
      expect(message).toMatch(/"keys".*reserved/);
      expect(rejects({ LATCHKEY_CATALOG: file("empty.json", "{}") }).message).toMatch(
        /LATCHKEY_CATALOG.*"groups" array/,
      );
    });
  });
});

describe("cluster, cache and rate-limit settings", () => {
  it("defaults to a single node, a 10 s cache, sign-in limits and failing open", () => {
    const config = loadConfig({});
    expect(config.redisUrl).toBeUndefined();
    expect(config.redisPrefix).toBe("latchkey:");
    expect(config.rateLimitWhenRedisDown).toBe("open");
    expect(config.loginLimits).toEqual([
      { limit: 10, window: "1m" },
      { limit: 100, window: "1h" },
    ]);
    expect(config.loginIpLimits).toEqual([
      { limit: 60, window: "1m" },
      { limit: 600, window: "1h" },
    ]);
    expect(config.cacheTtlMs).toBe(10_000);
    expect(config.degradedCacheTtlMs).toBe(1000);
    expect(config.cacheGraceMs).toBe(60_000);
    expect(config.redisTimeoutMs).toBe(500);
  });

  it("reads them, and never lets the degraded TTL exceed the normal one", () => {
    const config = loadConfig({
      REDIS_URL: "redis://cache.internal:6379/2",
      LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN: "closed",
      LATCHKEY_LOGIN_RATE_LIMIT: "5/30s",
      LATCHKEY_CACHE_TTL_MS: "500",
      LATCHKEY_DEGRADED_CACHE_TTL_MS: "2000",
      LATCHKEY_CACHE_GRACE_MS: "0",
      LATCHKEY_REDIS_TIMEOUT_MS: "250",
    });
    expect(config.cacheGraceMs).toBe(0);
    expect(config.redisTimeoutMs).toBe(250);
    expect(config.redisUrl).toBe("redis://cache.internal:6379/2");
    expect(config.rateLimitWhenRedisDown).toBe("closed");
    expect(config.loginLimits).toEqual([{ limit: 5, window: "30s" }]);
    expect(config.degradedCacheTtlMs).toBe(500);
    expect(loadConfig({ LATCHKEY_LOGIN_RATE_LIMIT: "off" }).loginLimits).toEqual([]);
  });

  it("refuses what it cannot use, naming the variable", () => {
    expect(rejects({ REDIS_URL: "cache.internal:6379" }).message).toMatch(/REDIS_URL/);
    expect(rejects({ LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN: "maybe" }).message).toMatch(/WHEN_REDIS_DOWN/);
    expect(rejects({ LATCHKEY_LOGIN_RATE_LIMIT: "10 per minute" }).message).toMatch(/LOGIN_RATE_LIMIT/);
    expect(rejects({ LATCHKEY_LOGIN_RATE_LIMIT: "10/2d" }).message).toMatch(/LOGIN_RATE_LIMIT/);
    expect(rejects({ LATCHKEY_CACHE_TTL_MS: "-1" }).message).toMatch(/CACHE_TTL/);
    expect(rejects({ LATCHKEY_CACHE_GRACE_MS: "forever" }).message).toMatch(/CACHE_GRACE_MS/);
    expect(rejects({ LATCHKEY_REDIS_TIMEOUT_MS: "10" }).message).toMatch(
      /REDIS_TIMEOUT_MS must be an integer from 50/,
    );
  });
});

describe("DATABASE_URL and LOG_LEVEL", () => {
  it("takes postgres:// and postgresql:// URLs, a socket directory in ?host= included", () => {
    for (const url of [
      "postgres://u:p@db.internal:5432/latchkey",
      "postgresql://u@127.0.0.1/latchkey?sslmode=require",
      "postgres:///latchkey?host=/var/run/postgresql",
    ])
      expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it("refuses anything else, naming DATABASE_URL, without echoing a password", () => {
    for (const bad of ["localhost/db", "localhost:5432/db", "mysql://u@h/db", "db.internal"])
      expect(rejects({ DATABASE_URL: bad }).message).toMatch(/^DATABASE_URL must be a postgres:\/\//);
    expect(rejects({ DATABASE_URL: "http://admin:s3cret-pass@h/db" }).message).not.toContain("s3cret-pass");
  });

  it("takes exactly pino's levels and silent, listing them when refused", async () => {
    const pino = (await import("pino")).default;
    expect([...LOG_LEVELS].sort()).toEqual([...Object.keys(pino.levels.values), "silent"].sort());
    for (const level of LOG_LEVELS) expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
    const message = rejects({ LOG_LEVEL: "verbose" }).message;
    expect(message).toBe(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "verbose")`);
  });
});

describe("mail settings", () => {
  it("sends no mail by default, with links based on the listen address", () => {
    const config = loadConfig({ PORT: "9090" });
    expect(config.smtpUrl).toBeUndefined();
    expect(config.smtpFrom).toBeUndefined();
    expect(config.publicUrl).toBe("http://127.0.0.1:9090");
    expect(loadConfig({ HOST: "10.0.0.5" }).publicUrl).toBe("http://10.0.0.5:8080");
    expect(loadConfig({ HOST: "::1" }).publicUrl).toBe("http://[::1]:8080");
  });

  it("takes smtp:// and smtps:// with a from-address and a public URL (its trailing / dropped)", () => {
    const config = loadConfig({
      SMTP_URL: "smtps://user:pw@mail.example.com:465",
      SMTP_FROM: "Latchkey <keys@example.com>",
      LATCHKEY_PUBLIC_URL: "https://keys.example.com/",
    });
    expect(config.smtpUrl).toBe("smtps://user:pw@mail.example.com:465");
    expect(config.smtpFrom).toBe("Latchkey <keys@example.com>");
    expect(config.publicUrl).toBe("https://keys.example.com");
  });

  it("stops start-up on a bad SMTP_URL without echoing its password", () => {
    const err = rejects({ SMTP_URL: "http://user:hunter2secret@mail.example.com" });
    expect(err.message).toMatch(/SMTP_URL must be an smtp:\/\/ or smtps:\/\//);
    expect(err.message).not.toContain("hunter2secret");
    expect(rejects({ SMTP_URL: "not a url" }).message).toMatch(/SMTP_URL/);
  });

  it("requires SMTP_FROM and LATCHKEY_PUBLIC_URL with SMTP_URL, and checks them", () => {
    const smtp = "smtp://mail.example.com:587";
    expect(rejects({ SMTP_URL: smtp, LATCHKEY_PUBLIC_URL: "https://k.example" }).message).toMatch(
      /SMTP_FROM is required/,
    );
    expect(rejects({ SMTP_URL: smtp, SMTP_FROM: "keys@example.com" }).message).toMatch(
      /LATCHKEY_PUBLIC_URL is required/,
    );
    expect(rejects({ SMTP_FROM: "no address here" }).message).toMatch(/SMTP_FROM must be/);
    expect(rejects({ SMTP_FROM: "a@b.example\r\nBcc: x@y.example" }).message).toMatch(/SMTP_FROM must be/);
    expect(rejects({ LATCHKEY_PUBLIC_URL: "ftp://k.example" }).message).toMatch(
      /LATCHKEY_PUBLIC_URL must be/,
    );
    expect(rejects({ LATCHKEY_PUBLIC_URL: "https://k.example/#x" }).message).toMatch(/LATCHKEY_PUBLIC_URL/);
  });
});
