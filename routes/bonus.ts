import { Hono } from "hono";
import type { AppEnv, Deps } from "./context.ts";
import type { CustomerExtra } from "./customer.ts";

/** Bonus endpoints under /api/customer (updateBonus, bonusHistory). Placeholder until issue 4 lands. */
export function bonusRoutes(_deps: Deps) {
  return new Hono<AppEnv>();
}

/** The `bonuses` element of customer replies. Placeholder until issue 4 lands. */
export const bonusesExtra: CustomerExtra = () => Promise.resolve(new Map());
