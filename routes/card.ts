import { Hono } from "hono";
import type { AppEnv, Deps } from "./context.ts";
import type { CustomerExtra } from "./customer.ts";

/** Card endpoints under /api/customer (updateCard, insertCard, deleteCard). Placeholder until issue 3 lands. */
export function cardRoutes(_deps: Deps) {
  return new Hono<AppEnv>();
}

/** The `cards` element of customer replies. Placeholder until issue 3 lands. */
export const cardsExtra: CustomerExtra = () => Promise.resolve(new Map());
