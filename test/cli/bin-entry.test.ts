import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/cli.ts";

/**
 * bin/latchkey.js's rule: the compiled CLI in dist/ when it was built after the last change in src/,
 * the sources through tsx otherwise (and with LATCHKEY_FROM_SOURCE=1). Checked on a checkout of its
 * own whose two entry points only say which one ran.
 */

const root = mkdtempSync(join(tmpdir(), "latchkey-bin-"));
mkdirSync(join(root, "bin"));
mkdirSync(join(root, "src/cli"), { recursive: true });
mkdirSync(join(root, "dist/cli"), { recursive: true });
copyFileSync(join(ROOT, "bin/latchkey.js"), join(root, "bin/latchkey.js"));
symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
writeFileSync(join(root, "package.json"), '{ "type": "module" }\n');
writeFileSync(join(root, "src/cli/main.ts"), 'const from: string = "source";\nconsole.log(from);\n');
writeFileSync(join(root, "dist/cli/main.js"), 'console.log("compiled");\n');
writeFileSync(join(root, "dist/.tsbuildinfo"), "{}");

afterAll(() => rmSync(root, { recursive: true, force: true }));

const at = (path: string, seconds: number) => utimesSync(join(root, path), seconds, seconds);
const latchkey = (env: Record<string, string> = {}) =>
  execFileSync(process.execPath, [join(root, "bin/latchkey.js")], {
    env: { ...process.env, LATCHKEY_FROM_SOURCE: "", ...env },
    encoding: "utf8",
  }).trim();

describe("bin/latchkey.js", () => {
  it("runs dist/ when it was built after every file in src/", () => {
    at("src/cli/main.ts", 1_000_000);
    at("dist/.tsbuildinfo", 2_000_000);
    expect(latchkey()).toBe("compiled");
  });

  it("runs the sources through tsx when a file in src/ is newer than the build", () => {
    at("dist/.tsbuildinfo", 1_000_000);
    at("src/cli/main.ts", 2_000_000);
    expect(latchkey()).toBe("source");
  });

  it("runs the sources when there is no build, or when LATCHKEY_FROM_SOURCE=1", () => {
    at("src/cli/main.ts", 1_000_000);
    at("dist/.tsbuildinfo", 2_000_000);
    expect(latchkey({ LATCHKEY_FROM_SOURCE: "1" })).toBe("source");
    rmSync(join(root, "dist/.tsbuildinfo"));
    expect(latchkey()).toBe("source");
  });
});
