// deno-lint-ignore-file no-console
/**
 * `deno task webhooks failed|retry|stats`: the webhook deliveries of the store at KV_PATH.
 *
 *   deno task webhooks failed [--company acme]     dead letters: deliveries that kept failing, oldest first
 *   deno task webhooks retry [ID]                   puts one dead letter (or every one) back in the queue and
 *                                                   makes its first attempt at once; further retries are the
 *                                                   running service's
 *   deno task webhooks stats [--company acme]      received, processed, duplicate, ignored, skipped (guest orders
 *                                                   without email or phone), failed per connection and topic
 */
import { parseCommand, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import {
  getDelivery,
  handleDelivery,
  listDeadLetters,
  retryDeadLetter,
  webhookSettingsOf,
  webhookStats,
} from "../usecases/mod.ts";

const USAGE = `Usage:
  deno task webhooks failed [--company ID]
  deno task webhooks retry [DEAD_LETTER_ID]   (without an id: every dead letter)
  deno task webhooks stats [--company ID]`;

function fail(message: string): never {
  usageError(message, `\n${USAGE}`);
}

const { positionals, values } = parseCommand({ company: { type: "string" } }, USAGE);
const [command, id, ...extra] = positionals;
if (extra.length > 0) fail(`Unexpected argument "${extra[0]}"`);
const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv);
const actor = values.company ? { companyId: values.company, name: "task:webhooks", userId: 0 } : null;
const KINDS = ["received", "processed", "duplicate", "ignored", "skipped", "failed"];
try {
  switch (command) {
    case "failed": {
      const letters = await listDeadLetters(store, actor);
      if (letters.length === 0) console.log("No dead letters.");
      for (const l of letters) {
        console.log(
          `${l.id}  ${
            new Date(l.date).toISOString()
          }  ${l.company_id}  ${l.platform}/${l.connection_id}  ${l.topic}  ` +
            `${l.attempts} attempts  ${l.error}`,
        );
      }
      break;
    }
    case "retry": {
      const ids = id ? [id] : (await listDeadLetters(store, actor)).map((l) => l.id);
      const settings = webhookSettingsOf(config);
      // What became of each retried delivery after the attempt made here: processed, ignored, skipped, failed again
      // (the service retries it), or failed again for good (a dead letter again).
      const outcomes = { processed: 0, ignored: 0, skipped: 0, retrying: 0, dead: 0, other: 0 };
      for (const one of ids) {
        if (!await retryDeadLetter(store, actor, one, { retentionMs: settings.retentionMs, by: "task:webhooks" })) {
          if (id) {
            console.error(`Dead letter "${one}" not found`);
            Deno.exit(1);
          }
          continue;
        }
        // The first attempt now, here: a queue message enqueued by this process may wait for the service to notice.
        await handleDelivery(store, one, settings);
        const e = await getDelivery(store, one);
        let state: string;
        if (e?.status === "queued") {
          outcomes.retrying++;
          state = `failed again (${e.last_error}); the service retries it (attempt ${
            e.attempts + 1
          } of ${settings.maxAttempts})`;
        } else if (e?.status === "dead") {
          outcomes.dead++;
          state = `failed again and is a dead letter (${e.last_error})`;
        } else if (e?.status === "processed" || e?.status === "ignored" || e?.status === "skipped") {
          outcomes[e.status]++;
          state = e.outcome ? `${e.status} (${e.outcome})` : e.status;
        } else {
          // Gone (expired) meanwhile: said as it is.
          outcomes.other++;
          state = e?.status ?? "gone";
        }
        console.log(`${one}: ${state}`);
      }
      const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
      const parts = [
        `processed ${outcomes.processed}`,
        `ignored ${outcomes.ignored}`,
        `skipped ${outcomes.skipped}`,
        `failed again, retried later by the service ${outcomes.retrying}`,
        `failed again, a dead letter again ${outcomes.dead}`,
        ...(outcomes.other > 0 ? [`gone ${outcomes.other}`] : []),
      ];
      console.log(`Retried ${total} dead letter${total === 1 ? "" : "s"}: ${parts.join(", ")}`);
      break;
    }
    case "stats": {
      const all = await webhookStats(store, actor);
      if (all.length === 0) console.log("No connections.");
      for (const { connection, stats } of all) {
        console.log(`${connection.id}  ${connection.platform}  ${connection.shop}  (${connection.company_id})`);
        for (const [topic, counts] of Object.entries(stats).sort()) {
          console.log(`  ${topic.padEnd(20)} ${KINDS.map((k) => `${k} ${counts[k] ?? 0}`).join("  ")}`);
        }
      }
      break;
    }
    default:
      fail(command ? `Unknown command "${command}"` : "A command is required");
  }
} finally {
  kv.close();
}
