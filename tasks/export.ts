// deno-lint-ignore-file no-console
/**
 * `deno task export --type TYPE [--format csv|json|ndjson|xml] [--company ID] [--out FILE]`: writes one collection
 * of a company from the store at KV_PATH, streamed (memory stays flat), beside a running service. See docs/export.md.
 * Exit 0 when done (a summary line on stderr), 1 when reading or writing fails (no --out file left), 2 on a usage
 * error (nothing written).
 */
import { parseOptions, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { EXPORT_FORMATS, type ExportFormat, formatOfPath } from "../domain/export_format.ts";
import { EXPORT_TYPES, type ExportType } from "../domain/export_records.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import { exportableCompany, exportText } from "../usecases/mod.ts";

const USAGE = `Usage: deno task export --type TYPE [--format FORMAT] [--company ID] [--out FILE]
  --type TYPE      ${EXPORT_TYPES.join(" | ")}
  --format FORMAT  ${EXPORT_FORMATS.join(" | ")} (default: from --out's extension, else csv)
  --company ID     the company (default: default)
  --out FILE       write to FILE, replaced only once complete (default: standard output)
Reads the store at KV_PATH. Exit 0 when done, 1 on a read or write failure, 2 on a usage error.`;

function usage(message: string): never {
  usageError(message, USAGE);
}

const args = parseOptions({
  type: { type: "string" },
  format: { type: "string" },
  company: { type: "string" },
  out: { type: "string" },
}, USAGE);

if (args.type === undefined) usage("--type is required");
if (!(EXPORT_TYPES as readonly string[]).includes(args.type)) usage(`Invalid --type "${args.type}"`);
const type = args.type as ExportType;
if (args.format !== undefined && !(EXPORT_FORMATS as readonly string[]).includes(args.format)) {
  usage(`Invalid --format "${args.format}"`);
}
const format: ExportFormat = (args.format as ExportFormat | undefined) ??
  (args.out === undefined ? null : formatOfPath(args.out)) ?? "csv";
if (args.out !== undefined && args.out.trim() === "") usage("--out needs a file name");
const companyId = args.company ?? "default";
if (companyId.trim() === "") usage("--company needs a company id");

const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv);
const actor = { companyId, name: "task:export", userId: 0 };
if (!await exportableCompany(store, actor)) {
  kv.close();
  usage(`Company "${companyId}" not found in the store`);
}

const started = performance.now();
// A file is written beside its target and renamed when complete, so a failed export never leaves a cut file.
const temp = args.out === undefined ? null : `${args.out}.partial-${Deno.pid}`;
const encoder = new TextEncoder();
let count = 0;
try {
  const file = temp === null ? null : await Deno.open(temp, { write: true, create: true, truncate: true });
  const writer = (file?.writable ?? Deno.stdout.writable).getWriter();
  for await (
    const chunk of exportText(store, actor, {
      type,
      format,
      timeZone: config.timeZone,
      onBatch: (n) => count = n,
    })
  ) {
    if (chunk !== "") await writer.write(encoder.encode(chunk));
  }
  await writer.close();
  if (temp !== null) await Deno.rename(temp, args.out!);
} catch (error) {
  if (temp !== null) await Deno.remove(temp).catch(() => {});
  kv.close();
  console.error(`export failed: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
}
kv.close();
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.error(
  `export: ${count} ${type} rows (${format}) of company "${companyId}" written to ${
    args.out ?? "stdout"
  } in ${seconds} s`,
);
