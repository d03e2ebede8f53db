/**
 * The settings of bonus programs (accrual, spending limit, pending and lifetime days, rounding) and of customer
 * groups as tiers (their own accrual, the sales that reach them), as parameters, stored values and reply fields.
 * Stored: percentages in hundredths of a percent, money in minor units, null for "not set" (the default).
 */
import { z } from "zod";
import { type Field, field, type FieldRule, int, invalid } from "./fields.ts";
import { moneyField, moneyToNumber, parseMoney } from "./money.ts";
import { DEFAULT_RULES, type PointsRules, type Rounding } from "./points.ts";

/** Stored settings of one directory entry, by parameter name. */
export type Settings = Record<string, number | string | null>;

/** A percentage 0..100 with up to two decimals, stored in hundredths of a percent; empty resets it. */
export const percentField: Field<number | null> = field((raw, name) => {
  if (raw.trim() === "") return null;
  const bp = parseMoney(raw, name);
  if (bp > 10_000) throw invalid(name, raw, "must be from 0 to 100");
  return bp;
}, {
  wire: z.number().min(0).max(100).multipleOf(0.01),
  description: "A percentage from 0 to 100 with at most 2 decimals; empty resets it to the default.",
  example: "3.5",
});

const ROUNDINGS = ["down", "nearest", "up"] as const;

/** How accrual is rounded to 0.01: down (default), nearest (half up) or up; empty resets it. */
export const roundingField: Field<Rounding | null> = field((raw, name) => {
  const value = raw.trim().toLowerCase();
  if (value === "") return null;
  if (!(ROUNDINGS as readonly string[]).includes(value)) throw invalid(name, raw, "must be down, nearest or up");
  return value as Rounding;
}, { wire: z.enum(ROUNDINGS), description: "How accrual is rounded to 0.01.", example: "down" });

/** The settings a bonus program takes, with their parameter rules. */
export const PROGRAM_SETTINGS = {
  accrual_percent: percentField.describe("Points accrued per 100 of money paid, after points spent (default 0)."),
  max_spend_percent: percentField.describe("Share of an order's amount payable with points (default 100)."),
  pending_days: int(0, 3650).describe("Days before purchase points become spendable (default 0: at once)."),
  lifetime_days: int(1, 36500).describe("Days points last once spendable (default empty: for ever)."),
  rounding: roundingField,
} satisfies Record<string, FieldRule>;

/** The settings a customer group takes as a tier. */
export const GROUP_SETTINGS = {
  accrual_percent: percentField.describe("Overrides the program's accrual_percent for members (default empty)."),
  min_accumulated_sales: moneyField.describe(
    "Makes the group a tier reached at these accumulated sales (default empty: not a tier).",
  ),
} satisfies Record<string, FieldRule>;

/** Fields whose stored value is hundredths (percentages, money): shown as decimals. */
const DECIMAL = new Set(["accrual_percent", "max_spend_percent", "min_accumulated_sales"]);

/** The reply fields of settings: decimals for percentages and money, whole numbers for days, null when not set. */
export function settingsView(
  names: readonly string[],
  settings: Settings | undefined,
): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {};
  for (const name of names) {
    const value = settings?.[name] ?? null;
    out[name] = typeof value === "number" && DECIMAL.has(name) ? moneyToNumber(value) : value;
  }
  return out;
}

/** The reply schemas of settings fields, for the OpenAPI document. */
export function settingsReplySchema(names: readonly string[]): Record<string, z.ZodType> {
  const out: Record<string, z.ZodType> = {};
  for (const name of names) {
    out[name] = name === "rounding" ? z.enum(ROUNDINGS).nullable() : z.number().nullable();
  }
  return out;
}

/** A program's rules from its stored settings (unset ones take the defaults). */
export function rulesOf(settings: Settings | undefined): PointsRules {
  const n = (name: string) => typeof settings?.[name] === "number" ? settings[name] as number : null;
  return {
    accrualBp: n("accrual_percent") ?? DEFAULT_RULES.accrualBp,
    maxSpendBp: n("max_spend_percent") ?? DEFAULT_RULES.maxSpendBp,
    pendingDays: n("pending_days") ?? DEFAULT_RULES.pendingDays,
    lifetimeDays: n("lifetime_days") ?? DEFAULT_RULES.lifetimeDays,
    rounding: (settings?.rounding as Rounding | null | undefined) ?? DEFAULT_RULES.rounding,
  };
}

/** A group's own accrual rate (hundredths of a percent), or null to use the program's. */
export function groupAccrualBp(settings: Settings | undefined): number | null {
  const v = settings?.accrual_percent;
  return typeof v === "number" ? v : null;
}

/** The accumulated sales that reach a group as a tier, or null when it is not a tier. */
export function tierMinSales(settings: Settings | undefined): number | null {
  const v = settings?.min_accumulated_sales;
  return typeof v === "number" ? v : null;
}
