import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Config } from "../config.ts";
import type { AppEnv } from "./context.ts";

/** An incoming `X-Request-Id` we accept as it is: 1 to 128 letters, digits and `-_.:/+=@`. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** This process's random prefix of request ids; the rest is a counter, cheaper than a UUID per request. */
const ID_PREFIX = crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36).padStart(7, "0"), "");
let counter = 0;

/** Makes a request id unique across processes: the process prefix and a counter. */
export function newRequestId(): string {
  return `${ID_PREFIX}-${(++counter).toString(36)}`;
}

/** The route pattern a request matched (`/api/customer/update`), or null when only middleware matched it. */
function routeOf(c: Context<AppEnv>): string | null {
  const last = matchedRoutes(c).at(-1)?.path;
  return last === undefined || last.endsWith("*") ? null : last;
}

/** What a request log entry says about the caller, when the key was proven. */
function callerOf(c: Context<AppEnv>): { company: string | null; key_id: string | null } {
  const caller = c.get("caller");
  return { company: caller?.companyId ?? null, key_id: caller?.keyId ?? null };
}

/**
 * Gives every request an id (a sane incoming `X-Request-Id`, or a new one), returns it as `X-Request-Id` on
 * every reply, and logs one line per request when `config.logRequests`: the text line
 * `POST /api/customer/update 200 3.5ms`, or with `LOG_FORMAT=json` one JSON object with the request id,
 * company, key id, route, method, path, status and duration. Never the query string, a header or a body,
 * so never a key.
 */
export function requestLog(config: Config, log: ((line: string) => void) | undefined): MiddlewareHandler<AppEnv> {
  const json = config.logFormat === "json";
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header("x-request-id");
    const id = incoming !== undefined && SANE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
    c.set("requestId", id);
    try {
      await next();
    } finally {
      try {
        c.res.headers.set("X-Request-Id", id);
      } catch {
        // A reply with immutable headers (a proxied one, say) is copied once to carry the id.
        c.res = new Response(c.res.body, c.res);
        c.res.headers.set("X-Request-Id", id);
      }
      if (log && config.logRequests) {
        const ms = performance.now() - started;
        if (json) {
          log(JSON.stringify({
            time: new Date().toISOString(),
            level: "info",
            request_id: id,
            ...callerOf(c),
            route: routeOf(c),
            method: c.req.method,
            path: c.req.path,
            status: c.res.status,
            duration_ms: Math.round(ms * 10) / 10,
          }));
        } else {
          log(`${c.req.method} ${c.req.path} ${c.res.status} ${ms.toFixed(1)}ms`);
        }
      }
    }
  };
}

/** Logs an unexpected error with its stack: a text line, or with `LOG_FORMAT=json` one JSON object. */
export function logError(
  c: Context<AppEnv>,
  error: unknown,
  config: Config,
  log: ((line: string) => void) | undefined,
): void {
  if (!log) return;
  const stack = error instanceof Error ? error.stack ?? String(error) : String(error);
  if (config.logFormat === "json") {
    log(JSON.stringify({
      time: new Date().toISOString(),
      level: "error",
      request_id: c.get("requestId") ?? null,
      ...callerOf(c),
      route: routeOf(c),
      method: c.req.method,
      path: c.req.path,
      error: error instanceof Error ? error.message : String(error),
      stack,
    }));
  } else {
    log(`ERROR ${c.req.method} ${c.req.path}: ${stack}`);
  }
}

let isoAt = NaN;
let isoText = "";

/** `new Date().toISOString()`, formatted once per millisecond: a busy service logs many lines in one. */
function isoNow(): string {
  const now = Date.now();
  if (now !== isoAt) {
    isoAt = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

/**
 * Where log lines go in a running service: stdout, each text line after its time, and in JSON format every
 * line one JSON object (plain messages wrapped as `{"time","level","message"}`).
 */
export function logSink(config: Config, write: (line: string) => void): (line: string) => void {
  if (config.logFormat !== "json") return (line) => write(`${isoNow()} ${line}`);
  return (line) => {
    if (line.startsWith("{")) return write(line);
    const level = /^(WARN|ERROR) /.exec(line)?.[1];
    write(JSON.stringify({
      time: new Date().toISOString(),
      level: level ? level.toLowerCase() : "info",
      message: level ? line.slice(level.length + 1) : line,
    }));
  };
}

/** How long a log line may wait for the lines after it, ms: one write per interval instead of one per line. */
const FLUSH_MS = 20;
/** How many bytes of log lines are held before a write is started at once rather than after FLUSH_MS. */
const FLUSH_BYTES = 64 * 1024;
/** Most bytes held while the output is slow; lines past it are dropped and counted, never blocking a request. */
const MAX_HELD_BYTES = 8 * 1024 * 1024;

/** A writer that batches lines and writes them asynchronously; `flushSync` empties it on exit. */
export interface BufferedWriter {
  /** Queues one line (a newline is added). */
  write: (line: string) => void;
  /** Writes whatever is queued, synchronously (on exit). */
  flushSync: () => void;
}

/**
 * Batches log lines and writes them with one asynchronous write per 20 ms (or per 64 KiB), so a
 * request never waits for a write to stdout: a line per `console.log` cost about 20 us of the request. If the
 * output cannot keep up, at most 8 MiB are held; further lines are dropped and a warning says how many.
 */
export function bufferedWriter(out: {
  write: (bytes: Uint8Array) => Promise<number>;
  writeSync: (bytes: Uint8Array) => number;
}): BufferedWriter {
  const encoder = new TextEncoder();
  let held: string[] = [];
  let heldBytes = 0;
  let dropped = 0;
  let writing = false;
  let scheduled = false;

  const take = (): Uint8Array | null => {
    if (dropped > 0) {
      held.push(`${new Date().toISOString()} WARN ${dropped} log lines dropped: the output was too slow`);
      dropped = 0;
    }
    if (held.length === 0) return null;
    const bytes = encoder.encode(held.join("\n") + "\n");
    held = [];
    heldBytes = 0;
    return bytes;
  };
  const writeAll = async (bytes: Uint8Array) => {
    let at = 0;
    while (at < bytes.length) at += await out.write(bytes.subarray(at));
  };
  const drain = async () => {
    scheduled = false;
    if (writing) return;
    writing = true;
    try {
      for (let bytes = take(); bytes; bytes = take()) await writeAll(bytes);
    } catch {
      // The output is gone (a closed pipe): nothing more can be logged.
      held = [];
      heldBytes = 0;
    } finally {
      writing = false;
    }
  };
  return {
    write(line) {
      if (heldBytes > MAX_HELD_BYTES) {
        dropped++;
        return;
      }
      held.push(line);
      heldBytes += line.length + 1;
      if (writing || scheduled) return;
      scheduled = true;
      if (heldBytes >= FLUSH_BYTES) queueMicrotask(drain);
      else setTimeout(drain, FLUSH_MS);
    },
    flushSync() {
      const bytes = take();
      if (!bytes) return;
      let at = 0;
      try {
        while (at < bytes.length) at += out.writeSync(bytes.subarray(at));
      } catch {
        // The output is gone.
      }
    },
  };
}
