import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Config } from "../config.ts";
import type { AppEnv, Caller } from "./context.ts";

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

function callerFields(caller: Caller | undefined): { company: string | null; key_id: string | null } {
  return { company: caller?.companyId ?? null, key_id: caller?.keyId ?? null };
}

/** The id a request goes by: its incoming `X-Request-Id` when that is sane, else a new one. */
export function requestIdFor(incoming: string | null | undefined): string {
  return incoming != null && SANE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
}

/** What one request's log line says. */
export interface RequestRecord {
  id: string;
  caller: Caller | undefined;
  /** The route pattern it matched, or null. */
  route: string | null;
  method: string;
  path: string;
  status: number;
  /** How long it took, ms. */
  ms: number;
}

/**
 * A request's log line: the text `POST /api/customer/update 200 3.5ms`, or (`json`) one JSON object with the request
 * id, company, key id, route, method, path, status and duration. Never the query string, a header or a body, so
 * never a key.
 */
export function requestLine(json: boolean, r: RequestRecord): string {
  if (!json) return requestText(`${r.method} ${r.path}`, r.status, r.ms);
  return JSON.stringify({
    time: new Date().toISOString(),
    level: "info",
    request_id: r.id,
    ...callerFields(r.caller),
    route: r.route,
    method: r.method,
    path: r.path,
    status: r.status,
    duration_ms: Math.round(r.ms * 10) / 10,
  });
}

/** A request's text line after its method and path (`head`): `GET /api/customer 200 3.5ms`. */
export function requestText(head: string, status: number, ms: number): string {
  return `${head} ${status} ${ms.toFixed(1)}ms`;
}

/**
 * Gives every request an id (a sane incoming `X-Request-Id`, or a new one), returns it as `X-Request-Id` on
 * every reply, and logs one line per request (`requestLine`) when `config.logRequests`.
 */
export function requestLog(config: Config, log: ((line: string) => void) | undefined): MiddlewareHandler<AppEnv> {
  const json = config.logFormat === "json";
  return async (c, next) => {
    const started = performance.now();
    const id = requestIdFor(c.req.header("x-request-id"));
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
        log(requestLine(json, {
          id,
          caller: c.get("caller"),
          route: json ? routeOf(c) : null,
          method: c.req.method,
          path: c.req.path,
          status: c.res.status,
          ms: performance.now() - started,
        }));
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
  log(errorLine(config.logFormat === "json", {
    id: c.get("requestId") ?? null,
    caller: c.get("caller"),
    route: routeOf(c),
    method: c.req.method,
    path: c.req.path,
  }, error));
}

/** The log line of an unexpected error in a request (logError). */
export function errorLine(
  json: boolean,
  r: Omit<RequestRecord, "id" | "status" | "ms"> & { id: string | null },
  error: unknown,
): string {
  const stack = error instanceof Error ? error.stack ?? String(error) : String(error);
  if (!json) return `ERROR ${r.method} ${r.path}: ${stack}`;
  return JSON.stringify({
    time: new Date().toISOString(),
    level: "error",
    request_id: r.id,
    ...callerFields(r.caller),
    route: r.route,
    method: r.method,
    path: r.path,
    error: error instanceof Error ? error.message : String(error),
    stack,
  });
}

let isoMs = NaN;
let isoText = "";

/** `new Date(ms).toISOString()`, formatted once per millisecond: a busy service logs many lines in one. */
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** A line of the text format: the line after its time (`ms`, epoch milliseconds). */
export function textLine(ms: number, line: string): string {
  return `${isoAt(ms)} ${line}`;
}

/**
 * A log sink (logSink): a function taking a line. In the text format it may also take a request's line as its parts
 * (`request`: the method and path, the status, the duration), queued as numbers and formatted when its batch is
 * written, so that a request pays for no string; the line is the one `requestLine` and the sink would have made.
 */
export type LogSink = ((line: string) => void) & {
  request?: (head: string, status: number, ms: number) => void;
};

/**
 * Where log lines go in a running service: stdout, each text line after its time, and in JSON format every
 * line one JSON object (plain messages wrapped as `{"time","level","message"}`). Given a BufferedWriter, text-format
 * request lines may go to it as their parts (LogSink's `request`).
 */
export function logSink(config: Config, to: ((line: string) => void) | BufferedWriter): LogSink {
  const write = typeof to === "function" ? to : to.write;
  if (config.logFormat !== "json") {
    const sink: LogSink = (line) => write(textLine(Date.now(), line));
    if (typeof to !== "function") sink.request = to.textRequest;
    return sink;
  }
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
  /**
   * Queues a request's line of the text format (`textLine` of `requestText`), timed now, as numbers: it is formatted
   * when its batch is written, in its place among the other lines.
   */
  textRequest: (head: string, status: number, ms: number) => void;
  /** Writes whatever is queued, synchronously (on exit). */
  flushSync: () => void;
}

/** Request lines (`textRequest`) held as numbers before they are formatted together. */
const RECORDS = 512;

/**
 * Batches log lines and writes them with one asynchronous write per 20 ms (or per 64 KiB), so a
 * request never waits for a write to stdout: a line per `console.log` cost about 20 us of the request. Lines are
 * encoded at once into 64 KiB chunks, so what waits for the write is a few byte arrays, not a string per line that
 * the garbage collector would copy while it waits. If the output cannot keep up, at most 8 MiB are held; further
 * lines are dropped and a warning says how many.
 *
 * Request lines of the text format (`textRequest`) are held as numbers in typed arrays (up to 512) and formatted
 * together before the next line or write, so a request pays for none of its line's strings and calls between its
 * reply and the socket (docs/performance.md, "The door's log lines are held as numbers").
 */
export function bufferedWriter(out: {
  write: (bytes: Uint8Array) => Promise<number>;
  writeSync: (bytes: Uint8Array) => number;
}, options: { now?: () => number } = {}): BufferedWriter {
  const now = options.now ?? Date.now;
  const encoder = new TextEncoder();
  /** Request lines waiting to be formatted: when, the method and path, the status and the duration. */
  const recordAt = new Float64Array(RECORDS);
  const recordHead: string[] = new Array(RECORDS).fill("");
  const recordStatus = new Uint16Array(RECORDS);
  const recordMs = new Float64Array(RECORDS);
  let records = 0;
  /** Chunks filled and waiting for the write. */
  let full: Uint8Array[] = [];
  /** The chunk being filled, and how much of it is. */
  let chunk = new Uint8Array(FLUSH_BYTES);
  let used = 0;
  let heldBytes = 0;
  let dropped = 0;
  let writing = false;
  let scheduled = false;

  /** Formats the request lines held as numbers into the chunks, in the order they came. */
  const format = () => {
    const n = records;
    records = 0;
    for (let i = 0; i < n; i++) {
      put(textLine(recordAt[i]!, requestText(recordHead[i]!, recordStatus[i]!, recordMs[i]!)));
    }
  };
  /** Encodes one line and its newline into the current chunk, starting a new chunk when it may not fit. */
  const put = (line: string) => {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    const most = line.length * 3 + 1;
    if (used + most > chunk.length) {
      if (used > 0) full.push(chunk.subarray(0, used));
      chunk = new Uint8Array(Math.max(FLUSH_BYTES, most));
      used = 0;
    }
    const { written } = encoder.encodeInto(line, used === 0 ? chunk : chunk.subarray(used));
    used += written;
    chunk[used++] = 10;
    heldBytes += written + 1;
  };
  const take = (): Uint8Array[] => {
    if (records > 0) format();
    if (dropped > 0) {
      put(`${new Date().toISOString()} WARN ${dropped} log lines dropped: the output was too slow`);
      dropped = 0;
    }
    if (used > 0) {
      full.push(chunk.subarray(0, used));
      chunk = new Uint8Array(FLUSH_BYTES);
      used = 0;
    }
    const chunks = full;
    full = [];
    heldBytes = 0;
    return chunks;
  };
  /**
   * Chunks taken for the asynchronous write, in order; the first is being written while `writing`. They stay here
   * until written, so that `flushSync` (an exit during a write) writes those not yet begun before the newer lines.
   */
  const taken: Uint8Array[] = [];
  const drain = async () => {
    scheduled = false;
    if (writing) return;
    writing = true;
    try {
      // What came in while a write was under way is written at once only when it fills a chunk; else it waits for
      // the next interval. (Writing it at once made one write per few requests under load: each an async op with a
      // thread hop, about 4 us of CPU per request.)
      do {
        taken.push(...take());
        while (taken.length > 0) {
          const bytes = taken[0]!;
          let at = 0;
          while (at < bytes.length) at += await out.write(bytes.subarray(at));
          taken.shift();
        }
      } while (heldBytes >= FLUSH_BYTES);
    } catch {
      // The output is gone (a closed pipe): nothing more can be logged.
      taken.length = 0;
      full = [];
      used = 0;
      heldBytes = 0;
      records = 0;
    } finally {
      writing = false;
      if ((heldBytes > 0 || records > 0) && !scheduled) {
        scheduled = true;
        setTimeout(drain, FLUSH_MS);
      }
    }
  };
  /** Has the queued lines written: at once when a chunk is full, else after FLUSH_MS. */
  const schedule = () => {
    if (writing || scheduled) return;
    scheduled = true;
    if (heldBytes >= FLUSH_BYTES) queueMicrotask(drain);
    else setTimeout(drain, FLUSH_MS);
  };
  return {
    write(line) {
      if (heldBytes > MAX_HELD_BYTES) {
        dropped++;
        return;
      }
      if (records > 0) format();
      put(line);
      schedule();
    },
    textRequest(head, status, ms) {
      if (heldBytes > MAX_HELD_BYTES) {
        dropped++;
        return;
      }
      recordAt[records] = now();
      recordHead[records] = head;
      recordStatus[records] = status;
      recordMs[records] = ms;
      if (++records === RECORDS) format();
      schedule();
    },
    flushSync() {
      // A write under way keeps its chunk (it may yet land, and must not land twice); the chunks taken after it and
      // not yet begun go first, then the lines held since.
      const waiting = writing ? taken.splice(1) : taken.splice(0);
      for (const bytes of [...waiting, ...take()]) {
        let at = 0;
        try {
          while (at < bytes.length) at += out.writeSync(bytes.subarray(at));
        } catch {
          return; // The output is gone.
        }
      }
    },
  };
}
