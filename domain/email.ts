import { z } from "zod";
import { quote, ValidationError } from "./errors.ts";
import { type Field, field } from "./fields.ts";

/** A domain label: letters (any script, with their marks), digits and inner hyphens, at most 63 characters. */
const LABEL = /^[\p{L}\p{M}\p{Nd}](?:[\p{L}\p{M}\p{Nd}-]{0,61}[\p{L}\p{M}\p{Nd}])?$/u;
/** A local part: no spaces, control characters or characters that need quoting. */
const LOCAL = /^[^\s\p{Cc}@"(),:;<>[\\\]]+$/u;
const DIGITS = /^\d+$/;

/** Checks an email address and returns it trimmed with its case kept, so customers see what they typed. */
export function normalizeEmail(raw: string, field: string): string {
  const email = raw.trim();
  const bad = (reason: string) => new ValidationError(field, `Invalid ${field} "${quote(raw)}": ${reason}`);
  if (email.length > 254) throw bad("at most 254 characters");
  const at = email.indexOf("@");
  if (at < 0 || at !== email.lastIndexOf("@")) throw bad("must be one address like name@example.com");
  const local = email.slice(0, at);
  if (
    local.length === 0 || local.length > 64 || !LOCAL.test(local) ||
    local.startsWith(".") || local.endsWith(".") || local.includes("..")
  ) {
    throw bad("the part before @ is not valid");
  }
  const labels = email.slice(at + 1).split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || DIGITS.test(labels[labels.length - 1]!)) {
    throw bad("the domain after @ is not valid");
  }
  return email;
}

/** An email parameter, kept as typed; empty means null (clear). */
export const emailField: Field<string | null> = field(
  (raw, name) => raw.trim() === "" ? null : normalizeEmail(raw, name),
  {
    wire: z.string().max(254).meta({ format: "email" }),
    description: "One address; unique per company in any case.",
    example: "sergey@example.com",
  },
);

/** The lower-cased form of an email address, used for lookup and uniqueness so that case does not matter. */
export function emailKey(email: string): string {
  return email.toLowerCase();
}
