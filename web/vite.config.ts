import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into web/dist and served by the API server itself (src/http/console.ts); `vite` alone is a dev
// server that forwards API calls to a local `npm start`.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { "/v1": "http://127.0.0.1:8080" },
    // The console shares pure domain code (IP rules, catalog presets, error codes) with the server.
    fs: { allow: [".."] },
  },
});
