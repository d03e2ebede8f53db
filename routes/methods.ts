import type { Context, Hono } from "hono";
import { requireWrite } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { render } from "./reply.ts";

/** Most routed paths whose methods are remembered (every route of the app is far fewer). */
const MAX_KNOWN_PATHS = 1000;

/** The order methods are listed in an `Allow` header. */
const ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

function byOrder(a: string, b: string): number {
  const ia = ORDER.indexOf(a);
  const ib = ORDER.indexOf(b);
  return (ia === -1 ? ORDER.length : ia) - (ib === -1 ? ORDER.length : ib) || a.localeCompare(b);
}

/**
 * The 405 reply (with an `Allow` header) for a request whose method its path does not take, else undefined; run
 * before authentication or the body, among the other steps of one middleware. The methods come from the app's own
 * routes (so every endpoint added later is covered): those registered for the path, plus HEAD for a read-only path,
 * one taken by GET alone without `requireWrite`. Hono answers HEAD by running the GET handler, which must never
 * happen for a write. Routes for all methods (middleware) do not count; a path no route takes falls through to 404.
 */
export function methodRefusal(app: Hono<AppEnv>): (c: Context<AppEnv>) => Response | undefined {
  let methods: string[] | undefined;
  // The methods of each routed path, worked out once per path: the routes never change after start. Only paths
  // some route takes are kept, so their number is bounded by the app's routes, not by what clients send.
  const known = new Map<string, Set<string>>();
  const takenBy = (path: string): Set<string> => {
    const hit = known.get(path);
    if (hit) return hit;
    // Read on first use, when every route is registered.
    methods ??= [...new Set(app.routes.map((r) => r.method.toUpperCase()))].filter((m) => m !== "ALL");
    const taken = new Set<string>();
    let writes = false;
    for (const method of methods) {
      for (const [[handler, route]] of app.router.match(method, path)[0]) {
        if (route.method.toUpperCase() !== method) continue;
        taken.add(method);
        if (handler === requireWrite) writes = true;
      }
    }
    if (!writes && taken.size === 1 && taken.has("GET")) taken.add("HEAD");
    if (taken.size > 0 && known.size < MAX_KNOWN_PATHS) known.set(path, taken);
    return taken;
  };
  return (c) => {
    const path = c.req.path;
    const taken = takenBy(path);
    if (taken.size === 0) return undefined;
    const method = c.req.method.toUpperCase();
    if (taken.has(method)) return undefined;
    const allow = [...taken].sort(byOrder);
    const use = allow.length === 1 ? allow[0] : `${allow.slice(0, -1).join(", ")} or ${allow.at(-1)}`;
    const res = render(c.get("format") ?? "json", {
      success: 0,
      info: `Method ${method} is not allowed for ${path}: use ${use}`,
    }, 405);
    res.headers.set("Allow", allow.join(", "));
    return res;
  };
}
