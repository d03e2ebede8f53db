/**
 * Values as spreadsheets write them, brought to the API's own text before the API's field rules read them: dates
 * in DD.MM.YYYY, DD/MM/YYYY or YYYY-MM-DD, decimal commas and space thousands separators, yes/no and да/нет flags,
 * Russian and English genders, and Shopify's apostrophe that keeps Excel from reformatting numbers.
 */
import { ValidationError } from "../errors.ts";

/** A date of birth split into the API's three fields (each "" when not known). */
export interface BirthParts {
  birth_day: string;
  birth_month: string;
  birth_year: string;
}

const DMY = /^(\d{1,2})[./](\d{1,2})[./](\d{4})$/;
const YMD = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$/;

/** Splits a whole birth date (DD.MM.YYYY, DD/MM/YYYY or YYYY-MM-DD); whether the day exists is checked later. */
export function splitBirthDate(raw: string, field: string): BirthParts {
  const value = raw.trim();
  if (value === "") return { birth_day: "", birth_month: "", birth_year: "" };
  let m = DMY.exec(value);
  if (m) return { birth_day: m[1]!, birth_month: m[2]!, birth_year: m[3]! };
  m = YMD.exec(value);
  if (m) return { birth_day: m[3]!, birth_month: m[2]!, birth_year: m[1]! };
  throw new ValidationError(field, `Invalid ${field} "${value}": must look like DD.MM.YYYY, DD/MM/YYYY or YYYY-MM-DD`);
}

/** A date or date-time in DD.MM.YYYY or DD/MM/YYYY (with an optional time) rewritten as YYYY-MM-DD; others as given. */
export function isoDate(raw: string): string {
  const value = raw.trim();
  const m = /^(\d{1,2})[./](\d{1,2})[./](\d{4})(.*)$/.exec(value);
  if (!m) return value;
  return `${m[3]}-${m[2]!.padStart(2, "0")}-${m[1]!.padStart(2, "0")}${m[4]}`;
}

/**
 * A number as a spreadsheet writes it ("1 250,50", "1\u00a0250.50", "1,250.50") rewritten with a decimal point and
 * no separators; anything else is returned as given, for the field's rule to refuse in its own words.
 */
export function plainNumber(raw: string): string {
  let value = raw.trim().replace(/[\s\u00a0\u202f]/g, "");
  if (/^[+-]?\d{1,3}(,\d{3})+\.\d+$/.test(value)) value = value.replace(/,/g, "");
  else if (/^[+-]?\d+,\d+$/.test(value)) value = value.replace(",", ".");
  return value;
}

const YES = new Set(["yes", "y", "да", "д", "true", "1", "subscribed", "+"]);
const NO = new Set(["no", "n", "нет", "н", "false", "0", "unsubscribed", "not_subscribed", "-"]);

/** A flag as written (yes/no, да/нет, 1/0, true/false) as 1 or 0; others as given for the rule to refuse. */
export function plainFlag(raw: string): string {
  const value = raw.trim().toLowerCase();
  if (YES.has(value)) return "1";
  if (NO.has(value)) return "0";
  return raw;
}

const MALE = new Set(["m", "м", "муж", "мужской", "male", "man"]);
const FEMALE = new Set(["f", "ж", "жен", "женский", "female", "woman"]);

/** A gender as written (М/Ж, муж/жен, male/female) as M or F; others as given for the rule to refuse. */
export function plainGender(raw: string): string {
  const value = raw.trim().toLowerCase().replace(/\.$/, "");
  if (MALE.has(value)) return "M";
  if (FEMALE.has(value)) return "F";
  return raw;
}

/** A whole name in English order split in two: the first word is the first name, the rest the last name. */
export function splitFullName(raw: string): { fname: string; lname: string } {
  const words = raw.trim().split(/\s+/).filter(Boolean);
  return { fname: words[0] ?? "", lname: words.slice(1).join(" ") };
}

/** A whole name in Russian order (ФИО): last name, first name, then the middle name (the rest). */
export function splitFio(raw: string): { lname: string; fname: string; mname: string } {
  const words = raw.trim().split(/\s+/).filter(Boolean);
  return { lname: words[0] ?? "", fname: words[1] ?? "", mname: words.slice(2).join(" ") };
}

/** Drops the apostrophe Shopify (and Excel users) put before numbers to keep them as text. */
export function stripApostrophe(raw: string): string {
  return raw.startsWith("'") ? raw.slice(1) : raw;
}

const NUMBER_FIELDS = new Set(["accumulated_sales", "bonus", "amount"]);
const FLAG_FIELDS = new Set(["send_push", "send_email", "send_sms", "overwrite"]);
const DATE_FIELDS = new Set(["register_date", "block_date", "activate_date"]);

/**
 * A record's values by field with the spreadsheet conventions undone: whole names and birth dates split, numbers,
 * flags, genders and dates in the API's writing. Throws a ValidationError naming the field of a value it cannot read.
 */
export function normaliseValues(values: Record<string, string>, options: { apostrophes?: boolean } = {}) {
  const out: Record<string, string> = {};
  for (const [field, raw0] of Object.entries(values)) {
    const raw = options.apostrophes ? stripApostrophe(raw0) : raw0;
    if (field === "birth_date") Object.assign(out, splitBirthDate(raw, "birth_date"));
    else if (field === "full_name") {
      const { fname, lname } = splitFullName(raw);
      if (values.fname === undefined) out.fname = fname;
      if (values.lname === undefined) out.lname = lname;
    } else if (field === "fio") {
      const name = splitFio(raw);
      for (const f of ["lname", "fname", "mname"] as const) if (values[f] === undefined) out[f] = name[f];
    } else if (NUMBER_FIELDS.has(field)) out[field] = plainNumber(raw);
    else if (FLAG_FIELDS.has(field)) out[field] = plainFlag(raw);
    else if (field === "gender") out[field] = plainGender(raw);
    else if (DATE_FIELDS.has(field)) out[field] = isoDate(raw);
    else out[field] = raw;
  }
  return out;
}
