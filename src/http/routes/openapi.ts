import type { App } from "../app.ts";

export default function openapi(app: App) {
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
