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

const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined || Deno.env.get("DENO_DEPLOY") !== undefined;
/** Settings read from the environment. */
export const config = loadConfig((name) => Deno.env.get(name), onDeploy);
const kv = await openKv(config.kvPath);

/** Where log lines go: stdout, as text lines or JSON objects (LOG_FORMAT), batched and written asynchronously. */
const stdout = bufferedWriter(Deno.stdout);
globalThis.addEventListener("unload", () => stdout.flushSync());
export const log = logSink(config, stdout.write);
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

/** The app, exported for `deno serve --parallel main.ts` and for Deno Deploy. */
export const app = createApp({ kv, store, config, log });

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
