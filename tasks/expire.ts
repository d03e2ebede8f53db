// deno-lint-ignore-file no-console
/**
 * `deno task expire [--company ID] [--now DATE]`: writes off every lot of points that has expired with points left,
 * one `expire` ledger entry per lot, in the store at KV_PATH (every company by default). --now "YYYY-MM-DD" or
 * "YYYY-MM-DD HH:MM:SS" (in TIME_ZONE) runs it as of another time. Safe to run twice and beside the service. Exit 0
 * when done (with a summary line), 2 on a usage error.
 */
import { parseOptions, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { parseDateTime } from "../domain/dates.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import { expirePoints } from "../usecases/admin.ts";

const USAGE = `Usage: deno task expire [--company ID] [--now DATE]
  --company ID  only this company (default: every company in the store)
  --now DATE    expire as of "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" in TIME_ZONE (default: now)
Reads and writes the store at KV_PATH. Exit 0 when done, 2 on a usage error.`;

function usage(message: string): never {
  usageError(message, USAGE);
}

const args = parseOptions({ company: { type: "string" }, now: { type: "string" } }, USAGE);
if (args.company !== undefined && args.company.trim() === "") usage("--company needs a company id");

const config = loadConfig((name) => Deno.env.get(name));
let now = Date.now();
if (args.now !== undefined) {
  try {
    now = parseDateTime(args.now, "--now", config.timeZone);
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
}

const kv = await openKv(config.kvPath);
const started = performance.now();
const summary = await expirePoints(createStore(kv), { companyId: "", name: "task:expire", userId: 0 }, {
  company: args.company,
  now,
});
kv.close();
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const companies = summary.companies.length;
console.log(
  `expire: ${summary.lots} lots, ${
    (summary.points / 100).toFixed(2)
  } points written off in ${summary.expiredBalances} ` +
    `of ${summary.balances} balances (${companies} ${companies === 1 ? "company" : "companies"}, ${seconds} s)` +
    (summary.skipped ? `; ${summary.skipped} balances kept changing: run again` : ""),
);
