import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import type { z } from "zod";
import {
  bonusChangeReply,
  bonusHistoryReply,
  cardDeleteReply,
  cardWriteReply,
  customerListReply,
  customerWriteReply,
  directoryListReply,
  directoryWriteReply,
  errorReply,
} from "../domain/replies.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS } from "../domain/program_settings.ts";
import { openApiDocument, type RouteEntry } from "../routes/openapi.ts";
import { describeRoute, descriptionOf } from "../routes/route_doc.ts";
import { type CallOptions, randomCustomer, type Reply, request, world } from "./helpers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Hono's `/a/:b` as OpenAPI's `/a/{b}`. */
function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
}

/** The routes of an app (middleware and routes marked hidden left out) that the document has no operation for. */
function undocumented(routes: readonly RouteEntry[], doc: Json): string[] {
  return routes
    .filter((r) => r.method !== "ALL" && !descriptionOf(r.handler)?.doc.hidden)
    .filter((r) => doc.paths?.[openApiPath(r.path)]?.[r.method.toLowerCase()] === undefined)
    .map((r) => `${r.method} ${r.path}`);
}

/** Follows every `$ref` of a document and returns those that lead nowhere. */
function danglingRefs(doc: Json): string[] {
  const bad: string[] = [];
  const walk = (node: Json) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    if (typeof node.$ref === "string") {
      let target: Json = doc;
      for (const part of node.$ref.replace(/^#\//, "").split("/")) target = target?.[part];
      if (target === undefined) bad.push(node.$ref);
    }
    Object.values(node).forEach(walk);
  };
  walk(doc);
  return bad;
}

/** Documented parameters of one operation: where each goes, its schema and its example. */
interface DocParam {
  name: string;
  where: "query" | "body";
  getOnly: boolean;
  schema: Json;
  example: unknown;
}

function paramsOf(operation: Json): DocParam[] {
  const out: DocParam[] = [];
  for (const p of operation.parameters ?? []) {
    if (p.$ref || p.in !== "query") continue;
    out.push({ name: p.name, where: "query", getOnly: p["x-get-only"] === true, schema: p.schema, example: p.example });
  }
  const body = operation.requestBody?.content?.["application/x-www-form-urlencoded"]?.schema;
  for (const [name, schema] of Object.entries<Json>(body?.properties ?? {})) {
    if (name === "apikey") continue;
    out.push({ name, where: "body", getOnly: false, schema, example: schema.examples?.[0] });
  }
  return out;
}

/** Values the schema says are refused: past a length, below or above a range, outside an enum, not a boolean. */
function violations(schema: Json): string[] {
  const out: string[] = [];
  if (typeof schema.maxLength === "number") out.push("a".repeat(schema.maxLength + 1));
  if (schema.minLength === 1) out.push("");
  if (typeof schema.minimum === "number") out.push(String(schema.minimum - 1));
  if (typeof schema.maximum === "number" && schema.maximum < Number.MAX_SAFE_INTEGER) {
    out.push(String(schema.maximum + 1));
  }
  if (Array.isArray(schema.enum)) out.push("ZZZ");
  if (schema.type === "boolean") out.push("maybe");
  if (schema.type === "integer") out.push("1.5");
  return out;
}

/** Sends one parameter where the document says it goes, with the key in the query string. */
function send(app: { request: (url: string, init: RequestInit) => Response | Promise<Response> }, options: {
  method: string;
  path: string;
  key: string;
  param: { name: string; where: "query" | "body" };
  value: string;
}): Promise<Reply> {
  const { method, path, key, param, value } = options;
  const call: CallOptions = { key };
  if (param.where === "body") call.form = { [param.name]: value };
  else call.query = { [param.name]: value };
  return request(app, method, path, call);
}

Deno.test("GET /openapi.json: a valid OpenAPI 3.1 document of every route, no key needed", async (t) => {
  await using w = await world();
  const res = await w.app.request("/openapi.json");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const doc: Json = await res.json();

  await t.step("valid against the OpenAPI 3.1 schema, every $ref resolves", async () => {
    assert.equal(doc.openapi, "3.1.0");
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1));
    assert.deepEqual(danglingRefs(doc), []);
  });

  await t.step("every operation has typed parameters, the error envelope and both reply formats", () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, op] of Object.entries<Json>(item)) {
        assert.ok(!ids.has(op.operationId), `${op.operationId} is unique`);
        ids.add(op.operationId);
        assert.ok(op.summary, `${method} ${path} has a summary`);
        assert.ok(op.responses["200"], `${method} ${path} answers 200`);
        for (const p of paramsOf(op)) {
          assert.ok(p.schema?.type, `${method} ${path} ${p.name} has a typed schema`);
          assert.notEqual(p.example, undefined, `${method} ${path} ${p.name} has an example`);
        }
        if (!path.startsWith("/api/")) continue;
        for (const status of ["400", "401", "404", "405", "413", "429", "500"]) {
          assert.ok(op.responses[status], `${method} ${path} documents ${status}`);
        }
        const content = op.responses["200"].content;
        assert.ok(content["application/json"]?.schema?.$ref, `${method} ${path} has a JSON reply schema`);
        assert.ok(content["application/xml"]?.schema?.$ref, `${method} ${path} has an XML reply schema`);
        assert.ok(op.parameters.some((p: Json) => p.$ref === "#/components/parameters/format"));
      }
    }
    const error = doc.components.responses.Error400.content["application/json"].schema.$ref;
    assert.equal(error, "#/components/schemas/Error");
    assert.deepEqual(doc.components.schemas.Error.required, ["success", "info"]);
    assert.ok(doc.components.responses.Error405.headers.Allow);
    // Writes need a write key: 403 is documented there and only there.
    assert.ok(doc.paths["/api/customer/update"].post.responses["403"]);
    assert.equal(doc.paths["/api/customer"].get.responses["403"], undefined);
    assert.ok(doc.paths["/api/customer/updateBonus"].post.responses["422"]);
  });

  await t.step("constraints of the field rules show: types, lengths, ranges, enums, where a parameter goes", () => {
    const update = doc.paths["/api/customer/update"];
    const query = (name: string) => update.get.parameters.find((p: Json) => p.name === name);
    assert.deepEqual(query("birth_day").schema, { type: "integer", minimum: 1, maximum: 31 });
    assert.equal(query("fname").schema.maxLength, 100);
    assert.deepEqual(query("gender").schema.enum, ["M", "F"]);
    assert.equal(query("id")["x-get-only"], true);
    assert.equal(query("created_date"), undefined, "refused parameters are not documented as taken");
    const body = update.post.requestBody.content;
    assert.deepEqual(Object.keys(body).sort(), [
      "application/json",
      "application/x-www-form-urlencoded",
      "multipart/form-data",
    ]);
    const props = body["application/json"].schema.properties;
    assert.equal(props.birth_day.maximum, 31);
    assert.equal(props.id, undefined, "get-only parameters are not in the body");
    assert.ok(update.post.parameters.some((p: Json) => p.name === "id" && p.in === "query"));
    const status = doc.paths["/api/customer/updateCard"].post.requestBody.content["application/json"].schema
      .properties.status;
    assert.deepEqual(status.enum, ["NEW", "ACTIVE", "BLOCKED"]);
  });

  await t.step("every route of the app is in the document", () => {
    assert.deepEqual(undocumented(w.app.routes, doc), []);
    for (
      const path of ["/api/customer", "/api/customer/update", "/api/customer/updateCard", "/api/customer/insertCard"]
    ) {
      assert.ok(doc.paths[path], path);
    }
  });

  await t.step("a route registered without input() or describeRoute() is caught", () => {
    const routes = [
      ...w.app.routes,
      { method: "POST", path: "/api/undocumented", handler: () => {} },
      { method: "PUT", path: "/api/customer", handler: describeRoute({ hidden: true }) },
    ];
    const doc = openApiDocument(routes) as Json;
    assert.deepEqual(undocumented(routes, doc), ["POST /api/undocumented"]);
    assert.equal(doc.paths["/api/customer"].put, undefined, "a hidden route is left out");
  });
});

Deno.test("every documented parameter is taken where the document puts it, and its constraints hold", async (t) => {
  await using w = await world();
  const doc: Json = await (await w.app.request("/openapi.json")).json();
  let taken = 0;
  let refused = 0;
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    if (!path.startsWith("/api/")) continue;
    for (const [verb, op] of Object.entries<Json>(item)) {
      const method = verb.toUpperCase();
      await t.step(`${method} ${path}`, async () => {
        for (const param of paramsOf(op)) {
          const ok = await send(w.app, { method, path, key: w.key, param, value: String(param.example) });
          assert.ok(
            !(ok.status === 400 && ok.body.field === param.name),
            `${param.name}=${param.example} is taken: ${ok.status} ${ok.text}`,
          );
          assert.ok(ok.status < 500, `${param.name}: ${ok.status} ${ok.text}`);
          taken++;
          for (const value of violations(param.schema)) {
            const bad = await send(w.app, { method, path, key: w.key, param, value });
            assert.equal(bad.status, 400, `${param.name}="${value.slice(0, 20)}" is refused: ${bad.text}`);
            assert.equal(bad.body.field, param.name, `${param.name}="${value.slice(0, 20)}": ${bad.text}`);
            refused++;
          }
        }
      });
    }
  }
  assert.ok(taken >= 150 && refused >= 200, `${taken} examples taken, ${refused} violations refused`);
});

Deno.test("a documented get-only parameter sent in a body is refused", async () => {
  await using w = await world();
  const doc: Json = await (await w.app.request("/openapi.json")).json();
  let checked = 0;
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    const op = item.post;
    if (!op) continue;
    const bodyNames = new Set(paramsOf(op).filter((p) => p.where === "body").map((p) => p.name));
    for (const p of paramsOf(op).filter((p) => p.getOnly && !bodyNames.has(p.name))) {
      const r = await request(w.app, "POST", path, { key: w.key, form: { [p.name]: String(p.example) } });
      assert.equal(r.status, 400, `${path} ${p.name}`);
      assert.deepEqual(r.body, {
        success: 0,
        info: `Parameter "${p.name}" must be passed in the query string`,
        field: p.name,
      });
      checked++;
    }
  }
  assert.ok(checked >= 10, `${checked} get-only parameters checked`);
});

Deno.test("GET /docs: the reference UI, its files served by the service itself", async () => {
  await using w = await world();
  const res = await w.app.request("/docs");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  const html = await res.text();
  assert.ok(html.includes('"/openapi.json"'));
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(assets.length, 2, assets.join(", "));
  for (const asset of assets) {
    assert.ok(asset.startsWith("/"), `${asset} is served here, not by a CDN`);
    const r = await w.app.request(asset);
    assert.equal(r.status, 200, asset);
    assert.match(r.headers.get("cache-control") ?? "", /max-age=31536000/);
    assert.match(r.headers.get("content-type") ?? "", asset.endsWith(".css") ? /^text\/css/ : /^text\/javascript/);
    assert.ok((await r.text()).length > 10_000, asset);
  }
  const missing = await w.app.request(assets[0]!.replace(/[^/]+$/, "nothing.js"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("real replies match their documented schemas", async (t) => {
  await using w = await world();
  const check = (schema: z.ZodType, r: Reply, status = 200) => {
    assert.equal(r.status, status, r.text);
    const result = schema.safeParse(r.body);
    assert.ok(result.success, `${r.text}\n${result.error?.message}`);
    return r.body;
  };
  const names = (type: string, idField: string, nameField: string, settings?: Record<string, unknown>) => ({
    type,
    idField,
    nameField,
    settings,
  });
  const group = names("group", "group_id", "group_name", GROUP_SETTINGS);
  const cardType = names("card_type", "type_id", "type_name");
  const program = names("bonus_program", "id", "name", PROGRAM_SETTINGS);

  await t.step("directories", async () => {
    check(
      directoryWriteReply(group),
      await w.call("POST", "/api/customergroup/update", { form: { group_name: "VIP" } }),
    );
    check(directoryWriteReply(cardType), await w.call("GET", "/api/cardtype/update", { query: { type_name: "Gold" } }));
    check(directoryWriteReply(program), await w.call("GET", "/api/bonusprogram/update", { query: { name: "Points" } }));
    check(directoryListReply(group), await w.call("GET", "/api/customergroup"));
    check(directoryListReply(cardType), await w.call("GET", "/api/cardtype"));
    check(directoryListReply(program), await w.call("GET", "/api/bonusprogram"));
  });

  await t.step("customers, cards and bonuses", async () => {
    const made = check(
      customerWriteReply,
      await w.call("POST", "/api/customer/update", {
        form: randomCustomer({ birth_day: 24, birth_month: 10, birth_year: 1992, group_name: "VIP", gender: "m" }),
      }),
    );
    check(customerWriteReply, await w.call("POST", "/api/customer/update", { form: randomCustomer() }));
    const card = check(
      cardWriteReply,
      await w.call("POST", "/api/customer/insertCard", {
        form: { customer_id: made.id, type_name: "Gold", medium: "PLASTIC", status: "BLOCKED" },
      }),
    );
    check(cardWriteReply, await w.call("GET", "/api/customer/insertCard", { query: { uid: "77" } }));
    check(
      bonusChangeReply,
      await w.call("POST", "/api/customer/updateBonus", {
        json: { customer_id: made.id, bonus_id: 1, amount: "12.5", comment: "hello" },
      }),
    );
    check(
      customerListReply,
      await w.call("GET", "/api/customer", { query: { id: made.id, cards: 1, bonuses: 1 } }),
    );
    check(customerListReply, await w.call("GET", "/api/customer", { query: { page: 1, page_size: 1 } }));
    check(customerListReply, await w.call("GET", "/api/customer", { query: { cursor: "YTE", page_size: 1 } }));
    check(customerListReply, await w.call("GET", "/api/customer"));
    check(
      bonusHistoryReply,
      await w.call("GET", "/api/customer/bonusHistory", { query: { customer_id: made.id, bonus_id: 1 } }),
    );
    check(cardDeleteReply, await w.call("GET", "/api/customer/deleteCard", { query: { card_id: card.card_id } }));
  });

  await t.step("errors", async () => {
    check(errorReply, await w.call("GET", "/api/customer", { query: { fnmae: "x" } }), 400);
    check(errorReply, await w.call("GET", "/api/customer", { key: null }), 401);
    check(errorReply, await w.call("GET", "/api/customer/deleteCard", { query: { card_id: 999 } }), 404);
  });
});
