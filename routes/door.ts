/**
 * The till's door: `GET /api/customer` with one point lookup (`id`, `phone`, `email`, `external_id`, `card_barcode`
 * or `uid`), the key and at most `format`, is answered here, before the router and its middleware, with the same
 * steps in the same order as the generic path: request id, format, the bad-key limit, the key, the key's rate limit,
 * the lookup, the reply and its log line. It is the product's hottest request, and going around the router's layers
 * saves about 13 us of CPU of the 62 a read by id cost over HTTP (docs/performance.md).
 *
 * Anything the door does not answer exactly as the generic path would goes there instead, untouched: another path,
 * method or parameter, a second lookup, a value its rule refuses, a missing, unknown or revoked key (the router
 * answers it 401 and counts it against the address), two different keys. A store error is answered here, 500 and an
 * error line in the log, as the router's error handler answers it.
 */
import type { Config } from "../config.ts";
import { AppError, AuthError } from "../domain/errors.ts";
import type { CustomerLookup } from "../usecases/customers.ts";
import type { KeyProver } from "./auth.ts";
import type { Caller, Format } from "./context.ts";
import type { PointLookups } from "./customer.ts";
import { errorLine, type LogSink, requestIdFor, requestLine } from "./log.ts";
import type { ApiLimits } from "./rate_limit.ts";
import { errorReply, internalErrorReply, render } from "./reply.ts";
import { keyOutsideBody, queryParams } from "./request.ts";

/** The one path the door serves, and the route it logs. */
const PATH = "/api/customer";
/** What the door's log lines say of the request besides its id and caller. */
const LOGGED = { route: PATH, method: "GET", path: PATH } as const;
/** The text log line's method and path (requestText). */
const HEAD = `${LOGGED.method} ${LOGGED.path}`;

/** A request's reply from the door, or null for a request the generic path must answer. */
export type Door = (req: Request, info: unknown) => Promise<Response | null> | null;

/** What the door is built from: the app's own limits, key checks and lookups, so both ways share their state. */
export interface DoorParts {
  config: Config;
  log: LogSink | undefined;
  limits: ApiLimits;
  prove: KeyProver;
  point: PointLookups;
}

/** The door of an app (see the module's comment). */
export function pointDoor(parts: DoorParts): Door {
  const { config, log, limits, prove, point } = parts;
  const json = config.logFormat === "json";
  /** The sink's way to take a text request line as numbers (LogSink), when it has one. */
  const request = log && !json ? log.request : undefined;

  /** Gives the reply its request id and logs it, as the request log middleware does. */
  const finish = (res: Response, id: string, caller: Caller | undefined, started: number): Response => {
    res.headers.set("X-Request-Id", id);
    if (log && config.logRequests) {
      const ms = performance.now() - started;
      if (request) request(HEAD, res.status, ms);
      else log(requestLine(json, { ...LOGGED, id, caller, status: res.status, ms }));
    }
    return res;
  };

  const take = async (req: Request, info: unknown, url: string): Promise<Response | null> => {
    const started = performance.now();
    let params: Record<string, string>;
    try {
      params = queryParams(url);
    } catch {
      return null;
    }
    let format: Format = "json";
    let lookup: CustomerLookup | undefined;
    for (const name in params) {
      if (name === "apikey") continue;
      if (name === "format") {
        const asked = params[name]!.toLowerCase();
        if (asked !== "json" && asked !== "xml") return null;
        format = asked;
        continue;
      }
      if (lookup !== undefined) return null;
      lookup = point.parse(name, params[name]!);
      if (lookup === undefined) return null;
    }
    if (lookup === undefined) return null;
    const headers = req.headers;
    let key: string | undefined;
    try {
      key = keyOutsideBody(
        headers.get("x-api-key") ?? undefined,
        headers.get("authorization") ?? undefined,
        params.apikey,
      );
    } catch {
      return null;
    }
    if (key === undefined) return null;
    const id = requestIdFor(headers.get("x-request-id"));
    const blocked = limits.badKeyRefusal(limits.addressOf(info), format);
    if (blocked) return finish(blocked, id, undefined, started);
    let caller: Caller | undefined;
    try {
      // A key in the cache is proved at once, without a turn of the event loop.
      const proved = prove(key);
      caller = proved instanceof Promise ? await proved : proved;
      const refused = limits.rateRefusal(caller, format);
      if (refused) return finish(refused, id, caller, started);
      return finish(render(format, await point.answer(caller, lookup)), id, caller, started);
    } catch (error) {
      // An unknown or revoked key: the router answers it 401 and counts it against the address.
      if (error instanceof AuthError) return null;
      if (error instanceof AppError) return finish(errorReply(format, error), id, caller, started);
      // A store error (or a bug), answered and logged as the router's error handler does.
      if (log) log(errorLine(json, { ...LOGGED, id, caller }, error));
      return finish(internalErrorReply(format), id, caller, started);
    }
  };

  return (req, info) => {
    if (req.method !== "GET") return null;
    const url = req.url;
    const query = url.indexOf("?");
    if (query === -1) return null;
    const path = url.indexOf("/", url.indexOf("//") + 2);
    if (path !== query - PATH.length || !url.startsWith(PATH, path)) return null;
    return take(req, info, url);
  };
}
