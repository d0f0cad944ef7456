import { readFileSync, statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { parseScanningKeys, type ScanningKey } from "../core/secret-scanning.ts";

/** Reads GitHub's secret scanning public keys document; throws with the path and what is wrong. */
export function readScanningKeys(path: string): ScanningKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`cannot read ${path} as JSON: ${(err as Error).message}`);
  }
  try {
    return parseScanningKeys(doc);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/**
 * The operator's copy of GitHub's public keys, read again whenever the file changes (its size, mtime or
 * inode), so a refresh needs no restart: GitHub rotates its keys now and then, and a node that cannot
 * reach GitHub is given the new document by the operator. A stat per signed request is cheap at the
 * rate GitHub reports. A file that goes bad keeps the last good keys and says so once.
 */
export class ScanningKeyFile {
  private keys: ScanningKey[];
  private seen: string;
  private warned = false;

  constructor(
    readonly path: string,
    private readonly warn: (message: string) => void = () => {},
  ) {
    this.keys = readScanningKeys(path);
    this.seen = signature(statSync(path));
  }

  async current(): Promise<readonly ScanningKey[]> {
    try {
      const now = signature(await stat(this.path));
      if (now !== this.seen) {
        this.keys = readScanningKeys(this.path);
        this.seen = now;
        this.warned = false;
      }
    } catch (err) {
      if (!this.warned) this.warn(`secret scanning keys kept as they were: ${(err as Error).message}`);
      this.warned = true;
    }
    return this.keys;
  }
}

function signature(s: { size: number; mtimeMs: number; ino: number }): string {
  return `${s.size}:${s.mtimeMs}:${s.ino}`;
}
