import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "../config.ts";
import { AppError, PayloadTooLargeError, ValidationError } from "../domain/errors.ts";
import { createStore, type Store } from "../storage/store.ts";
import { keyProver, proveCaller } from "./auth.ts";
import { pointDoor } from "./door.ts";
import type { AppEnv, Deps, Format } from "./context.ts";
import { bonusesExtra, bonusRoutes } from "./bonus.ts";
import { cardRoutes, cardsExtra } from "./card.ts";
import { cardLookupRoutes } from "./card_lookup.ts";
import { customerRoutes } from "./customer.ts";
import { methodRefusal } from "./methods.ts";
import { directoryRoutes, type DirectoryShape } from "./directory.ts";
import { historyRoutes } from "./history.ts";
import { purchaseRoutes } from "./purchase.ts";
import { openApiRoutes } from "./openapi.ts";
import { healthRoutes } from "./health.ts";
import { connectionRoutes } from "./connection.ts";
import { webhookRoutes } from "./webhooks.ts";
import { logError, type LogSink, requestLog } from "./log.ts";
import { apiGuard, ApiLimits } from "./rate_limit.ts";
import { errorReply, internalErrorReply, render } from "./reply.ts";
import { IMPORT_PATH, importRoutes } from "./import.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS } from "../domain/program_settings.ts";
import { adminRoutes, isAdminPath } from "./admin/mod.tsx";

/** Customer groups on the wire: `GET /api/customergroup`. */
const GROUPS: DirectoryShape = {
  kind: "groups",
  type: "group",
  idField: "group_id",
  nameField: "group_name",
  settings: GROUP_SETTINGS,
};
/** Card types on the wire: `GET /api/cardtype`. */
const CARD_TYPES: DirectoryShape = {
  kind: "card_types",
  type: "card_type",
  idField: "type_id",
  nameField: "type_name",
};
/** Bonus programs on the wire: `GET /api/bonusprogram`. */
const BONUS_PROGRAMS: DirectoryShape = {
  kind: "bonus_programs",
  type: "bonus_program",
  idField: "id",
  nameField: "name",
  settings: PROGRAM_SETTINGS,
};

/** A Host header as RFC 9110 has it: a host name, IPv4 or [IPv6] address, and an optional port. */
const SANE_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

/** What the app is built from. */
export interface AppOptions {
  /** The store; the app never opens or closes it. */
  kv: Deno.Kv;
  /** The store object over `kv` (default: made here with `now` as its clock); share one per process. */
  store?: Store;
  /** Settings (see config.ts). */
  config: Config;
  /** Clock, epoch ms; defaults to Date.now. */
  now?: () => number;
  /** Where log lines go: one per request (when config.logRequests) and every internal error (LogSink). */
  log?: LogSink;
  /** Whether point lookups take the door (routes/door.ts; default true); false answers them by the generic path. */
  fastPaths?: boolean;
}

/**
 * Builds the HTTP app over a store: routes, authentication, rate limits, `/health`, the error envelope and
 * request logging.
 */
export function createApp(options: AppOptions): Hono<AppEnv> {
  const store = options.store ?? createStore(options.kv, {
    clock: options.now ?? Date.now,
    auditRetentionDays: options.config.auditRetentionDays,
  });
  const deps: Deps = { store, config: options.config, kv: store.kv, now: store.clock };
  const app = new Hono<AppEnv>();
  const log = options.log;
  const handleError = (error: Error, c: Context<AppEnv>): Response => {
    const format: Format = c.get("format") ?? "json";
    if (error instanceof AppError) return errorReply(format, error);
    logError(c, error, options.config, log);
    return internalErrorReply(format);
  };

  const limits = new ApiLimits(deps);
  const prove = keyProver(deps);
  const customers = customerRoutes(deps, { cards: cardsExtra, bonuses: bonusesExtra });

  app.use(requestLog(options.config, log));
  // Every request's checks before the key, in one middleware (one layer instead of three): the format, then the
  // method (a method an endpoint does not take, HEAD on a write, is 405), then the body's size.
  const methodCheck = methodRefusal(app);
  const appBodyLimit = bodyLimit({
    maxSize: options.config.maxBodyBytes,
    onError: () => {
      throw new PayloadTooLargeError(`Request body is too large: at most ${options.config.maxBodyBytes} bytes`);
    },
  });
  app.use(async (c, next) => {
    const format = c.req.query("format")?.toLowerCase();
    c.set("format", format === "xml" ? "xml" : "json");
    if (format !== undefined && format !== "json" && format !== "xml") {
      // Answered here rather than thrown, so that the log line sees the real status.
      const error = new ValidationError("format", `Invalid format "${format}": must be json or xml`);
      c.res = errorReply("json", error);
      return;
    }
    const refused = methodCheck(c);
    if (refused) {
      c.res = refused;
      return;
    }
    // The back office sets its own (smaller) limit for forms and answers its errors in HTML; the bulk import
    // endpoint has its own, larger limit (IMPORT_MAX_BODY_BYTES) and webhook deliveries theirs
    // (WEBHOOK_MAX_BODY_BYTES), each applied by its route. A request without a body has nothing to limit.
    const path = c.req.path;
    if (!c.req.raw.body || isAdminPath(path) || path === IMPORT_PATH || path.startsWith("/webhooks/")) {
      return await next();
    }
    return await appBodyLimit(c, next);
  });
  // The bad-key limit, authentication and the key's rate limit, in that order, in one middleware.
  app.use("/api/*", apiGuard(limits, proveCaller(deps, prove), handleError));

  app.route("/health", healthRoutes(deps));

  app.route("/api/customer", customers.routes);
  app.route("/api/customer", cardRoutes(deps));
  app.route("/api/customer", bonusRoutes(deps));
  app.route("/api", historyRoutes(deps));
  app.route("/api/purchase", purchaseRoutes(deps));
  app.route("/api/card", cardLookupRoutes(deps));
  app.route("/api/customergroup", directoryRoutes(deps, GROUPS));
  app.route("/api/cardtype", directoryRoutes(deps, CARD_TYPES));
  app.route("/api/bonusprogram", directoryRoutes(deps, BONUS_PROGRAMS));
  app.route(IMPORT_PATH, importRoutes(deps));
  // The back office is a separate app (HTML pages, sessions): handed the request whole, outside the API document.
  const backOffice = adminRoutes(deps, { log });
  app.all("/admin", (c) => backOffice.fetch(c.req.raw, c.env));
  app.all("/admin/*", (c) => backOffice.fetch(c.req.raw, c.env));
  app.route("/api/connection", connectionRoutes(deps));
  app.route("/webhooks", webhookRoutes(deps, log));
  app.route("/", openApiRoutes(app));

  app.notFound((c) => render(c.get("format") ?? "json", { success: 0, info: `No such endpoint: ${c.req.path}` }, 404));
  app.onError(handleError);
  const routed = app.fetch;
  const door = options.fastPaths === false
    ? null
    : pointDoor({ config: options.config, log, limits, prove, point: customers.point });
  app.fetch = (req, env, ctx) => {
    // The runtime builds the request's URL from the Host header and the target: a Host holding a "/" or "?" would
    // become part of the path or query (GET /health answered as a customer lookup), so it is refused first.
    const host = req.headers.get("host");
    if (host !== null && !SANE_HOST.test(host)) {
      return errorReply("json", new ValidationError("host", "Invalid Host header: must be a host name and port"));
    }
    const taken = door === null ? null : door(req, env);
    return taken === null ? routed(req, env, ctx) : taken.then((res) => res ?? routed(req, env, ctx));
  };
  return app;
}
