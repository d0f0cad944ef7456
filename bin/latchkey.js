#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx latchkey` works from a plain checkout.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
