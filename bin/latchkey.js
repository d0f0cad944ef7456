#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build:server` and by `npm start`) when it is at least as
// new as every file under src/; otherwise the TypeScript sources through tsx, so `npx latchkey` works
// from a plain checkout and never runs a stale build. LATCHKEY_FROM_SOURCE=1 always runs the sources.
import { readdirSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);

/** The newest modification time of a file under `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.name + (entry.isDirectory() ? "/" : ""), dir);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** Whether dist/ was built after the last change to src/ (tsc writes its build info last). */
function builtFresh() {
  try {
    return statSync(new URL("dist/.tsbuildinfo", root)).mtimeMs >= newest(new URL("src/", root));
  } catch {
    return false;
  }
}

if (process.env.LATCHKEY_FROM_SOURCE !== "1" && builtFresh()) {
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}
