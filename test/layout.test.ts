import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// The layout shows the design: data flows one way (http → services → core + store, + cluster), and no
// module reaches back up, not even for a type. This walks src/'s static imports of its own files.

const SRC = resolve(import.meta.dirname, "../src");

type Layer = "core" | "store" | "cluster" | "services" | "config" | "runtime" | "http" | "server" | "cli";

/** What each layer may import besides itself. */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  core: [],
  store: ["core"],
  cluster: ["core"],
  services: ["core", "store", "cluster"],
  config: ["core"],
  runtime: ["core", "store", "cluster", "services", "config"],
  http: ["core", "store", "cluster", "services", "config", "runtime"],
  // The entry points: only bin/latchkey.js imports the CLI, and only the CLI starts the server.
  server: ["core", "store", "cluster", "services", "config", "runtime", "http"],
  cli: ["core", "store", "cluster", "services", "config", "runtime", "http", "server"],
};

/** A file's layer: its folder under src/, or for the few top-level files, its name. */
function layerOf(file: string): Layer | undefined {
  const path = relative(SRC, file);
  const top = path.includes("/") ? path.slice(0, path.indexOf("/")) : path.replace(/\.ts$/, "");
  return top in MAY_IMPORT ? (top as Layer) : undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** `import … from "./x.ts"`, `import type …`, `export … from` and bare `import "./x.ts"`, comments aside. */
const IMPORT = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^;'"]*?\s+from\s+)?["']([^"']+)["']/gm;

function relativeImports(file: string): string[] {
  const text = readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  return [...text.matchAll(IMPORT)]
    .map((m) => m[1] as string)
    .filter((spec) => spec.startsWith("."))
    .map((spec) => resolve(dirname(file), spec));
}

const files = sourceFiles(SRC);
const imports = new Map(files.map((file) => [file, relativeImports(file)]));
/** Module to module: what a JSON or asset import points at is data, not code that could import back. */
const graph = new Map([...imports].map(([file, to]) => [file, to.filter((path) => path.endsWith(".ts"))]));
const name = (file: string) => relative(SRC, file);

/** Every import circle, each once: the strongly connected components with more than one file (Tarjan). */
function circles(): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (file: string) => {
    index.set(file, index.size);
    low.set(file, index.get(file) as number);
    stack.push(file);
    onStack.add(file);
    for (const to of graph.get(file) ?? []) {
      if (!graph.has(to)) continue;
      if (!index.has(to)) {
        visit(to);
        low.set(file, Math.min(low.get(file) as number, low.get(to) as number));
      } else if (onStack.has(to)) {
        low.set(file, Math.min(low.get(file) as number, index.get(to) as number));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(name(member));
      } while (member !== file);
      const selfImport = graph.get(file)?.includes(file) ?? false;
      if (component.length > 1 || selfImport) found.push(component.sort());
    }
  };
  for (const file of files) if (!index.has(file)) visit(file);
  return found;
}

describe("src/ layout", () => {
  it("finds the modules it checks", () => {
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get(join(SRC, "http/app.ts"))).toContain(join(SRC, "http/routes/index.ts"));
  });

  it("gives every file a layer", () => {
    expect(files.filter((file) => layerOf(file) === undefined).map(name)).toEqual([]);
  });

  it("has no import circles, type-only imports included", () => {
    expect(circles()).toEqual([]);
  });

  it("imports only downwards: core nothing, store core, services core/store/cluster, cli from nobody", () => {
    const backwards: string[] = [];
    for (const [file, targets] of graph) {
      const from = layerOf(file);
      if (from === undefined) continue;
      for (const to of targets) {
        const target = layerOf(to);
        if (target !== undefined && from !== target && !MAY_IMPORT[from].includes(target))
          backwards.push(`${name(file)} (${from}) → ${name(to)} (${target})`);
      }
    }
    expect(backwards).toEqual([]);
  });

  it("imports nothing from outside src/ (tests, bench and the console build import src, not the reverse)", () => {
    const outside = [...imports].flatMap(([file, targets]) =>
      targets.filter((to) => !to.startsWith(`${SRC}/`)).map((to) => `${name(file)} → ${name(to)}`),
    );
    expect(outside).toEqual([]);
  });
});
