// deno-lint-ignore-file no-console
/**
 * `deno task import FILE [options]`: imports customers, cards or balances from a CSV, JSON, NDJSON or XML file into
 * the store at KV_PATH (beside the running service), or with --url and --apikey through the service's bulk
 * endpoint. Exit 0 when every row went in, 1 when any row was rejected, 2 on a usage or file error (nothing written).
 */
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { loadConfig } from "../config.ts";
import { importKeyOf, readerFingerprint } from "./_import_key.ts";
import type { ImportPreset, ImportType } from "../domain/import/columns.ts";
import type { ImportEncoding } from "../domain/import/csv.ts";
import { formatOfName, type ImportFormat, type OpenedFile, openRows, type ReadRow } from "../domain/import/read.ts";
import { AppError, ValidationError } from "../domain/errors.ts";
import { companyExists } from "../storage/export.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import {
  countResult,
  emptyReport,
  IMPORT_MAX_ROWS_PER_REQUEST,
  type ImportReport,
  importRows,
  MATCH_FIELDS,
  type MatchField,
  newRunId,
  recordImport,
  RowChecker,
  type RowResult,
} from "../usecases/import.ts";

const USAGE = `Usage: deno task import FILE [options]
  --type customers|cards|bonuses   what the file holds (default customers)
  --format csv|json|ndjson|xml     default: from the file's extension
  --encoding utf-8|windows-1251    default: detected (UTF-8 with or without BOM, else Windows-1251)
  --delimiter ';'                  CSV delimiter (default: detected among , ; and tab)
  --map MAP.json                   JSON object from column name to field ("" ignores the column)
  --preset shopify|woocommerce     read a shop's customer export
  --match external_id,phone,email  order of the fields a customer row is matched by
  --bonus-id N                     program of balances (default: the company's only program)
  --company ID                     default: default; another company must be known to the store (an API key
                                   or data) unless --create-company
  --dry-run                        validate and match everything, write nothing
  --report REPORT.json             also write the report as JSON
  --ignore-unknown                 skip columns that map to nothing instead of stopping
  --url URL --apikey KEY           import through the service's bulk endpoint instead of the store at KV_PATH
  --batch-size N                   rows read, matched and sent together (default 2000)
  --no-resume                      start from the first row even if a run of this file was interrupted
Exit 0 when every row went in, 1 when any row was rejected, 2 on a usage or file error.`;

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    options: {
      type: { type: "string" },
      format: { type: "string" },
      encoding: { type: "string" },
      delimiter: { type: "string" },
      map: { type: "string" },
      preset: { type: "string" },
      match: { type: "string" },
      "bonus-id": { type: "string" },
      company: { type: "string" },
      "dry-run": { type: "boolean" },
      report: { type: "string" },
      "ignore-unknown": { type: "boolean" },
      "no-resume": { type: "boolean" },
      "create-company": { type: "boolean" },
      url: { type: "string" },
      apikey: { type: "string" },
      "batch-size": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
    allowPositionals: true,
  });
} catch (e) {
  usage((e as Error).message);
}
const args = parsed.values;
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (parsed.positionals.length !== 1) usage("Pass exactly one FILE to import");
const file = parsed.positionals[0]!;

const type = (args.type ?? "customers") as ImportType;
if (!["customers", "cards", "bonuses"].includes(type)) usage(`Invalid --type "${args.type}"`);
const format = (args.format ?? formatOfName(file)) as ImportFormat | null;
if (format === null) usage(`Cannot tell the format of "${file}" from its extension: pass --format`);
if (!["csv", "json", "ndjson", "xml"].includes(format)) usage(`Invalid --format "${format}"`);
const encoding = args.encoding?.toLowerCase().replace(/^utf8$/, "utf-8").replace(/^cp1251$/, "windows-1251") as
  | ImportEncoding
  | undefined;
if (encoding !== undefined && encoding !== "utf-8" && encoding !== "windows-1251") {
  usage(`Invalid --encoding "${args.encoding}": utf-8 or windows-1251`);
}
const delimiter = args.delimiter === "tab" || args.delimiter === "\\t" ? "\t" : args.delimiter;
if (delimiter !== undefined && delimiter.length !== 1) usage(`Invalid --delimiter "${args.delimiter}": one character`);
const preset = args.preset as ImportPreset | undefined;
if (preset !== undefined && preset !== "shopify" && preset !== "woocommerce") {
  usage(`Invalid --preset "${args.preset}": shopify or woocommerce`);
}
if (preset !== undefined && type !== "customers") usage("--preset reads customers: use it with --type customers");
const match = args.match === undefined ? MATCH_FIELDS : args.match.split(",").map((s) => s.trim()) as MatchField[];
for (const m of match) if (!MATCH_FIELDS.includes(m)) usage(`Invalid --match "${m}": external_id, phone or email`);
let bonusId: number | null = null;
if (args["bonus-id"] !== undefined) {
  bonusId = Number(args["bonus-id"]);
  if (!Number.isSafeInteger(bonusId) || bonusId < 1) usage(`Invalid --bonus-id "${args["bonus-id"]}"`);
}
const companyId = args.company ?? "default";
if (companyId.trim() === "") usage("--company needs a company id");
const batchSize = args["batch-size"] === undefined ? 2000 : Number(args["batch-size"]);
if (!Number.isSafeInteger(batchSize) || batchSize < 1) usage(`Invalid --batch-size "${args["batch-size"]}"`);
if ((args.url === undefined) !== (args.apikey === undefined)) usage("--url and --apikey go together");

let map: Record<string, string> | undefined;
if (args.map !== undefined) {
  try {
    const m = JSON.parse(await Deno.readTextFile(args.map));
    if (!m || typeof m !== "object" || Array.isArray(m) || Object.values(m).some((v) => typeof v !== "string")) {
      throw new Error("expected a JSON object from column name to field name");
    }
    map = m;
  } catch (e) {
    usage(`Cannot read --map "${args.map}": ${(e as Error).message}`);
  }
}

let size = 0;
let handle: Deno.FsFile;
try {
  size = (await Deno.stat(file)).size;
  handle = await Deno.open(file);
} catch (e) {
  usage(`Cannot read "${file}": ${(e as Error).message}`);
}

// Progress: a live bar on a terminal, else a line every few seconds; on stderr, so stdout carries the report.
const tty = Deno.stderr.isTerminal();
const encoder = new TextEncoder();
const started = Date.now();
let bytesRead = 0;
let rowsDone = 0;
let lastShown = started;
function progress(final = false): void {
  const now = Date.now();
  if (!final && now - lastShown < (tty ? 200 : 3000)) return;
  lastShown = now;
  const secs = Math.max((now - started) / 1000, 0.001);
  const rate = Math.round(rowsDone / secs);
  const share = size > 0 ? Math.min(bytesRead / size, 1) : 1;
  const eta = share > 0 && share < 1 ? Math.round(secs / share - secs) : 0;
  if (tty) {
    const width = 30;
    const bar = "#".repeat(Math.round(share * width)).padEnd(width, ".");
    Deno.stderr.writeSync(
      encoder.encode(`\r\x1b[K[${bar}] ${(share * 100).toFixed(0)}% ${rowsDone} rows, ${rate} rows/s, ETA ${eta} s`),
    );
    if (final) Deno.stderr.writeSync(encoder.encode("\n"));
  } else if (!final) {
    console.error(`import: ${rowsDone} rows, ${rate} rows/s, ${(share * 100).toFixed(0)}% read, ETA ${eta} s`);
  }
}

const config = loadConfig((name) => Deno.env.get(name));
const fileName = basename(file);

/** How the file is read, but for its encoding (detected by the first read, then kept for the NDJSON check). */
const reading = { format, delimiter, type, preset, map, ignoreUnknown: args["ignore-unknown"] === true, batchSize };
let opened: OpenedFile;
try {
  opened = await openRows(handle.readable, {
    ...reading,
    encoding,
    onBytes: (n) => {
      bytesRead = n;
    },
  });
} catch (e) {
  if (e instanceof AppError) usage(e.message);
  throw e;
}
// NDJSON records may bring new keys anywhere: the whole file's keys (and its encoding) are checked before the
// first row is written, so an unknown key is a usage error with nothing written (JSON and XML are checked whole
// when opened; CSV has its header).
if (format === "ndjson") {
  try {
    const check = await openRows((await Deno.open(file)).readable, { ...reading, encoding: opened.encoding });
    for await (const _ of check.batches) { /* each record's keys resolved */ }
  } catch (e) {
    if (e instanceof AppError) usage(e.message);
    throw e;
  }
}
const needsProgram = (type === "customers" && opened.columns.includes("bonus")) ||
  (type === "bonuses" && (!opened.columns.includes("bonus_id") || bonusId !== null));

// Ctrl-C (SIGINT), SIGTERM, or the parent (`deno task`) gone: stop before the next batch, nothing half-written; a
// second signal stops at once (still nothing half-written: every batch is one or more whole atomic operations).
const stop = new AbortController();
let stopReason = "";
function stopSoon(reason: string): void {
  if (stop.signal.aborted) {
    if (reason.startsWith("SIG")) Deno.exit(130);
    return;
  }
  stopReason = reason;
  stop.abort();
  try {
    console.error(`\nimport: ${reason}: stopping after the batch being written`);
  } catch { /* stderr gone with the parent */ }
}
for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stopSoon(sig));
const parentPid = Deno.ppid;
const watch = setInterval(() => {
  if (Deno.ppid !== parentPid) stopSoon("the parent process is gone");
}, 500);
Deno.unrefTimer(watch);
let lastLine = 0;

async function* rowsOf(): AsyncGenerator<ReadRow[]> {
  for await (const batch of opened.batches) {
    if (stop.signal.aborted) return;
    yield batch;
    lastLine = batch.at(-1)?.line ?? lastLine;
  }
}

const report: ImportReport = args.url === undefined ? await local() : await remote(args.url, args.apikey!);
// A repeat of a finished import reads no batches: its rows are the report's.
rowsDone = Math.max(rowsDone, report.created + report.updated + report.unchanged + report.rejected + report.skipped);
progress(true);

async function local(): Promise<ImportReport> {
  const kv = await openKv(config.kvPath);
  const store = createStore(kv, { auditRetentionDays: config.auditRetentionDays });
  const actor = { companyId, name: `import:${fileName}`, userId: 0 };
  // A typo in --company would start a new company silently: only "default" (the service's own) or a company the
  // store knows, unless asked for.
  if (companyId !== "default" && args["create-company"] !== true && !await companyExists(kv, companyId)) {
    kv.close();
    usage(`Company "${companyId}" not found in the store (no API key, no data): pass --create-company to start it`);
  }
  const runStarted = Date.now();
  try {
    const report = await importRows(store, actor, {
      type,
      bonusId,
      match,
      dryRun: args["dry-run"] === true,
      settings: config,
      fileKey: await fileKeyOf(file),
      checkpoint: args["no-resume"] ? undefined : await importKeyOf(file, type),
      fingerprint: readerFingerprint({
        format: format!,
        // As asked: a detected encoding may change after the first 64 KiB, and the same content detects the same.
        encoding: encoding ?? "detect",
        delimiter,
        preset,
        map,
        ignoreUnknown: args["ignore-unknown"] === true,
      }),
      onResume: (line) => {
        console.error(`import: resuming after line ${line}, where an interrupted run of this file stopped`);
      },
      onRepeat: (at) => {
        console.error(
          `import: this file was imported whole at ${new Date(at).toISOString()} and the company has not changed ` +
            "since: every row is unchanged (--no-resume reads it again)",
        );
      },
      needsProgram,
      signal: stop.signal,
      batches: rowsOf(),
      onBatch: (results) => {
        rowsDone += results.length;
        progress();
      },
    });
    if (stop.signal.aborted) return report;
    await recordImport(store, actor, {
      file: fileName,
      type,
      actor: actor.name,
      dry_run: args["dry-run"] === true,
      started: runStarted,
      finished: Date.now(),
      ...report,
    });
    return report;
  } catch (e) {
    if (e instanceof AppError) usage(e.message);
    throw e;
  } finally {
    kv.close();
  }
}

/** Sends the rows in batches to POST /api/import (NDJSON in, one result per row out). */
async function remote(url: string, apikey: string): Promise<ImportReport> {
  const report = emptyReport();
  const query = new URLSearchParams({
    type,
    file: fileName,
    file_key: await fileKeyOf(file),
    run: newRunId(Date.now()),
  });
  if (bonusId !== null) query.set("bonus_id", String(bonusId));
  if (args["dry-run"]) query.set("dry_run", "1");
  query.set("match", match.join(","));
  if (needsProgram) query.set("needs_program", "1");
  const endpoint = `${url.replace(/\/$/, "")}/api/import?${query}`;
  // Rows are parsed and checked for duplicates here too, so a duplicate in a later batch is found as locally; a row
  // refused here is sent with its reason, so the service's reply and its run record count every row.
  const checker = new RowChecker({ type, bonusId, match, settings: config });
  if (needsProgram) checker.programId = bonusId ?? 0;
  // A file error after rows were sent ends the import with them counted and one file-level reject (exit 1).
  const fileError = (e: unknown, line: number) => {
    if (!(e instanceof AppError) || rowsDone === 0) return false;
    countResult(report, {
      line,
      status: "rejected",
      field: e.field ?? "file",
      info: `${e.message} (the import stopped here: the rows before line ${line} are in)`,
    });
    return true;
  };
  try {
    for await (const all of rowsOf()) {
      // Under the endpoint's cap of rows per request, whatever --batch-size says.
      for (let at = 0; at < all.length; at += IMPORT_MAX_ROWS_PER_REQUEST) {
        if (!await send(all.slice(at, at + IMPORT_MAX_ROWS_PER_REQUEST))) return report;
      }
    }
  } catch (e) {
    if (!fileError(e, lastLine + 1)) throw e;
  }
  return report;

  async function send(part: ReadRow[]): Promise<boolean> {
    const batch: ReadRow[] = part.map((row) => {
      const checked = checker.plan(row);
      if (!("status" in checked)) return row;
      if (checked.status === "skipped") return { line: row.line, values: {} };
      return { line: row.line, values: {}, error: { field: checked.field ?? "", info: checked.info ?? "" } };
    });
    const body = batch.map((r) => JSON.stringify(r)).join("\n") + "\n";
    let res: Response | undefined;
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        res = await fetch(endpoint, {
          method: "POST",
          headers: { "X-API-Key": apikey, "Content-Type": "application/x-ndjson" },
          body,
        });
        if (res.status < 500 && res.status !== 429) break;
        await res.body?.cancel();
      } catch (e) {
        if (attempt === 5) usage(`Cannot reach ${url}: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
    if (!res || !res.ok) {
      const text = res ? await res.text() : "";
      let info = text;
      try {
        info = JSON.parse(text).info ?? text;
      } catch { /* the text as it came */ }
      const error = new ValidationError("file", `The service refused the import (${res?.status}): ${info}`);
      if (fileError(error, batch[0]!.line)) return false;
      usage(error.message);
    }
    const reply = await res!.json() as { results: RowResult[] };
    for (const r of reply.results) countResult(report, r);
    rowsDone += batch.length;
    progress();
    return true;
  }
}

/** A key of the file's content (size, time and name), for granting a credit of a line once across re-runs. */
async function fileKeyOf(path: string): Promise<string> {
  const info = await Deno.stat(path);
  const data = new TextEncoder().encode(`${basename(path)}|${info.size}|${info.mtime?.getTime() ?? 0}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

if (stop.signal.aborted) {
  try {
    console.error(
      `import: stopped (${stopReason}) after line ${lastLine}; nothing is half-written. Run the same command ` +
        (args.url === undefined
          ? "again to finish: it resumes after that line."
          : "again to finish: the rows already in are counted unchanged."),
    );
  } catch { /* stderr gone with the parent */ }
  Deno.exit(stopReason === "SIGTERM" ? 143 : 130);
}

const total = report.created + report.updated + report.unchanged + report.rejected + report.skipped;
const head = args["dry-run"] ? "Dry run (nothing written)" : "Imported";
console.log(
  `${head} ${total} rows of ${fileName}: ${report.created} created, ${report.updated} updated, ` +
    `${report.unchanged} unchanged, ${report.rejected} rejected, ${report.skipped} skipped`,
);
for (const r of report.rejects.slice(0, 50)) console.log(`line ${r.line}: ${r.field}: ${r.info}`);
if (report.rejects.length > 50) console.log(`... ${report.rejected - 50} more rejects (see --report)`);
if (args.report !== undefined) {
  await Deno.writeTextFile(args.report, JSON.stringify(report, null, 2) + "\n");
}
Deno.exit(report.rejected > 0 ? 1 : 0);
