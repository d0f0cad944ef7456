import type { App } from "../types.ts";

export default function openapi(app: App) {
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
