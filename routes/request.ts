import type { Context, MiddlewareHandler } from "hono";
import { type FieldRule, issueToError, paramSchema, type Parsed, type RawParams } from "../domain/fields.ts";
import { ValidationError } from "../domain/errors.ts";
import type { AppEnv, RawRequest } from "./context.ts";
import { registerDescription, type RouteDoc } from "./route_doc.ts";

/** Parameters every endpoint takes besides its own; they never reach the endpoint's schema. */
const GLOBAL_PARAMS = new Set(["format", "apikey"]);

function scalar(key: string, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) {
    // Beyond 2^53 a JSON number has already lost digits (12345678901234567890 reads as ...7000): refuse it.
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new ValidationError(key, `Invalid ${key}: the number is too large to be exact; send it as a string`);
    }
    return String(value);
  }
  if (typeof value === "boolean") return value ? "1" : "0";
  throw new ValidationError(key, `Invalid ${key}: must be a single text, number or boolean value`);
}

async function readBody(c: Context): Promise<Record<string, string>> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return {};
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const out: Record<string, string> = Object.create(null);
  if (type === "application/json" || type.endsWith("+json")) {
    const text = await c.req.text();
    if (text.trim() === "") return out;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new ValidationError("body", "Invalid body: malformed JSON");
    }
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new ValidationError("body", "Invalid body: a JSON object of parameters is expected");
    }
    for (const [k, v] of Object.entries(data)) out[k] = scalar(k, v);
    return out;
  }
  if (type === "application/x-www-form-urlencoded" || type === "multipart/form-data") {
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw new ValidationError("body", "Invalid body: malformed form data");
    }
    for (const [k, v] of form.entries()) {
      if (typeof v !== "string") throw new ValidationError(k, `Invalid ${k}: files are not accepted`);
      if (k in out) throw new ValidationError(k, `Parameter "${k}" is given more than once`);
      out[k] = v;
    }
    return out;
  }
  const text = await c.req.text();
  if (text.length === 0) return out;
  throw new ValidationError(
    "body",
    `Invalid body: content type "${type}" is not accepted; use JSON, form or multipart`,
  );
}

/** The request's raw parameters, read (query and body) on first use and kept for the rest of the request. */
export async function rawOf<E extends AppEnv>(c: Context<E>): Promise<RawRequest> {
  const known = (c.var as Partial<AppEnv["Variables"]>).raw;
  if (known) return known;
  const raw = await readRaw(c);
  (c as unknown as Context<AppEnv>).set("raw", raw);
  return raw;
}

/** Reads query and body into plain string maps and takes out `format` and `apikey`. */
async function readRaw(c: Context): Promise<RawRequest> {
  const query: Record<string, string> = Object.create(null);
  for (const [k, values] of Object.entries(c.req.queries())) {
    if (values.length > 1) throw new ValidationError(k, `Parameter "${k}" is given more than once`);
    query[k] = values[0] ?? "";
  }
  const body = await readBody(c);
  let apikey = query.apikey;
  if (body.apikey !== undefined) {
    if (apikey !== undefined) throw new ValidationError("apikey", `Parameter "apikey" is given more than once`);
    apikey = body.apikey;
  }
  if (body.format !== undefined) {
    throw new ValidationError("format", 'Parameter "format" must be passed in the query string');
  }
  for (const k of GLOBAL_PARAMS) delete query[k];
  delete body.apikey;
  return { query, body, apikey };
}

/** Field rules by parameter name. */
type Parsers = Record<string, FieldRule>;

/** The validated parameters an `input()` middleware hands its handler. */
export interface InputEnv<Q extends Parsers, F extends Parsers> {
  Variables: { input: { query: Parsed<Q>; fields: Parsed<F> } };
}

/**
 * Validates an endpoint's parameters and hands the handler `c.var.input`. `query` parsers are for
 * parameters read from the query string alone ("get only": lookups and switches); `fields` parsers for
 * those that may come in the query string or the body. A query parameter goes to `query` when that
 * schema knows it, else to `fields`; a body parameter goes to `fields`, and one only `query` knows is
 * refused as "get only". Unknown parameters are refused by name. The rest of the spec (summary, reply, ...)
 * describes the route in the OpenAPI document, together with the rules' own constraints.
 */
export function input<Q extends Parsers, F extends Parsers>(
  spec: { query: Q; fields: F } & RouteDoc,
): MiddlewareHandler<AppEnv & InputEnv<Q, F>> {
  const { query: _q, fields: _f, ...doc } = spec;
  const querySchema = paramSchema(spec.query);
  const fieldSchema = paramSchema(spec.fields);
  const inFields = new Set(Object.keys(spec.fields));
  const middleware: MiddlewareHandler<AppEnv & InputEnv<Q, F>> = async (c, next) => {
    const raw = await rawOf(c);
    const query: RawParams = {};
    const fields: RawParams = {};
    for (const [k, v] of Object.entries(raw.query)) {
      if (Object.hasOwn(spec.query, k)) query[k] = v;
      else fields[k] = v;
    }
    for (const [k, v] of Object.entries(raw.body)) {
      if (!inFields.has(k) && Object.hasOwn(spec.query, k)) {
        throw new ValidationError(k, `Parameter "${k}" must be passed in the query string`);
      }
      if (k in fields) throw new ValidationError(k, `Parameter "${k}" is given more than once`);
      fields[k] = v;
    }
    const q = querySchema.safeParse(query);
    if (!q.success) throw issueToError(q.error);
    const f = fieldSchema.safeParse(fields);
    if (!f.success) throw issueToError(f.error);
    c.set("input", { query: q.data, fields: f.data });
    await next();
  };
  registerDescription(middleware, { doc, input: { query: spec.query, fields: spec.fields } });
  return middleware;
}
