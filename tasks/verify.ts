// deno-lint-ignore-file no-console
/**
 * `deno task verify [--company ID] [--repair]`: checks the store at KV_PATH (as the service opens it) and lists
 * every defect per company. Exit 0 when clean (with --repair: when every defect found was repaired), 1 with the
 * listing otherwise, 2 on a usage error. Progress goes to stderr: a live line on a terminal, else a line every
 * few seconds. Safe beside the running service; --repair writes with versionstamp checks.
 */
import { parseOptions, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import { type Finding, type Progress, verifyStore } from "../usecases/admin.ts";

const USAGE = `Usage: deno task verify [--company ID] [--repair]
  --company ID  check only this company (default: every company in the store)
  --repair      rebuild what can be derived (indexes, list entries, counters, sequences); never balances
Reads the store at KV_PATH. Exit 0 when clean, 1 when defects remain, 2 on a usage error.`;

/** How often a progress line is written when stderr is not a terminal, ms. */
const PROGRESS_EVERY_MS = 3000;

function usage(message: string): never {
  usageError(message, USAGE);
}

const args = parseOptions({ company: { type: "string" }, repair: { type: "boolean" } }, USAGE);
if (args.company !== undefined && args.company.trim() === "") usage("--company needs a company id");

const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const started = Date.now();
const tty = Deno.stderr.isTerminal();
const encoder = new TextEncoder();
let lastShown = started;
let live = false;

function progressLine(p: Progress): string {
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  return `verify: company "${p.company}", ${p.phase}: ${p.scanned} keys read, ${seconds} s`;
}

function onProgress(p: Progress): void {
  const now = Date.now();
  if (tty) {
    if (now - lastShown < 200) return;
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${progressLine(p)}`));
    live = true;
  } else {
    if (now - lastShown < PROGRESS_EVERY_MS) return;
    console.error(progressLine(p));
  }
  lastShown = now;
}

function onFinding(f: Finding): void {
  if (live) {
    Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    live = false;
  }
  const repair = f.repair ? ` [${f.repair}]` : "";
  console.log(`${f.company}: ${f.severity} ${f.check}: ${f.message}${repair}`);
}

const summary = await verifyStore(createStore(kv), {
  company: args.company,
  repair: args.repair ?? false,
  onFinding,
  onProgress,
});
kv.close();
if (live) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
const seconds = ((Date.now() - started) / 1000).toFixed(1);
const remaining = summary.defects - summary.repaired;
const companies = summary.companies.length;
const what = summary.defects === 0
  ? "clean"
  : args.repair
  ? `${summary.defects} defects, ${summary.repaired} repaired, ${remaining} remaining`
  : `${summary.defects} defects`;
console.log(
  `verify: ${what} (${companies} ${companies === 1 ? "company" : "companies"}, ${summary.scanned} keys, ` +
    `${summary.notes} notes, ${seconds} s)`,
);
Deno.exit(remaining === 0 ? 0 : 1);
