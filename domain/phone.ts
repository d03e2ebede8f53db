import { z } from "zod";
import { quote, ValidationError } from "./errors.ts";
import { type Field, field } from "./fields.ts";

const ALLOWED = /^\+?[\d\s\-().]*$/;
const NON_DIGITS = /\D/g;
const COUNTRY_CODE = /^[1-9]\d{0,2}$/;
/** At most this many different bad characters are named in an error. */
const MAX_NAMED = 5;

/** The characters a phone number may not hold, each quoted once (invisible ones as U+XXXX), for an error message. */
function badCharacters(text: string): string {
  const bad = new Set<string>();
  for (const ch of text.replace(/^\+/, "")) if (!/[\d\s\-().]/.test(ch)) bad.add(ch);
  const named = [...bad].slice(0, MAX_NAMED).map((ch) =>
    /[\p{C}\p{Z}]/u.test(ch) ? `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}` : `"${ch}"`
  );
  return named.join(", ") + (bad.size > MAX_NAMED ? ", …" : "");
}

/**
 * Normalises a phone number written in any common way to its international digits (E.164 without "+"),
 * so that "8 (900) 123-45-67", "+7 900 1234567" and "9001234567" are one number.
 */
export function normalizePhone(raw: string, field: string, defaultCountryCode: string): string {
  const text = raw.trim();
  // Checked first, so "+7 (900) abc" is told about its letters, not about having too few digits.
  if (!ALLOWED.test(text)) {
    throw new ValidationError(
      field,
      `Invalid ${field} "${quote(raw)}": only digits, spaces, a leading + and - ( ) . are allowed, not ${
        badCharacters(text)
      }`,
    );
  }
  let digits = text.replace(NON_DIGITS, "");
  if (text.startsWith("+")) {
    // Already international.
  } else if (digits.startsWith("00")) {
    digits = digits.slice(2);
  } else if (defaultCountryCode === "7" && digits.length === 11 && digits.startsWith("8")) {
    digits = "7" + digits.slice(1);
  } else if (digits.startsWith("0")) {
    digits = defaultCountryCode + digits.slice(1);
  } else if (digits.length <= 10) {
    digits = defaultCountryCode + digits;
  }
  if (digits.length < 7 || digits.length > 15) {
    throw new ValidationError(field, `Invalid ${field} "${quote(raw)}": must contain 7 to 15 digits`);
  }
  return digits;
}

/** A phone parameter in any common writing, stored as international digits; empty means null (clear). */
export function phoneField(defaultCountryCode: string): Field<string | null> {
  return field((raw, name) => raw.trim() === "" ? null : normalizePhone(raw, name, defaultCountryCode), {
    wire: z.string().regex(ALLOWED),
    description: `Any writing with 7 to 15 digits ("8 (900) 123-45-67", "+7 900 1234567"); national numbers get ` +
      `country code ${defaultCountryCode}.`,
    example: "+7 900 123-45-67",
  });
}

/** Whether a country calling code is well-formed (1 to 3 digits, not starting with 0), to vet the configuration. */
export function isValidCountryCode(cc: string): boolean {
  return COUNTRY_CODE.test(cc);
}
