import { z } from "zod";
import { quote, ValidationError } from "./errors.ts";
import { type Field, field } from "./fields.ts";

/** Largest accepted magnitude in minor units (100 billion in major units), well inside exact integers. */
export const MAX_MINOR = 10 ** 13;

const AMOUNT = /^([+-]?)(\d+)(?:[.,](\d+))?$/;

/** Parses an exact decimal amount ("123.45", "12,5") into integer minor units, without binary float arithmetic. */
export function parseMoney(raw: string, field: string, opts: { allowNegative?: boolean } = {}): number {
  const bad = (reason: string) => new ValidationError(field, `Invalid ${field} "${quote(raw)}": ${reason}`);
  const m = AMOUNT.exec(raw.trim());
  if (!m) throw bad("must be a number like 123.45");
  const [, sign, whole = "", frac = ""] = m;
  if (frac.length > 2) throw bad("at most 2 decimal places");
  // Decimal-string-to-integer conversions only: exact, as every value checked below is far under 2^53.
  const units = Number(whole);
  if (units > MAX_MINOR / 100) throw bad("too large");
  const minor = units * 100 + Number(frac.padEnd(2, "0"));
  if (minor > MAX_MINOR) throw bad("too large");
  if (minor === 0) return 0;
  if (sign !== "-") return minor;
  if (!opts.allowNegative) throw bad("must not be negative");
  return -minor;
}

/** An amount parameter that may not be negative, in minor units; empty means null. */
export const moneyField: Field<number | null> = field(
  (raw, name) => raw.trim() === "" ? null : parseMoney(raw, name),
  {
    wire: z.number().min(0).max(MAX_MINOR / 100).multipleOf(0.01),
    description: 'A decimal with at most 2 places, "12,5" too.',
    example: "15200.50",
  },
);

/** Writes integer minor units as a decimal string ("15200", "15200.50", "-3.10"), exactly. */
export function formatMoney(minor: number): string {
  if (!Number.isSafeInteger(minor)) throw new RangeError(`Not an amount in minor units: ${minor}`);
  const digits = String(Math.abs(minor)).padStart(3, "0");
  const cents = digits.slice(-2);
  const whole = digits.slice(0, -2);
  return (minor < 0 ? "-" : "") + (cents === "00" ? whole : `${whole}.${cents}`);
}

/** Writes minor units with exactly two decimals ("50.00", "-0.10"), as messages write points and money. */
export function formatPoints(minor: number): string {
  if (!Number.isSafeInteger(minor)) throw new RangeError(`Not an amount in minor units: ${minor}`);
  const digits = String(Math.abs(minor)).padStart(3, "0");
  return `${minor < 0 ? "-" : ""}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/** Minor units as a JSON number of major units (1520050 -> 15200.5), exact by going through the decimal string. */
export function moneyToNumber(minor: number): number {
  return Number(formatMoney(minor));
}
