import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateKeyBody } from "../../src/http/routes/create-key.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const PATHS = [
  "/v1/keys",
  "/v1/keys/{id}",
  "/v1/keys/{id}/rotate",
  "/v1/keys/{id}/expiry",
  "/v1/credentials",
  "/v1/credentials/{id}",
  "/v1/credentials/{id}/password",
  "/v1/verify",
  "/v1/catalog",
  "/v1/admin/companies",
  "/v1/admin/verify-keys",
  "/healthz",
];
const METHODS = ["get", "post", "put", "patch", "delete"] as const;

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
  components?: { securitySchemes?: Record<string, unknown> };
}
interface Schema {
  type?: string;
  additionalProperties?: boolean;
  required?: string[];
  properties?: Record<string, unknown>;
}

describe("GET /openapi.json", () => {
  let h: Harness;
  let doc: OpenApiDoc;
  let company: Company;
  beforeAll(async () => {
    h = await createHarness("pglite");
    company = await h.createCompany();
    const res = await h.call("GET", "/openapi.json");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    doc = res.json();
  });
  afterAll(() => h.close());

  it("is an OpenAPI 3.1.0 document that needs no key", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.title).toBe("Latchkey");
    expect(Object.keys(doc.components?.securitySchemes ?? {})).toEqual(
      expect.arrayContaining(["apiKey", "bearer", "basic"]),
    );
  });

  it.each(PATHS)("documents %s", (path) => {
    expect(Object.keys(doc.paths)).toContain(path);
  });

  it("documents only routes the app serves", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        if (!ops[method]) continue;
        const url = path.replace(/\{(\w+)\}/g, ":$1");
        expect(h.app.hasRoute({ method: method.toUpperCase() as "GET", url }), `${method} ${path}`).toBe(
          true,
        );
      }
    }
  });

  it("describes POST /v1/keys with the schema that validates it", () => {
    const schema = doc.paths["/v1/keys"]?.post?.requestBody?.content["application/json"]?.schema;
    expect(schema).toBeDefined();
    expect(schema?.type).toBe("object");
    expect(schema?.additionalProperties).toBe(false);
    expect([...(schema?.required ?? [])].sort()).toEqual(["environment", "name"]);
    expect(Object.keys(schema?.properties ?? {}).sort()).toEqual(
      Object.keys(CreateKeyBody.properties).sort(),
    );
  });

  it("and the server enforces what the document says", async () => {
    const extra = await h.call("POST", "/v1/keys", {
      key: company.key,
      json: { name: "k", environment: "live", surprise: true },
    });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().error.code).toBe("VALIDATION_ERROR");
    const missing = await h.call("POST", "/v1/keys", { key: company.key, json: { name: "k" } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.code).toBe("VALIDATION_ERROR");
    const ok = await h.call("POST", "/v1/keys", {
      key: company.key,
      json: { name: "k", environment: "live" },
    });
    expect(ok.statusCode).toBe(201);
  });

  it("gives every documented route that takes a body an object schema", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        const body = ops[method]?.requestBody?.content["application/json"]?.schema;
        // GitHub's secret scanning contract posts a bare array; it is GitHub's shape, not ours.
        const shape = `${method} ${path}` === "post /v1/leaks/github" ? "array" : "object";
        if (body) expect(body.type, `${method} ${path}`).toBe(shape);
      }
    }
  });
});
