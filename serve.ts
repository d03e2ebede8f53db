/**
 * The server of `deno task start`: main.ts's app behind the connection guard (server/guard.ts), which caps
 * open connections and closes slow or idle ones, so no number of connections can make the process exit.
 * SIGTERM or SIGINT stops accepting and lets requests in progress finish.
 */
import { app, config, log } from "./main.ts";
import { connectionCapFromLimits, serveGuarded } from "./server/guard.ts";

const maxConnections = config.maxConnections ?? connectionCapFromLimits();
const server = serveGuarded(app.fetch, {
  hostname: config.host,
  port: config.port,
  reusePort: Deno.env.get("REUSE_PORT") === "1",
  maxConnections,
  headerTimeoutMs: config.headerTimeoutMs,
  bodyTimeoutMs: config.bodyTimeoutMs,
  idleTimeoutMs: config.idleTimeoutMs,
  log,
  onListen: (addr) =>
    log(
      `Listening on http://${addr.hostname}:${addr.port}/ (at most ${maxConnections} connections; timeouts: ` +
        `header ${config.headerTimeoutMs} ms, body ${config.bodyTimeoutMs} ms, idle ${config.idleTimeoutMs} ms)`,
    ),
});
let stopping = false;
// Closing connections at shutdown can race a connection the runtime is closing itself; the runtime then throws a
// BadResource from its own abort listener, which would turn a clean stop into a crash. Only then is it ignored.
globalThis.addEventListener("error", (event) => {
  if (stopping && event.error instanceof Deno.errors.BadResource) event.preventDefault();
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    stopping = true;
    await server.shutdown();
    Deno.exit(0);
  });
}
await server.finished;
