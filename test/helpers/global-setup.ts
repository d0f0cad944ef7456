import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { migrateToLatest, openStore } from "../../src/store/store.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}

/**
 * Initialising a PGlite data dir takes seconds, loading a dump of one a fraction of that: build one
 * migrated template per run and let every test start its own embedded store from it.
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-test-"));
  const store = await openStore({ kind: "pglite" });
  await migrateToLatest(store.db);
  const dump = await (store.dump as () => Promise<Blob>)();
  const path = join(dir, "template.tar");
  writeFileSync(path, Buffer.from(await dump.arrayBuffer()));
  await store.close();
  project.provide("pgliteTemplate", path);
  return () => rmSync(dir, { recursive: true, force: true });
}
