import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

/**
 * The browser tests need the built console. `npm run build` (and CI) make it; a bare `npm test` on a fresh
 * checkout builds it here once rather than failing every browser test.
 */
export default function setup() {
  if (existsSync(resolve(ROOT, "web/dist/index.html"))) return;
  execFileSync(
    process.execPath,
    [resolve(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", "web/vite.config.ts"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
}
