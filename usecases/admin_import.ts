/**
 * Importing a file uploaded on the back office: the upload is kept, checked with a dry run (the report of what a
 * run would do), then run in the background with its progress kept in the store, through the same `importRows` as
 * `deno task import` and the same run records (`listImports`).
 */
import type { Actor } from "../domain/audit.ts";
import { ValidationError } from "../domain/errors.ts";
import type { ImportPreset, ImportType } from "../domain/import/columns.ts";
import type { ImportEncoding } from "../domain/import/csv.ts";
import { formatOfName, type ImportFormat, type OpenedFile, openRows } from "../domain/import/read.ts";
import {
  claimUpload,
  getJob,
  type ImportJob,
  jobOfUpload,
  readUpload,
  saveJob,
  saveUpload,
  type UploadRecord,
} from "../storage/admin_uploads.ts";
import type { Store } from "../storage/store.ts";
import { type ImportReport, importRows, type MatchField, newRunId, recordImport } from "./import.ts";

export type { ImportJob };

/** How an uploaded file is read and matched: the options of `deno task import` that make sense on a page. */
export interface UploadOptions {
  type: ImportType;
  /** Null: from the file's name. */
  format: ImportFormat | null;
  /** Null: detected. */
  encoding: ImportEncoding | null;
  /** Null: detected. */
  delimiter: string | null;
  preset: ImportPreset | null;
  match: MatchField[];
  bonusId: number | null;
  ignoreUnknown: boolean;
}

/** What the dry run of an upload found. */
export interface UploadCheck {
  upload: UploadRecord<UploadOptions>;
  format: ImportFormat;
  encoding: ImportEncoding;
  delimiter: string | null;
  /** The file's columns and the field each goes to ("-": ignored). */
  headers: string[];
  columns: string[];
  report: ImportReport;
  rows: number;
}

/** Rows read and written together by a back-office run. */
const BATCH_SIZE = 500;

/** Phone country code and time zone, as the API reads them. */
type Settings = { defaultCountryCode: string; timeZone: string };

async function open(bytes: Uint8Array, name: string, options: UploadOptions): Promise<
  OpenedFile & {
    format: ImportFormat;
  }
> {
  const format = options.format ?? formatOfName(name);
  if (format === null) {
    throw new ValidationError("format", `Cannot tell the format of "${name}" from its name: choose a format`);
  }
  if (options.preset !== null && options.type !== "customers") {
    throw new ValidationError("preset", "Invalid preset: a shop export holds customers, choose type customers");
  }
  const opened = await openRows(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream(), {
    format,
    encoding: options.encoding ?? undefined,
    delimiter: options.delimiter ?? undefined,
    type: options.type,
    preset: options.preset ?? undefined,
    ignoreUnknown: options.ignoreUnknown,
    batchSize: BATCH_SIZE,
  });
  return { ...opened, format };
}

function needsProgram(opened: OpenedFile, options: UploadOptions): boolean {
  return (options.type === "customers" && opened.columns.includes("bonus")) ||
    (options.type === "bonuses" && (!opened.columns.includes("bonus_id") || options.bonusId !== null));
}

async function contentKey(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function rowsOf(report: ImportReport): number {
  return report.created + report.updated + report.unchanged + report.rejected + report.skipped;
}

/**
 * Keeps an uploaded file and runs it dry (nothing written but the upload and the dry run's record): a file that
 * cannot be read at all (format, encoding, an unknown column) is refused before anything is kept.
 */
export async function checkUpload(
  store: Store,
  actor: Actor,
  input: { name: string; bytes: Uint8Array; options: UploadOptions; settings: Settings },
): Promise<UploadCheck> {
  const { name, bytes, options } = input;
  if (bytes.length === 0) throw new ValidationError("file", `Invalid file "${name}": it is empty`);
  const opened = await open(bytes, name, options);
  const started = store.clock();
  const report = await importRows(store, actor, {
    type: options.type,
    bonusId: options.bonusId,
    match: options.match,
    dryRun: true,
    settings: input.settings,
    needsProgram: needsProgram(opened, options),
    batches: opened.batches,
  });
  const upload = await saveUpload<UploadOptions>(store.kv, actor.companyId, {
    id: newRunId(started),
    name,
    size: bytes.length,
    options,
    created: started,
  }, bytes);
  await recordImport(store, actor, {
    file: name,
    type: options.type,
    actor: actor.name,
    dry_run: true,
    started,
    finished: store.clock(),
    ...report,
  });
  return {
    upload,
    format: opened.format,
    encoding: opened.encoding,
    delimiter: opened.delimiter,
    headers: opened.headers,
    columns: opened.columns,
    report,
    rows: rowsOf(report),
  };
}

/**
 * Starts the run of a checked upload in the background and answers its job at once; `done` settles when the run
 * ends (its outcome is in the job). An upload runs once: starting it again answers the first run's job.
 */
export async function startImport(
  store: Store,
  actor: Actor,
  input: { upload: string; rows: number; settings: Settings },
): Promise<{ job: ImportJob<ImportReport>; done: Promise<void> }> {
  const cid = actor.companyId;
  const earlier = await jobOfUpload(store.kv, cid, input.upload);
  if (earlier !== null) {
    const job = await getJob<ImportReport>(store.kv, cid, earlier);
    if (job) return { job, done: Promise.resolve() };
  }
  const found = await readUpload<UploadOptions>(store.kv, cid, input.upload);
  if (!found) {
    throw new ValidationError(
      "upload",
      `Upload "${input.upload}" not found: it expired or was never made, upload again`,
    );
  }
  const { record, bytes } = found;
  const now = store.clock();
  const job: ImportJob<ImportReport> = {
    id: newRunId(now),
    upload: record.id,
    file: record.name,
    type: record.options.type,
    actor: actor.name,
    state: "running",
    rows: 0,
    total: Math.max(0, input.rows),
    started: now,
    updated: now,
    report: null,
    error: null,
  };
  if (!await claimUpload(store.kv, cid, job)) {
    const id = await jobOfUpload(store.kv, cid, input.upload);
    const first = id === null ? null : await getJob<ImportReport>(store.kv, cid, id);
    if (first) return { job: first, done: Promise.resolve() };
    throw new ValidationError("upload", `Upload "${input.upload}" is already being imported`);
  }
  const done = run(store, actor, { job, record, bytes, settings: input.settings });
  return { job, done };
}

async function run(
  store: Store,
  actor: Actor,
  input: { job: ImportJob<ImportReport>; record: UploadRecord<UploadOptions>; bytes: Uint8Array; settings: Settings },
): Promise<void> {
  const { job, record, bytes } = input;
  const cid = actor.companyId;
  const options = record.options;
  try {
    const opened = await open(bytes, record.name, options);
    const key = await contentKey(bytes);
    let lastSaved = 0;
    const report = await importRows(store, actor, {
      type: options.type,
      bonusId: options.bonusId,
      match: options.match,
      dryRun: false,
      settings: input.settings,
      fileKey: key.slice(0, 16),
      checkpoint: `${options.type}:${key}`,
      // Everything the upload was told decides its rows: a repeat with other options reads the file again.
      fingerprint: JSON.stringify(options),
      needsProgram: needsProgram(opened, options),
      batches: opened.batches,
      onBatch: async (results) => {
        job.rows += results.length;
        const now = store.clock();
        if (now - lastSaved < 500) return;
        lastSaved = now;
        job.updated = now;
        await saveJob(store.kv, cid, job);
      },
    });
    await recordImport(store, actor, {
      file: record.name,
      type: options.type,
      actor: actor.name,
      dry_run: false,
      started: job.started,
      finished: store.clock(),
      ...report,
    });
    // The job keeps the first rejects only, so it stays one value; the run record has its own share.
    const kept = {
      ...report,
      rejects: report.rejects.slice(0, 100).map((r) => ({ ...r, info: r.info.slice(0, 300) })),
    };
    Object.assign(job, { state: "done", rows: rowsOf(report), report: kept, updated: store.clock() });
  } catch (error) {
    Object.assign(job, { state: "failed", error: (error as Error).message, updated: store.clock() });
  }
  await saveJob(store.kv, cid, job);
}

/** A run started from the back office (its progress, then its report); null when there is none. */
export async function importJob(store: Store, actor: Actor, id: string): Promise<ImportJob<ImportReport> | null> {
  return await getJob<ImportReport>(store.kv, actor.companyId, id);
}
