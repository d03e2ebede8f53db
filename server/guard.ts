/**
 * A connection guard in front of Deno's HTTP server: our own accept loop over `Deno.listen` that caps open
 * connections, closes connections that stay silent, send their headers or body too slowly or sit idle, and
 * survives accept errors such as "Too many open files" instead of letting them end the process. Each accepted
 * connection is served by the same HTTP implementation `Deno.serve` uses (hyper), one connection at a time.
 */

/** Settings of the guard; every time is in milliseconds. */
export interface GuardOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0 picks a free one). */
  port: number;
  /** Sets SO_REUSEPORT so that several processes share the port (Linux balances connections among them). */
  reusePort?: boolean;
  /** Most connections open at once; at the cap the oldest idle one is closed, or the newcomer gets 503. */
  maxConnections: number;
  /** A new connection must send complete request headers within this time. */
  headerTimeoutMs: number;
  /** Once its headers are in, a request's body must arrive and its reply be ready within this time. */
  bodyTimeoutMs: number;
  /** A kept-alive connection with no request in progress is closed after this time. */
  idleTimeoutMs: number;
  /** Where guard events (refusals, accept errors) are logged; repeated events are summed up, at most once a second. */
  log: (line: string) => void;
  /** Called once the listener is bound. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** Counters of what the guard did, for tests and logs. */
export interface GuardStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections closed by a timeout, by kind. */
  timedOut: { header: number; body: number; idle: number };
  /** Idle connections closed to make room for a new one at the cap. */
  evicted: number;
  /** Connections answered 503 because every open one was busy with a request. */
  refused: number;
  /** Accept calls that failed (for example with "Too many open files"). */
  acceptErrors: number;
}

/** A running guarded server. */
export interface GuardedServer {
  addr: Deno.NetAddr;
  /** Settles once the server has stopped. */
  finished: Promise<void>;
  /** Stops accepting, closes idle connections and waits (at most `graceMs`) for requests in progress. */
  shutdown: (graceMs?: number) => Promise<void>;
  stats: () => GuardStats;
}

/** Serves one accepted connection with Deno's own HTTP server; not in Deno's public types, so looked up. */
type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: Deno.ServeHandler,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => { finished: Promise<void> };

/** Deno's per-connection server (`Deno.serve`'s own code path), or undefined when this Deno lacks it. */
export function serveOnConnection(): ServeOnConnection | undefined {
  const deno = Deno as unknown as Record<symbol, Record<string, unknown> | undefined>;
  const internal = (Deno as unknown as { internal?: symbol }).internal;
  const fn = internal === undefined ? undefined : deno[internal]?.serveHttpOnConnection;
  return typeof fn === "function" ? fn as ServeOnConnection : undefined;
}

interface Connection {
  conn: Deno.Conn;
  abort: AbortController;
  /** Requests whose reply is not yet fully sent. */
  inflight: number;
  /** Requests whose handler has not returned a reply yet. */
  pending: number;
  /** When the current timeout runs out (epoch ms), or Infinity while a reply is being sent. */
  deadline: number;
  /** Which timeout `deadline` is. */
  phase: "header" | "body" | "idle" | "sending";
  closed: boolean;
}

const BUSY_BODY = JSON.stringify({ success: 0, info: "Server busy: too many open connections, try again shortly" });
const BUSY_REPLY = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=UTF-8\r\nretry-after: 1\r\n" +
    `connection: close\r\ncontent-length: ${new TextEncoder().encode(BUSY_BODY).length}\r\n\r\n${BUSY_BODY}`,
);

function isTooManyFiles(error: unknown): boolean {
  return error instanceof Error && /too many open files|EMFILE|ENFILE|os error 2[34]\b/i.test(error.message);
}

/**
 * Serves `handler` behind the guard. Falls back to plain `Deno.serve` (no cap, no timeouts, logged once) on a
 * Deno whose per-connection server cannot be found.
 */
export function serveGuarded(handler: Deno.ServeHandler, options: GuardOptions): GuardedServer {
  const serveOn = serveOnConnection();
  const stats: GuardStats = {
    open: 0,
    accepted: 0,
    timedOut: { header: 0, body: 0, idle: 0 },
    evicted: 0,
    refused: 0,
    acceptErrors: 0,
  };
  if (!serveOn) {
    options.log("WARN this Deno has no per-connection server: serving without connection limits or timeouts");
    const server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort,
      onListen: (addr) => options.onListen?.(addr as Deno.NetAddr),
    }, handler);
    return {
      addr: server.addr as Deno.NetAddr,
      finished: server.finished,
      shutdown: () => server.shutdown(),
      stats: () => stats,
    };
  }

  const listener = Deno.listen({ hostname: options.hostname, port: options.port, reusePort: options.reusePort });
  const addr = listener.addr as Deno.NetAddr;
  /** Every open connection; those with no request in progress also sit in `idle`, oldest first. */
  const open = new Set<Connection>();
  const idle = new Set<Connection>();
  let stopping = false;

  // Events that can come by the thousand under attack are counted and logged at most once a second.
  const pendingLog = new Map<string, number>();
  let logTimer: ReturnType<typeof setTimeout> | undefined;
  const note = (event: string) => {
    pendingLog.set(event, (pendingLog.get(event) ?? 0) + 1);
    logTimer ??= setTimeout(() => {
      logTimer = undefined;
      const summary = [...pendingLog].map(([e, n]) => `${e} x${n}`).join(", ");
      pendingLog.clear();
      options.log(`WARN connections: ${summary} (${stats.open} open, at most ${options.maxConnections})`);
    }, 1000);
  };

  /** Forgets a connection and, unless its server has already ended (`ended`), closes it. */
  const close = (c: Connection, reason?: "header" | "body" | "idle" | "evicted", ended = false) => {
    if (c.closed) return;
    c.closed = true;
    open.delete(c);
    idle.delete(c);
    stats.open = open.size;
    if (reason === "evicted") stats.evicted++;
    else if (reason) stats.timedOut[reason]++;
    if (reason) note(reason === "evicted" ? "closed idle to make room" : `${reason} timeout`);
    if (ended) return;
    try {
      c.abort.abort();
    } catch { /* the connection went away meanwhile */ }
  };

  /** A coarse clock, moved by the sweeper and on each accept: deadlines are as precise as the sweep anyway. */
  let clock = Date.now();

  const makeIdle = (c: Connection, phase: "header" | "idle", ms: number) => {
    c.phase = phase;
    c.deadline = clock + ms;
    idle.delete(c);
    idle.add(c);
  };

  const onError = (error: unknown) => {
    options.log(`ERROR unhandled in request: ${error instanceof Error ? error.stack : String(error)}`);
    return new Response(JSON.stringify({ success: 0, info: "Internal error" }), {
      status: 500,
      headers: { "content-type": "application/json; charset=UTF-8" },
    });
  };

  const serveConnection = (conn: Deno.Conn) => {
    const c: Connection = {
      conn,
      abort: new AbortController(),
      inflight: 0,
      pending: 0,
      deadline: 0,
      phase: "header",
      closed: false,
    };
    open.add(c);
    stats.open = open.size;
    stats.accepted++;
    makeIdle(c, "header", options.headerTimeoutMs);
    const done = () => {
      if (--c.inflight === 0 && !c.closed) {
        if (stopping) close(c);
        else makeIdle(c, "idle", options.idleTimeoutMs);
      }
    };
    const ready = () => {
      if (--c.pending === 0 && c.phase === "body") {
        c.phase = "sending";
        c.deadline = Infinity;
      }
    };
    const guarded: Deno.ServeHandler = (req, info) => {
      c.inflight++;
      c.pending++;
      if (c.phase !== "body") {
        idle.delete(c);
        c.phase = "body";
        c.deadline = clock + options.bodyTimeoutMs;
      }
      info.completed.then(done, done);
      let reply: Response | Promise<Response>;
      try {
        reply = handler(req, info);
      } catch (error) {
        ready();
        throw error;
      }
      if (reply instanceof Promise) {
        return reply.then((r) => {
          ready();
          return r;
        }, (error) => {
          ready();
          throw error;
        });
      }
      ready();
      return reply;
    };
    try {
      serveOn(conn, c.abort.signal, guarded, onError, () => {}).finished.catch(() => {}).finally(() =>
        close(c, undefined, true)
      );
    } catch (error) {
      options.log(`WARN cannot serve a connection: ${error instanceof Error ? error.message : String(error)}`);
      close(c);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };

  /** Closes the oldest connection that has no request in progress; false when there is none. */
  const evictOldestIdle = (): boolean => {
    for (const c of idle) {
      close(c, "evicted");
      return true;
    }
    return false;
  };

  const refuse = (conn: Deno.Conn) => {
    stats.refused++;
    note("refused (all busy)");
    conn.write(BUSY_REPLY).catch(() => {}).finally(() => {
      try {
        conn.close();
      } catch { /* already closed */ }
    });
  };

  // One sweep over the open connections closes those past their deadline; it runs a few times per shortest
  // timeout, so the hot path only writes a number per request.
  const sweepEvery = Math.max(
    25,
    Math.min(1000, Math.floor(Math.min(options.headerTimeoutMs, options.bodyTimeoutMs, options.idleTimeoutMs) / 4)),
  );
  const sweeper = setInterval(() => {
    const now = clock = Date.now();
    for (const c of open) {
      if (c.deadline <= now) close(c, c.phase === "sending" ? undefined : c.phase);
    }
  }, sweepEvery);

  const accepting = (async () => {
    let backoff = 10;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) return;
        stats.acceptErrors++;
        note(`accept error (${error instanceof Error ? error.message : String(error)})`);
        // Out of file descriptors: free one by closing the oldest idle connection, then try again after a pause.
        if (isTooManyFiles(error)) evictOldestIdle();
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 1000);
        continue;
      }
      backoff = 10;
      clock = Date.now();
      if (stopping) {
        conn.close();
        continue;
      }
      if (open.size >= options.maxConnections && !evictOldestIdle()) {
        refuse(conn);
        continue;
      }
      serveConnection(conn);
    }
  })();

  options.onListen?.(addr);

  let finish: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);
  const shutdown = async (graceMs = 10_000) => {
    if (!stopping) {
      stopping = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const c of [...idle]) close(c);
      const until = Date.now() + graceMs;
      while (open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      for (const c of [...open]) close(c);
      clearInterval(sweeper);
      if (logTimer !== undefined) clearTimeout(logTimer);
      await accepting;
      finish();
    }
    await finished;
  };
  return { addr, finished, shutdown, stats: () => ({ ...stats, timedOut: { ...stats.timedOut } }) };
}

/**
 * A connection cap that fits the process's open-file limit (read from /proc/self/limits): 90% of the soft
 * limit less 32 for the store and logs, between 16 and 50,000; 10,000 where the limit cannot be read.
 */
export function connectionCapFromLimits(): number {
  try {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    if (!Number.isFinite(soft)) return 50_000;
    return Math.max(16, Math.min(50_000, Math.floor(soft * 0.9) - 32));
  } catch {
    return 10_000;
  }
}
