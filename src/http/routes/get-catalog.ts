import { PRESETS } from "../../core/catalog.ts";
import { CatalogDoc, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** The catalog is public: it names what the platform's API can do, never anyone's data. */
export default function getCatalog(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/catalog",
    {
      schema: {
        tags: ["catalog"],
        summary: "The permission catalog: groups, entities, actions, presets and roles",
        security: [],
        response: {
          200: Ok(CatalogDoc),
        },
      },
    },
    async () => ({
      success: true as const,
      data: {
        groups: services.catalog.groups,
        roles: services.catalog.roles,
        permissions: [...services.catalog.permissions],
        presets: [...PRESETS],
        management_routes: services.catalog.managementRoutes,
        unmapped_routes: services.catalog.unmappedRoutes,
      },
    }),
  );
}
