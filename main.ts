/**
 * The service entry point: opens the store, builds the app and exports it for `deno serve` (one worker,
 * or one per core with `--parallel`). Start it with `deno task start`, which passes PORT and HOST on.
 */
import { loadConfig } from "./config.ts";
import { createApp } from "./routes/app.ts";
import { bootstrapApiKey } from "./storage/api_keys.ts";
import { openKv } from "./storage/open.ts";
import { createStore } from "./storage/store.ts";

const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined || Deno.env.get("DENO_DEPLOY") !== undefined;
const config = loadConfig((name) => Deno.env.get(name), onDeploy);
const kv = await openKv(config.kvPath);

// deno-lint-ignore no-console
const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const store = createStore(kv, { auditRetentionDays: config.auditRetentionDays });
const firstKey = await bootstrapApiKey(store);
if (firstKey) {
  log(`First start on an empty store: made company "default" and its write API key (shown only now):`);
  log(`  ${firstKey}`);
}

/** The app, exported for `deno serve --parallel main.ts` and for Deno Deploy. */
export const app = createApp({ kv, store, config, log });

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
