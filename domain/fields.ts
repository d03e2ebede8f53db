import { z } from "zod";
import { quote, ValidationError } from "./errors.ts";

/** A parser of one raw parameter value; throws ValidationError naming `field`. */
export type FieldParser<T> = (raw: string, field: string) => T;

/** Raw request parameters: every value already reduced to a string. */
export type RawParams = Record<string, string>;

/** Builds the standard "Invalid field" error so every message reads alike. */
export function invalid(field: string, raw: string, reason: string): ValidationError {
  return new ValidationError(field, `Invalid ${field} "${quote(raw)}": ${reason}`);
}

/** Parses free text: trimmed, empty means "clear" (null), longer than `max` characters is refused. */
export function text(max: number): FieldParser<string | null> {
  return (raw, field) => {
    const value = raw.trim();
    if (value.length > max) throw invalid(field, raw, `at most ${max} characters`);
    // deno-lint-ignore no-control-regex
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value)) {
      throw invalid(field, raw, "control characters are not allowed");
    }
    return value === "" ? null : value;
  };
}

/** Parses a whole number in [min, max]; empty means null. */
export function int(min: number, max: number): FieldParser<number | null> {
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

/** Parses an id: a positive whole number; empty means null. */
export const id: FieldParser<number | null> = int(1, Number.MAX_SAFE_INTEGER);

/**
 * Makes a lookup parameter refuse an empty value: `?id=` must not mean "no id given" (which would list every
 * customer, or create one) when a client's variable happened to be empty.
 */
export function nonEmpty<T>(parse: FieldParser<T | null>): FieldParser<T> {
  return (raw, field) => {
    const value = raw.trim() === "" ? null : parse(raw, field);
    if (value === null) throw invalid(field, raw, "must not be empty");
    return value;
  };
}

/** Parses a required id: a positive whole number. */
export const requiredId: FieldParser<number> = (raw, field) => {
  const value = id(raw, field);
  if (value === null) throw invalid(field, raw, "must not be empty");
  return value;
};

const TRUE = new Set(["1", "true"]);
const FALSE = new Set(["0", "false"]);

/** Parses a boolean given as 1/0/true/false (any case); empty means null. */
export const bool: FieldParser<boolean | null> = (raw, field) => {
  const value = raw.trim().toLowerCase();
  if (value === "") return null;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw invalid(field, raw, "must be 1, 0, true or false");
};

/** Parses one of a fixed set of upper-case values (input case-insensitive); empty means null. */
export function oneOf<T extends string>(values: readonly T[]): FieldParser<T | null> {
  const set = new Set<string>(values);
  return (raw, field) => {
    const value = raw.trim().toUpperCase();
    if (value === "") return null;
    if (!set.has(value)) throw invalid(field, raw, `must be one of ${values.join(", ")}`);
    return value as T;
  };
}

/** Refuses a parameter outright, with the reason given. */
export function refused(reason: string): FieldParser<never> {
  return (_raw, field) => {
    throw new ValidationError(field, `Parameter "${field}" is not accepted: ${reason}`);
  };
}

/** The audit fields every record carries; set by the service, refused as input. */
export const AUDIT_FIELDS = {
  created_date: refused("it is set by the service"),
  created_by: refused("it is set by the service"),
  last_update_date: refused("it is set by the service"),
  last_update_by: refused("it is set by the service"),
} satisfies Record<string, FieldParser<never>>;

/** The parsed shape of a parameter map: each key optional, typed by its parser. */
export type Parsed<P extends Record<string, FieldParser<unknown>>> = {
  [K in keyof P]?: ReturnType<P[K]>;
};

/** Builds a strict zod schema from field parsers, so unknown parameters are refused by name. */
export function paramSchema<P extends Record<string, FieldParser<unknown>>>(
  parsers: P,
): z.ZodType<Parsed<P>, RawParams> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, parse] of Object.entries(parsers)) {
    shape[name] = z.string().transform((raw, ctx) => {
      try {
        return parse(raw, name);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        ctx.issues.push({ code: "custom", message: e.message, input: raw, path: [] });
        return z.NEVER;
      }
    }).optional();
  }
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
