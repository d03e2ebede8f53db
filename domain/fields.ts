/**
 * Field rules: one zod schema per request parameter, from the raw text a client sent to the typed value. The input
 * side of each schema carries the value's wire type and constraints (type, lengths, range, enum, pattern, format),
 * so `z.toJSONSchema(schema, { io: "input" })` and the OpenAPI document describe exactly what the API, the importer
 * and the docs share; the output side is the parser that decides and words every error message.
 */
import { z } from "zod";
import { quote, ValidationError } from "./errors.ts";

/** A parser of one raw parameter value; throws ValidationError naming `field`. */
export type FieldParser<T> = (raw: string, field: string) => T;

/** A field rule: a zod schema from a parameter's raw text to its value, documented on its input side. */
export type Field<T> = z.ZodType<T, string>;

/** What a parameter map may hold: field rules, bare parsers (documented as plain text) or any zod schema of text. */
export type FieldRule = Field<unknown> | FieldParser<unknown>;

/** Raw request parameters: every value already reduced to a string. */
export type RawParams = Record<string, string>;

/** The value a rule yields. */
export type ValueOf<R> = R extends z.ZodType ? z.output<R> : R extends FieldParser<infer T> ? T : never;

/** What a field tells schema tools besides its parser. */
export interface FieldDoc {
  /** The value as a client sends it, as a zod schema (JSON type and constraints); plain text when absent. */
  wire?: z.ZodType;
  /** One sentence on what the value means or how it is read. */
  description?: string;
  /** A valid value, as a client would send it. */
  example?: string | number | boolean;
}

/** What the field registry keeps for each rule: its parser, and whether the parameter is refused outright. */
interface FieldEntry {
  parse: FieldParser<unknown>;
  refused: boolean;
}

const registry = new WeakMap<z.ZodType, FieldEntry>();

/** The JSON Schema of a zod schema as an OpenAPI 3.1 schema object (no `$schema` line). */
export function jsonSchemaOf(schema: z.ZodType, io: "input" | "output" = "output"): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  return json;
}

function register<T>(parse: FieldParser<T>, json: Record<string, unknown>, refused = false): Field<T> {
  const schema = z.string().meta(json).transform((raw, ctx) => run(parse, raw, "value", ctx)) as Field<T>;
  registry.set(schema, { parse, refused });
  return schema;
}

/** Runs a parser inside a zod transform, turning its ValidationError into a zod issue with the same message. */
function run<T>(parse: FieldParser<T>, raw: string, name: string, ctx: z.RefinementCtx): T {
  try {
    return parse(raw, name);
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    ctx.issues.push({ code: "custom", message: e.message, input: raw, path: [] });
    return z.NEVER;
  }
}

/** Makes a field rule from a parser and what the wire value looks like. */
export function field<T>(parse: FieldParser<T>, doc: FieldDoc = {}): Field<T> {
  const json: Record<string, unknown> = doc.wire ? jsonSchemaOf(doc.wire) : { type: "string" };
  if (doc.description !== undefined) json.description = doc.description;
  if (doc.example !== undefined) json.examples = [doc.example];
  return register(parse, json);
}

/** What a rule is made of: its parser (null for a plain zod schema) and its wire JSON Schema. */
export function fieldInfo(
  rule: FieldRule,
): { parse: FieldParser<unknown> | null; json: Record<string, unknown>; refused: boolean } {
  if (typeof rule === "function") return { parse: rule, json: { type: "string" }, refused: false };
  // `.describe()` and `.meta()` clone a schema; the clone keeps its original as its parent.
  let s: z.ZodType | undefined = rule;
  while (s && !registry.has(s)) s = s._zod.parent as z.ZodType | undefined;
  const entry = s ? registry.get(s) : undefined;
  const json = jsonSchemaOf(rule, "input");
  return entry ? { parse: entry.parse, json, refused: entry.refused } : { parse: null, json, refused: false };
}

/** The parser behind a rule, for callers that parse one value at a time and name the field themselves. */
export function parserOf<T>(rule: Field<T> | FieldParser<T>): FieldParser<T> {
  const { parse } = fieldInfo(rule);
  if (parse !== null) return parse as FieldParser<T>;
  return (raw, field) => {
    const result = (rule as Field<T>).safeParse(raw);
    if (result.success) return result.data;
    throw new ValidationError(field, `Invalid ${field}: ${result.error.issues[0]?.message ?? "not valid"}`);
  };
}

/** The parsers behind a map of rules. */
export function parsersOf<P extends Record<string, FieldRule>>(
  rules: P,
): { [K in keyof P]: FieldParser<ValueOf<P[K]>> } {
  const out: Record<string, FieldParser<unknown>> = {};
  for (const [name, rule] of Object.entries(rules)) out[name] = parserOf(rule);
  return out as { [K in keyof P]: FieldParser<ValueOf<P[K]>> };
}

/** Builds the standard "Invalid field" error so every message reads alike. */
export function invalid(field: string, raw: string, reason: string): ValidationError {
  return new ValidationError(field, `Invalid ${field} "${quote(raw)}": ${reason}`);
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// deno-lint-ignore no-control-regex
const NO_CONTROL = /^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/;

/** Parses free text: trimmed, empty means "clear" (null), longer than `max` characters is refused. */
export function text(max: number): Field<string | null> {
  return field((raw, field) => {
    const value = raw.trim();
    // Characters are code points: an emoji or a rare CJK character counts once, not as two UTF-16 units.
    if (value.length > max && [...value].length > max) throw invalid(field, raw, `at most ${max} characters`);
    if (CONTROL.test(value)) throw invalid(field, raw, "control characters are not allowed");
    return value === "" ? null : value;
  }, {
    wire: z.string().max(max).regex(NO_CONTROL),
    description: "Text, trimmed; control characters are refused.",
    example: "text",
  });
}

/** Parses a whole number in [min, max]; empty means null. */
export function int(min: number, max: number): Field<number | null> {
  return field(intParser(min, max), { wire: z.int().min(min).max(max), example: min });
}

function intParser(min: number, max: number): FieldParser<number | null> {
  return (raw, field) => {
    const value = raw.trim();
    if (value === "") return null;
    if (!/^[+-]?\d{1,16}$/.test(value)) throw invalid(field, raw, `must be a whole number from ${min} to ${max}`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw invalid(field, raw, `must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

const ID_WIRE = z.int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Parses an id: a positive whole number; empty means null. */
export const id: Field<number | null> = field(intParser(1, Number.MAX_SAFE_INTEGER), { wire: ID_WIRE, example: 1 });

/**
 * Makes a lookup parameter refuse an empty value: `?id=` must not mean "no id given" (which would list every
 * customer, or create one) when a client's variable happened to be empty.
 */
export function nonEmpty<T>(rule: Field<T | null> | FieldParser<T | null>): Field<T> {
  const { json } = fieldInfo(rule);
  const inner = parserOf(rule);
  const out = { ...json };
  if (out.type === "string" && out.minLength === undefined) out.minLength = 1;
  out.description = [json.description, "Must not be empty."].filter(Boolean).join(" ");
  return register((raw, field) => {
    const value = raw.trim() === "" ? null : inner(raw, field) as T | null;
    if (value === null) throw invalid(field, raw, "must not be empty");
    return value;
  }, out);
}

/** Parses a required id: a positive whole number. */
export const requiredId: Field<number> = nonEmpty(id);

const TRUE = new Set(["1", "true"]);
const FALSE = new Set(["0", "false"]);

/** Parses a boolean given as 1/0/true/false (any case); empty means null. */
export const bool: Field<boolean | null> = field((raw, field) => {
  const value = raw.trim().toLowerCase();
  if (value === "") return null;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw invalid(field, raw, "must be 1, 0, true or false");
}, { wire: z.boolean(), description: "true or false, also 1 or 0 (any case).", example: true });

/** Parses one of a fixed set of upper-case values (input case-insensitive); empty means null. */
export function oneOf<T extends string>(values: readonly T[]): Field<T | null> {
  const set = new Set<string>(values);
  return field((raw, field) => {
    const value = raw.trim().toUpperCase();
    if (value === "") return null;
    if (!set.has(value)) throw invalid(field, raw, `must be one of ${values.join(", ")}`);
    return value as T;
  }, {
    wire: z.enum(values as unknown as [T, ...T[]]),
    description: "Any case.",
    example: values[0],
  });
}

/** Refuses a parameter outright, with the reason given. */
export function refused(reason: string): Field<never> {
  return register(
    (_raw, field) => {
      throw new ValidationError(field, `Parameter "${field}" is not accepted: ${reason}`);
    },
    { not: {}, description: `Not accepted: ${reason}.` },
    true,
  );
}

const SET_BY_SERVICE = "it is set by the service";

/** The audit fields every record carries; set by the service, refused as input. */
export const AUDIT_FIELDS = {
  created_date: refused(SET_BY_SERVICE),
  created_by: refused(SET_BY_SERVICE),
  last_update_date: refused(SET_BY_SERVICE),
  last_update_by: refused(SET_BY_SERVICE),
} satisfies Record<string, Field<never>>;

/** The parsed shape of a parameter map: each key optional, typed by its rule. */
export type Parsed<P extends Record<string, FieldRule>> = {
  [K in keyof P]?: ValueOf<P[K]>;
};

/** The rule of one parameter under its own name, so its messages name it. */
function named(rule: FieldRule, name: string): z.ZodType {
  const { parse, json } = fieldInfo(rule);
  if (parse === null) return rule as z.ZodType;
  return z.string().meta(json).transform((raw, ctx) => run(parse, raw, name, ctx));
}

/** Builds a strict zod schema from field rules, so unknown parameters are refused by name. */
export function paramSchema<P extends Record<string, FieldRule>>(
  rules: P,
): z.ZodType<Parsed<P>, RawParams> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, rule] of Object.entries(rules)) shape[name] = named(rule, name).optional();
  return z.strictObject(shape) as unknown as z.ZodType<Parsed<P>, RawParams>;
}

/** Turns the first zod issue into our ValidationError that names the parameter. */
export function issueToError(error: z.ZodError): ValidationError {
  const issue = error.issues[0];
  if (!issue) return new ValidationError("", "Invalid request");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    return new ValidationError(key, `Unknown parameter "${quote(key)}"`);
  }
  const field = String(issue.path[0] ?? "");
  if (issue.code === "custom") return new ValidationError(field, issue.message);
  return new ValidationError(field, `Invalid ${field}: ${issue.message}`);
}
