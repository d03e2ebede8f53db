import type { Context, MiddlewareHandler } from "hono";
import { type FieldRule, issueToError, paramSchema, type Parsed, parserOf, type RawParams } from "../domain/fields.ts";
import { quote, ValidationError } from "../domain/errors.ts";
import type { AppEnv, RawRequest } from "./context.ts";
import {
  decodeUtf8,
  formBytesError,
  hasClosingBoundary,
  jsonBytesError,
  multipartBoundary,
  multipartBytesError,
  notUtf8,
  parsePairs,
  queryString,
  scanJsonObject,
} from "./wire.ts";
import { registerDescription, type RouteDoc } from "./route_doc.ts";

/** Parameters every endpoint takes besides its own; they never reach the endpoint's schema. */
const GLOBAL_PARAMS = new Set(["format", "apikey"]);

/** Body parameters as strings, and which of them came as a JSON true/false (only yes/no parameters take those). */
interface Body {
  params: Record<string, string>;
  booleans: Set<string>;
}

function scalar(key: string, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") {
    // JSON escapes can spell a lone surrogate ("\ud800"), which is no character at all.
    if (!value.isWellFormed()) throw notUtf8(key);
    return value;
  }
  if (typeof value === "number" && Number.isFinite(value)) {
    // Beyond 2^53 a JSON number has already lost digits (12345678901234567890 reads as ...7000): refuse it.
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new ValidationError(key, `Invalid ${key}: the number is too large to be exact; send it as a string`);
    }
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  throw new ValidationError(key, `Invalid ${key}: must be a single text, number or boolean value`);
}

function moreThanOnce(key: string): ValidationError {
  return new ValidationError(key, `Parameter "${key}" is given more than once`);
}

/** Name/value pairs into a map without prototype (so "constructor" or "__proto__" are names like any other). */
function toParams(pairs: Iterable<[string, string]>): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of pairs) {
    if (Object.hasOwn(out, k)) throw moreThanOnce(k);
    out[k] = v;
  }
  return out;
}

function emptyBody(): Body {
  return { params: Object.create(null), booleans: new Set() };
}

function readJson(bytes: Uint8Array): Body {
  const body = emptyBody();
  const text = decodeUtf8(bytes);
  if (text === null) throw jsonBytesError(bytes);
  if (text.trim() === "") return body;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ValidationError("body", "Invalid body: malformed JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ValidationError("body", "Invalid body: a JSON object of parameters is expected");
  }
  // JSON.parse keeps the last of duplicate keys silently; a form or query string refuses them, and so does JSON.
  const seen = new Set<string>();
  for (const k of scanJsonObject(text).keys) {
    if (seen.has(k)) throw moreThanOnce(k);
    seen.add(k);
  }
  for (const [k, v] of Object.entries(data)) {
    if (!k.isWellFormed()) throw new ValidationError("body", "Invalid body: parameter names must be valid UTF-8 text");
    body.params[k] = scalar(k, v);
    if (typeof v === "boolean") body.booleans.add(k);
  }
  return body;
}

async function readMultipart(c: Context, bytes: Uint8Array<ArrayBuffer>, contentType: string): Promise<Body> {
  const boundary = multipartBoundary(contentType);
  if (boundary === undefined) throw new ValidationError("body", "Invalid body: malformed form data");
  // Without its closing delimiter a body was cut off, and the parser would drop the unterminated last part.
  if (!hasClosingBoundary(bytes, boundary)) {
    throw new ValidationError("body", "Invalid body: the multipart body is cut short: its closing boundary is missing");
  }
  let form: FormData;
  try {
    form = await new Response(bytes, { headers: { "content-type": c.req.header("content-type")! } }).formData();
  } catch {
    throw new ValidationError("body", "Invalid body: malformed form data");
  }
  const pairs: [string, string][] = [];
  for (const [k, v] of form.entries()) {
    if (typeof v !== "string") throw new ValidationError(k, `Invalid ${k}: files are not accepted`);
    pairs.push([k, v]);
  }
  // The parser turns bad bytes into U+FFFD; no file is in the body, so every byte of it must be UTF-8.
  if (decodeUtf8(bytes) === null) throw multipartBytesError(bytes, boundary);
  return { params: toParams(pairs), booleans: new Set() };
}

async function readBody(c: Context): Promise<Body> {
  if (c.req.method === "GET" || c.req.method === "HEAD") return emptyBody();
  const contentType = c.req.header("content-type") ?? "";
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  const encoding = (c.req.header("content-encoding") ?? "identity").trim().toLowerCase();
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (encoding !== "identity" && bytes.length > 0) {
    // A compressed body would be read as garbage (or as plain text that is not what was meant): say so.
    throw new ValidationError(
      "body",
      `Invalid body: content-encoding "${quote(encoding)}" is not accepted; send the body uncompressed`,
    );
  }
  if (type === "application/json" || type.endsWith("+json")) return readJson(bytes);
  if (type === "application/x-www-form-urlencoded") {
    const text = decodeUtf8(bytes);
    if (text === null) throw formBytesError(bytes);
    return { params: toParams(parsePairs(text, "body")), booleans: new Set() };
  }
  if (type === "multipart/form-data") return await readMultipart(c, bytes, contentType);
  if (bytes.length === 0) return emptyBody();
  throw new ValidationError(
    "body",
    `Invalid body: content type "${type}" is not accepted; use JSON, form or multipart`,
  );
}

/** Query strings already parsed, by request, so authentication and parameter reading parse each once. */
const QUERIES = new WeakMap<object, Record<string, string>>();

/** The query parameters of a URL, decoded strictly (bad UTF-8 is refused by name) and each allowed once. */
export function queryParams(url: string): Record<string, string> {
  return toParams(parsePairs(queryString(url), "query"));
}

/** The query parameters of the request, parsed once per request. */
function queryOf(c: Context): Record<string, string> {
  let query = QUERIES.get(c.req);
  if (!query) {
    query = queryParams(c.req.url);
    QUERIES.set(c.req, query);
  }
  return query;
}

/** One key from all the places a key may be sent: empty ones are ignored, two different ones are refused. */
function oneKey(keys: (string | undefined)[]): string | undefined {
  let key: string | undefined;
  for (const k of keys) {
    if (k === undefined || k.trim() === "") continue;
    if (key !== undefined && k !== key) {
      throw new ValidationError("apikey", "Two different API keys were sent: send one");
    }
    key = k;
  }
  return key;
}

/**
 * The API key sent outside the body: header `X-API-Key`, `Authorization: Bearer`, or `apikey` in the query string.
 * A key in the body is compared with it when the body is read (`rawOf`).
 */
export function outsideKey(c: Context): string | undefined {
  return keyOutsideBody(c.req.header("x-api-key"), c.req.header("authorization"), queryOf(c).apikey);
}

/**
 * `outsideKey` from the header values (`X-API-Key`, `Authorization`) and the query string's `apikey`: the key, none
 * (undefined), or a ValidationError thrown for two different keys.
 */
export function keyOutsideBody(
  headerKey: string | undefined,
  bearer: string | undefined,
  queryKey: string | undefined,
): string | undefined {
  // The till's usual request: the key in the query string alone (what oneKey gives for a single key).
  if (headerKey === undefined && bearer === undefined) {
    return queryKey === undefined || queryKey.trim() === "" ? undefined : queryKey;
  }
  // Several X-API-Key headers reach us joined by ", " (keys hold no comma): each counts as a key sent.
  return oneKey([
    ...(headerKey?.split(",") ?? []).map((k) => k.trim()),
    bearer && /^bearer\s+/i.test(bearer) ? bearer.replace(/^bearer\s+/i, "").trim() : undefined,
    queryKey,
  ]);
}

/** The request's raw parameters, read (query and body) on first use and kept for the rest of the request. */
export async function rawOf<E extends AppEnv>(c: Context<E>): Promise<RawRequest> {
  const known = (c as unknown as Context<AppEnv>).get("raw") as RawRequest | undefined;
  if (known) return known;
  const raw = await readRaw(c);
  (c as unknown as Context<AppEnv>).set("raw", raw);
  return raw;
}

/** Reads query and body into plain string maps and takes out `format` and `apikey`. */
async function readRaw(c: Context): Promise<RawRequest> {
  const query: Record<string, string> = Object.assign(Object.create(null), queryOf(c));
  const { params: body, booleans } = await readBody(c);
  if (booleans.has("apikey")) throw new ValidationError("apikey", "Invalid apikey: must be text, not a boolean");
  const outside = outsideKey(c);
  const apikey = body.apikey === undefined ? outside : oneKey([outside, body.apikey]);
  if (body.format !== undefined) {
    throw new ValidationError("format", 'Parameter "format" must be passed in the query string');
  }
  for (const k of GLOBAL_PARAMS) delete query[k];
  delete body.apikey;
  return { query, body, apikey, booleans };
}

/**
 * The fields of a spec that take a JSON true/false: those whose parser reads "true" as true and "false" as false.
 * Asking the parser keeps the type in one place, its definition.
 */
function yesNoFields(parsers: Parsers): Set<string> {
  const yesNo = new Set<string>();
  for (const [name, rule] of Object.entries(parsers)) {
    const parse = parserOf(rule);
    try {
      if (parse("true", name) === true && parse("false", name) === false) yesNo.add(name);
    } catch {
      // Refuses "true": not a yes/no field.
    }
  }
  return yesNo;
}

/** Refuses a JSON true/false sent for a parameter that is not yes/no (an id, an amount, a date or a text). */
function notBoolean(field: string): ValidationError {
  return new ValidationError(
    field,
    `Invalid ${field}: must not be a boolean; true and false are only for yes/no parameters`,
  );
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
  const yesNo = yesNoFields(spec.fields);
  const middleware: MiddlewareHandler<AppEnv & InputEnv<Q, F>> = async (c, next) => {
    const raw = await rawOf(c);
    const query: RawParams = Object.create(null);
    const fields: RawParams = Object.create(null);
    for (const [k, v] of Object.entries(raw.query)) {
      if (Object.hasOwn(spec.query, k)) query[k] = v;
      else fields[k] = v;
    }
    for (const [k, v] of Object.entries(raw.body)) {
      if (!inFields.has(k) && Object.hasOwn(spec.query, k)) {
        throw new ValidationError(k, `Parameter "${k}" must be passed in the query string`);
      }
      if (Object.hasOwn(fields, k)) throw new ValidationError(k, `Parameter "${k}" is given more than once`);
      if (raw.booleans.has(k) && inFields.has(k) && !yesNo.has(k)) throw notBoolean(k);
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
