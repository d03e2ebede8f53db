/**
 * `POST /api/import?type=customers|cards|bonuses`: the bulk endpoint of remote imports (a store that cannot be
 * opened from outside, as on Deno Deploy). NDJSON in, one `{"line", "values"}` object per row as `deno task import
 * --url` sends it; one result per row out, through the same import use case as the local task. Its body limit is
 * its own (IMPORT_MAX_BODY_BYTES), not the single-request MAX_BODY_BYTES.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { PayloadTooLargeError, ValidationError } from "../domain/errors.ts";
import { bool, field, id, issueToError, paramSchema, text } from "../domain/fields.ts";
import {
  countResult,
  emptyReport,
  IMPORT_MAX_ROWS_PER_REQUEST,
  type ImportRow,
  ImportSession,
  MATCH_FIELDS,
  type MatchField,
  recordImport,
  type RowResult,
  RUN_ID,
} from "../usecases/import.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply } from "./reply.ts";
import { rawOf } from "./request.ts";
import { registerDescription, type RouteDoc } from "./route_doc.ts";

/** The path the bulk endpoint is mounted at (the app-wide body limit leaves it to its own). */
export const IMPORT_PATH = "/api/import";

const matchField = field((raw, name) => {
  const parts = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const p of parts) {
    if (!(MATCH_FIELDS as readonly string[]).includes(p)) {
      throw new ValidationError(name, `Invalid ${name} "${raw}": each of external_id, phone, email`);
    }
  }
  if (parts.length === 0) throw new ValidationError(name, `Invalid ${name} "${raw}": must not be empty`);
  return parts as MatchField[];
}, {
  wire: z.string().regex(/^(external_id|phone|email)(,(external_id|phone|email))*$/),
  description: "The order of the fields a customer row is matched by.",
  example: "external_id,phone,email",
});

const QUERY = {
  type: field((raw, name) => {
    const value = raw.trim().toLowerCase();
    if (value === "") return null;
    if (value !== "customers" && value !== "cards" && value !== "bonuses") {
      throw new ValidationError(name, `Invalid ${name} "${raw}": must be one of customers, cards, bonuses`);
    }
    return value as "customers" | "cards" | "bonuses";
  }, {
    wire: z.enum(["customers", "cards", "bonuses"]),
    description: "What the rows are (any case).",
    example: "customers",
  }),
  bonus_id: id.describe("The program of balances; default: the company's only program."),
  dry_run: bool.describe("1: validate and match every row, write nothing."),
  match: matchField,
  file: text(200).describe("The imported file's name, for the run record."),
  file_key: text(100).describe("A key of the file, so a re-run grants each credit of a balances file once."),
  needs_program: bool.describe("1: the rows carry balances; the program is resolved before the first row."),
  run: field((raw, name) => {
    if (!RUN_ID.test(raw)) {
      throw new ValidationError(name, `Invalid ${name} "${raw}": must look like 001700000000000-0a1b2c3d`);
    }
    return raw;
  }, {
    wire: z.string().regex(RUN_ID),
    description: "The import run the rows belong to: the requests of one remote import are recorded as one run.",
    example: "001700000000000-0a1b2c3d",
  }),
};

const resultView = z.strictObject({
  line: z.int().min(0),
  status: z.enum(["created", "updated", "unchanged", "rejected", "skipped"]),
  field: z.string().optional(),
  info: z.string().optional(),
});

const importReply = z.strictObject({
  success: z.literal(1),
  type: z.literal("import"),
  count: z.int().min(0),
  created: z.int().min(0),
  updated: z.int().min(0),
  unchanged: z.int().min(0),
  rejected: z.int().min(0),
  skipped: z.int().min(0),
  results: z.array(resultView.meta({ xml: { name: "result" } })).meta({ xml: { wrapped: true } }),
}).meta({ title: "ImportResult", xml: { name: "root" } });

const DOC: RouteDoc = {
  summary: "Import rows in bulk (remote mode of deno task import)",
  description: 'The body is NDJSON (`application/x-ndjson`): one `{"line": N, "values": {field: text}}` per ' +
    "row, fields by their API names. Each row goes through the same rules as a single write; the reply has one " +
    "result per row, in order. The body limit is IMPORT_MAX_BODY_BYTES, and at most 5,000 rows go in one request " +
    "(413 above that): send larger files in batches, as `deno task import --url` does.",
  reply: importReply,
  required: ["type"],
  tags: ["import"],
  body: {
    description: 'NDJSON: one `{"line": N, "values": {field: text}}` per row (at most 5,000 rows); a row the ' +
      'client refused may carry `"error": {"field": ..., "info": ...}` and is counted rejected.',
    media: ["application/x-ndjson"],
    schema: {
      type: "object",
      required: ["line", "values"],
      properties: {
        line: { type: "integer", minimum: 0 },
        values: { type: "object", additionalProperties: { type: "string" } },
        error: { type: "object", properties: { field: { type: "string" }, info: { type: "string" } } },
      },
    },
  },
};

const querySchema = paramSchema(QUERY);
const NDJSON = new Set(["application/x-ndjson", "application/jsonl", "application/x-jsonlines"]);

/** The bulk import sub-app, mounted at /api/import. */
export function importRoutes(deps: Deps) {
  const { store, config } = deps;
  const limit = bodyLimit({
    maxSize: config.importMaxBodyBytes,
    onError: () => {
      throw new PayloadTooLargeError(`Request body is too large: at most ${config.importMaxBodyBytes} bytes`);
    },
  });
  const handler: MiddlewareHandler<AppEnv> = async (c) => {
    const contentType = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    const ndjson = NDJSON.has(contentType);
    const query: Record<string, string> = {};
    for (const [k, v] of new URL(c.req.url).searchParams) {
      if (k === "format" || k === "apikey") continue;
      if (k in query) throw new ValidationError(k, `Parameter "${k}" is given more than once`);
      query[k] = v;
    }
    if (!ndjson) {
      // Any other body is read as parameters only to say where they belong.
      const raw = await rawOf(c);
      for (const k of Object.keys(raw.body)) {
        if (Object.hasOwn(QUERY, k)) {
          throw new ValidationError(k, `Parameter "${k}" must be passed in the query string`);
        }
        throw new ValidationError("body", "Invalid body: send the rows as NDJSON (application/x-ndjson)");
      }
    }
    const parsed = querySchema.safeParse(query);
    if (!parsed.success) throw issueToError(parsed.error);
    const q = parsed.data;
    if (q.type == null) throw new ValidationError("type", `Parameter "type" is required`);
    const actor = actorOf(c.var.caller);
    const session = new ImportSession(store, actor, {
      type: q.type,
      bonusId: q.bonus_id,
      match: q.match ?? undefined,
      dryRun: q.dry_run === true,
      settings: config,
      fileKey: q.file_key ?? undefined,
    });
    const rows = ndjson ? parseRows(await c.req.text()) : [];
    await session.prepare(q.needs_program === true || (q.type === "bonuses" && q.bonus_id != null));
    const started = store.clock();
    const results: RowResult[] = rows.length === 0 ? [] : await session.run(rows);
    const report = emptyReport();
    for (const r of results) countResult(report, r);
    if (rows.length > 0 && q.dry_run !== true) {
      await recordImport(store, actor, {
        file: q.file ?? "(bulk request)",
        type: q.type,
        actor: actor.name,
        dry_run: false,
        started,
        finished: store.clock(),
        ...report,
      }, { id: q.run ?? undefined });
    }
    const { rejects: _r, ...counts } = report;
    return reply(c, { success: 1, type: "import", count: results.length, ...counts, results: results as never });
  };
  registerDescription(handler, { doc: DOC, input: { query: QUERY, fields: {} } });
  return new Hono<AppEnv>().post("/", limit, requireWrite, handler);
}

/** The rows of an NDJSON body; a line that is not a row is refused naming its place. */
function parseRows(body: string): ImportRow[] {
  const out: ImportRow[] = [];
  let n = 0;
  for (const text of body.split("\n")) {
    n++;
    if (text.trim() === "") continue;
    if (out.length === IMPORT_MAX_ROWS_PER_REQUEST) {
      throw new PayloadTooLargeError(
        `Request has too many rows: at most ${IMPORT_MAX_ROWS_PER_REQUEST} rows per request, send them in batches`,
      );
    }
    let item: unknown;
    try {
      item = JSON.parse(text);
    } catch (e) {
      throw new ValidationError("body", `Invalid body: line ${n} is not JSON: ${(e as Error).message}`);
    }
    const row = item as { line?: unknown; values?: unknown; error?: { field?: unknown; info?: unknown } };
    if (
      !row || typeof row !== "object" || !Number.isSafeInteger(row.line) || !row.values ||
      typeof row.values !== "object" || Object.values(row.values).some((v) => typeof v !== "string")
    ) {
      throw new ValidationError("body", `Invalid body: line ${n} must be {"line": N, "values": {field: text}}`);
    }
    const error = row.error && typeof row.error === "object"
      ? { field: String(row.error.field ?? ""), info: String(row.error.info ?? "") }
      : undefined;
    out.push({ line: row.line as number, values: row.values as Record<string, string>, ...(error ? { error } : {}) });
  }
  return out;
}
