/**
 * `GET /openapi.json` and `GET /docs`: the OpenAPI 3.1 document, built from the routes themselves (every handler
 * that `input()` or `describeRoute()` made describes its route; method and path come from `app.routes`), and a
 * reference UI (Swagger UI) served by the service from its npm package, no CDN.
 */
import { Hono } from "hono";
import swaggerPackage from "swagger-ui-dist/package.json" with { type: "json" };
import { z } from "zod";
import { fieldInfo, type FieldRule, jsonSchemaOf } from "../domain/fields.ts";
import { errorReply } from "../domain/replies.ts";
import { requireWrite } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { describeRoute, descriptionOf, type RouteDoc } from "./route_doc.ts";

/** Version of the API as the document states it. */
export const API_VERSION = "1.0.0";

/** A route as Hono lists it in `app.routes`. */
export interface RouteEntry {
  method: string;
  path: string;
  handler: object;
}

type Json = Record<string, unknown>;

/** What every status of an error reply means. */
const STATUS_TEXT: Record<number, string> = {
  400: "Bad input: wrong type, unknown parameter, a get-only parameter in the body, value too long, ...",
  401: "No API key, an unknown one, or a revoked one.",
  403: "A read-only key on a writing endpoint.",
  404: "The customer, card, group or program named does not exist.",
  405: "The endpoint does not take this method; `Allow` lists those it takes.",
  409: "A unique value is taken, or the change cannot be applied to the current state; nothing was changed.",
  413: "The request body is over MAX_BODY_BYTES.",
  422: "An idempotency key reused with different parameters.",
  429: "Too many requests for this key; retry after `Retry-After` seconds.",
  500: "A bug: logged with its stack, answered `Internal error`.",
  503: "The store does not answer.",
};

/** Error statuses every route behind an API key can answer. */
const API_ERRORS = [400, 401, 404, 405, 413, 429, 500];
/** Error statuses of routes that need a write key. */
const WRITE_ERRORS = [403, 409];

const JSON_TYPE = "application/json";
const XML_TYPE = "application/xml";
const BODY_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data", "application/json"];

const OVERVIEW = `A loyalty and customer-data service: customers, discount cards, bonus balances and their directories.

**Parameters.** Every endpoint reads its parameters from the query string or from a body sent as
\`application/x-www-form-urlencoded\`, \`multipart/form-data\` or \`application/json\` (a flat object; numbers and
booleans are taken as their text, \`null\` as empty). On a POST, the body parameters listed may equally be sent in the
query string. Parameters marked **get only** are read from the query string alone: sent in a body they are refused
(400). Text is trimmed; a field sent empty clears it, a lookup sent empty is refused. A parameter given twice, or one the endpoint does not know, is refused by name (400 \`Unknown parameter "x"\`).

**Global parameters.** \`format=json|xml\` (query string only) chooses the reply format. The API key comes as the
\`apikey\` parameter (query or body), an \`X-API-Key\` header or \`Authorization: Bearer <key>\`; two different keys
are refused.

**Replies** are JSON, or XML with \`format=xml\`: the same tree under \`<root>\`, one element per line, empty values
and empty lists as \`<name/>\`, list items named in the singular (\`<customers><customer>...\`). Every reply carries
\`success\` (1 or 0); a refused request answers \`{"success":0,"info":"...","field":"..."}\` with its HTTP status and
never changes anything.`;

function pascal(text: string): string {
  return text.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("");
}

/** Hono's `/a/:b` as OpenAPI's `/a/{b}`, with the names of its path parameters. */
function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const out = path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, (_m, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path: out, params };
}

/** One parameter object; null for a refused parameter, which is not documented as taken. */
function parameter(name: string, rule: FieldRule, options: { getOnly: boolean; required: boolean }): Json | null {
  const { json, refused } = fieldInfo(rule);
  if (refused) return null;
  const { description, examples, example, ...schema } = json;
  const parts = [options.getOnly ? "**Get only.**" : "", typeof description === "string" ? description : ""];
  const out: Json = { name, in: "query", required: options.required, schema };
  const text = parts.filter(Boolean).join(" ");
  if (text) out.description = text;
  // `examples` of a transforming schema are dropped by zod on its input side; `example` (OpenAPI's word) is kept.
  const sample = Array.isArray(examples) && examples.length > 0 ? examples[0] : example;
  if (sample !== undefined) out.example = sample;
  if (options.getOnly) out["x-get-only"] = true;
  return out;
}

/** Names of the refused parameters of a map, for the operation's description. */
function refusedNames(rules: Record<string, FieldRule>): string[] {
  return Object.entries(rules).filter(([, rule]) => fieldInfo(rule).refused).map(([name]) => name);
}

/** Builds the OpenAPI 3.1 document of every described route. */
export function openApiDocument(routes: readonly RouteEntry[], options: { version?: string } = {}): Json {
  const schemas: Record<string, Json> = { Error: jsonSchemaOf(errorReply) };
  const responses: Record<string, Json> = {};
  const paths: Record<string, Record<string, Json>> = {};

  const errorResponse = (status: number): Json => {
    const name = `Error${status}`;
    if (!responses[name]) {
      const ref = { $ref: "#/components/schemas/Error" };
      const response: Json = {
        description: STATUS_TEXT[status] ?? "Refused.",
        content: { [JSON_TYPE]: { schema: ref }, [XML_TYPE]: { schema: ref } },
      };
      if (status === 405) response.headers = { Allow: { schema: { type: "string" }, description: "Methods taken." } };
      if (status === 429) {
        response.headers = { "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait." } };
      }
      responses[name] = response;
    }
    return { $ref: `#/components/responses/${name}` };
  };

  const replySchema = (reply: z.ZodType, fallbackName: string): Json => {
    const json = jsonSchemaOf(reply);
    let name = typeof json.title === "string" ? json.title : fallbackName;
    const same = (other: Json | undefined) => other !== undefined && JSON.stringify(other) === JSON.stringify(json);
    for (let n = 2; schemas[name] && !same(schemas[name]); n++) name = `${json.title ?? fallbackName}${n}`;
    schemas[name] = json;
    return { $ref: `#/components/schemas/${name}` };
  };

  // Every handler of one method and path, in registration order.
  const byRoute = new Map<string, { method: string; path: string; handlers: object[] }>();
  for (const route of routes) {
    if (route.method === "ALL") continue; // middleware
    const key = `${route.method} ${route.path}`;
    const entry = byRoute.get(key) ?? { method: route.method, path: route.path, handlers: [] };
    entry.handlers.push(route.handler);
    byRoute.set(key, entry);
  }

  for (const { method, path, handlers } of byRoute.values()) {
    const descriptions = handlers.map(descriptionOf).filter((d) => d !== undefined);
    if (descriptions.length === 0) continue;
    const doc: RouteDoc = Object.assign({}, ...descriptions.map((d) => d.doc));
    if (doc.hidden) continue;
    const input = descriptions.find((d) => d.input)?.input ?? { query: {}, fields: {} };
    const write = handlers.includes(requireWrite);
    const { path: oaPath, params: pathParams } = openApiPath(path);
    const verb = method.toLowerCase();
    const operationId = `${verb}${pascal(path)}`;
    const required = new Set(doc.required ?? []);

    const parameters: Json[] = pathParams.map((name) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    for (const [name, rule] of Object.entries(input.query)) {
      const p = parameter(name, rule, { getOnly: doc.body === undefined, required: required.has(name) });
      if (p) parameters.push(p);
    }
    const bodyTaken = method === "POST" || method === "PUT" || method === "PATCH";
    const bodyProps: Record<string, Json> = {};
    for (const [name, rule] of Object.entries(input.fields)) {
      const p = parameter(name, rule, { getOnly: false, required: required.has(name) });
      if (!p) continue;
      if (!bodyTaken) parameters.push(p);
      else {
        const { schema, description, example } = p as { schema: Json; description?: string; example?: unknown };
        bodyProps[name] = {
          ...schema,
          ...(description ? { description } : {}),
          ...(example !== undefined ? { examples: [example] } : {}),
        };
      }
    }
    if (!doc.public) parameters.push({ $ref: "#/components/parameters/format" });

    const media = doc.media ?? [JSON_TYPE, XML_TYPE];
    const ok: Json = { description: "Done." };
    if (media.length > 0) {
      const schema = doc.reply ? replySchema(doc.reply, `${pascal(operationId)}Reply`) : {};
      ok.content = Object.fromEntries(media.map((m) => [m, { schema }]));
    }
    const statuses = new Set([
      ...(doc.public ? [] : API_ERRORS),
      ...(write ? WRITE_ERRORS : []),
      ...(doc.errors ?? []),
    ]);
    const operation: Json = {
      operationId,
      tags: doc.tags ?? [path.split("/").filter(Boolean)[path.startsWith("/api/") ? 1 : 0] ?? "service"],
      summary: doc.summary ?? `${method} ${path}`,
      parameters,
      responses: {
        "200": ok,
        ...Object.fromEntries([...statuses].sort((a, b) => a - b).map((s) => [String(s), errorResponse(s)])),
      },
    };
    const notes = [doc.description ?? ""];
    const refused = [...refusedNames(input.query), ...refusedNames(input.fields)];
    if (refused.length > 0) {
      notes.push(`Refused if sent (set by the service or not for this endpoint): ${refused.join(", ")}.`);
    }
    if (write) notes.push("Needs a write key.");
    const description = notes.filter(Boolean).join("\n\n");
    if (description) operation.description = description;
    if (doc.public) operation.security = [];
    if (bodyTaken && Object.keys(bodyProps).length > 0) {
      const properties = doc.public ? bodyProps : {
        ...bodyProps,
        apikey: { type: "string", description: "The API key, when not sent in the query string or a header." },
      };
      const bodyRequired = Object.keys(bodyProps).filter((n) => required.has(n));
      const schema: Json = { type: "object", properties, additionalProperties: false };
      if (bodyRequired.length > 0) schema.required = bodyRequired;
      operation.requestBody = {
        description: "Parameters in a body; each may instead be sent in the query string (never in both).",
        content: Object.fromEntries(BODY_TYPES.map((t) => [t, { schema }])),
      };
    }
    if (doc.body) {
      const { description: bodyText, media: bodyMedia, schema: bodySchema } = doc.body;
      operation.requestBody = {
        description: bodyText,
        required: true,
        content: Object.fromEntries(bodyMedia.map((m) => [m, { schema: bodySchema }])),
      };
    }
    (paths[oaPath] ??= {})[verb] = operation;
  }

  return {
    openapi: "3.1.0",
    info: { title: "Loyalty customer API", version: options.version ?? API_VERSION, description: OVERVIEW },
    tags: [],
    paths,
    components: {
      schemas,
      responses,
      parameters: {
        format: {
          name: "format",
          in: "query",
          required: false,
          description: "Reply format (query string only).",
          schema: { type: "string", enum: ["json", "xml"], default: "json" },
        },
      },
      securitySchemes: {
        apikey: {
          type: "apiKey",
          in: "query",
          name: "apikey",
          description: "The API key as a parameter: in the query string or in the body.",
        },
        apiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key" },
        bearer: { type: "http", scheme: "bearer", description: "`Authorization: Bearer <key>`." },
      },
    },
    security: [{ apikey: [] }, { apiKeyHeader: [] }, { bearer: [] }],
  };
}

/** Where the reference UI's files are served; the package version in the path lets them be cached for good. */
const ASSET_BASE = `/docs/${swaggerPackage.version}`;
/**
 * The UI's files, imported as text from the npm package (so they are part of the module graph, on Deno Deploy too)
 * on first use only: they take about 6 MB of heap that a service nobody browses the docs of need not hold.
 */
const ASSETS: Record<string, { load: () => Promise<{ default: string }>; type: string }> = {
  "swagger-ui.css": {
    load: () => import("swagger-ui-dist/swagger-ui.css", { with: { type: "text" } }),
    type: "text/css; charset=utf-8",
  },
  "swagger-ui-bundle.js": {
    load: () => import("swagger-ui-dist/swagger-ui-bundle.js", { with: { type: "text" } }),
    type: "text/javascript; charset=utf-8",
  },
};

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Loyalty customer API</title>
<link rel="stylesheet" href="${ASSET_BASE}/swagger-ui.css">
</head>
<body>
<div id="ui"></div>
<script src="${ASSET_BASE}/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true, presets: [SwaggerUIBundle.presets.apis] });
</script>
</body>
</html>
`;

/**
 * The description routes: `/openapi.json` (built on first request from every route of `app`, so routes added
 * after this one is mounted are in it too), `/docs` and its assets. None needs a key.
 */
export function openApiRoutes(app: { routes: readonly RouteEntry[] }): Hono<AppEnv> {
  let document: string | null = null;
  return new Hono<AppEnv>()
    .get(
      "/openapi.json",
      describeRoute({
        summary: "This document: OpenAPI 3.1",
        public: true,
        media: [JSON_TYPE],
        reply: z.looseObject({ openapi: z.string() }).meta({ title: "OpenApiDocument" }),
        tags: ["service"],
      }),
      (c) => {
        document ??= JSON.stringify(openApiDocument(app.routes));
        return c.body(document, 200, {
          "content-type": "application/json; charset=UTF-8",
          "access-control-allow-origin": "*",
        });
      },
    )
    .get(
      "/docs",
      describeRoute({
        summary: "The API reference (Swagger UI)",
        public: true,
        media: ["text/html"],
        tags: ["service"],
      }),
      (c) => c.html(DOCS_HTML, 200, { "cache-control": "no-cache" }),
    )
    .get(
      "/docs/:version/:asset",
      describeRoute({
        summary: "Files of the API reference",
        public: true,
        media: ["text/css", "text/javascript"],
        errors: [404],
        tags: ["service"],
      }),
      async (c) => {
        const asset = ASSETS[c.req.param("asset")];
        if (c.req.param("version") !== swaggerPackage.version || !asset) return c.notFound();
        return c.body((await asset.load()).default, 200, {
          "content-type": asset.type,
          "cache-control": "public, max-age=31536000, immutable",
        });
      },
    );
}
