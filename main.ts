/**
 * The service entry point: opens the store and builds the app. `deno task start` serves it behind the
 * connection guard (serve.ts); the app is also exported for `deno serve [--parallel] main.ts` and for Deno
 * Deploy, which serve it themselves.
 */
import { loadConfig } from "./config.ts";
import { createApp } from "./routes/app.ts";
import { bufferedWriter, logSink } from "./routes/log.ts";
import { openKv } from "./storage/open.ts";
import { createStore } from "./storage/store.ts";
import { firstStartKey } from "./usecases/api_keys.ts";
import { startExpirySchedule } from "./server/expiry_schedule.ts";
import { startWebhookListener, webhookSettingsOf } from "./usecases/webhooks.ts";

const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined || Deno.env.get("DENO_DEPLOY") !== undefined;
/** Settings read from the environment. */
export const config = loadConfig((name) => Deno.env.get(name), onDeploy);
const kv = await openKv(config.kvPath);

/** Where log lines go: stdout, as text lines or JSON objects (LOG_FORMAT), batched and written asynchronously. */
const stdout = bufferedWriter(Deno.stdout);
globalThis.addEventListener("unload", () => stdout.flushSync());
export const log = logSink(config, stdout);
const store = createStore(kv, { auditRetentionDays: config.auditRetentionDays });
const firstKey = await firstStartKey(store);
if (firstKey) {
  log(`First start on an empty store: made company "default" and its write API key (shown only now):`);
  log(`  ${firstKey}`);
}

// Expired points are written off on their own (EXPIRE_SCHEDULE=0 turns it off); its timers never hold the process.
if (config.expireSchedule) {
  startExpirySchedule(store, { atHour: config.expireAtHour, timeZone: config.timeZone, log });
}

// Webhook deliveries are processed from the store's queue in every process (and worker) that serves the app. A
// listening handle keeps the process alive, so the listener has a handle of its own, closed on SIGINT/SIGTERM: the
// server then finishes its graceful shutdown and the process exits (an unfinished delivery is redelivered).
const queueKv = config.kvPath === ":memory:" ? kv : await openKv(config.kvPath);
startWebhookListener(
  createStore(queueKv, { auditRetentionDays: config.auditRetentionDays }),
  webhookSettingsOf(config),
  {
    log,
  },
);
try {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      try {
        queueKv.close();
      } catch { /* already closed */ }
    });
  }
} catch { /* no signals here (Deno Deploy, Windows): the platform stops the process */ }

/** The app, exported for `deno serve --parallel main.ts` and for Deno Deploy. */
export const app = createApp({ kv, store, config, log });

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
