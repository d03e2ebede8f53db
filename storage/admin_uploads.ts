/**
 * Files uploaded on the back office's import page, kept between the dry run and the run (in chunks of one KV value,
 * expiring), and the progress of runs started there, readable by every process of the service.
 */
import { adminImportKeys } from "./keys.ts";
import { MAX_ATOMIC_BYTES } from "./limits.ts";

/** Bytes per stored chunk (under one KV value). */
export const UPLOAD_CHUNK_BYTES = 60_000;
/** How long an upload waits for its run. */
export const UPLOAD_TTL_MS = 60 * 60 * 1000;

/** What an upload is: its name, size and the options it was checked with (the run uses the same). */
export interface UploadRecord<O> {
  id: string;
  name: string;
  size: number;
  chunks: number;
  options: O;
  created: number;
}

/** Stores a file's bytes then its record (the record last, so a record always has every chunk). */
export async function saveUpload<O>(
  kv: Deno.Kv,
  cid: string,
  upload: Omit<UploadRecord<O>, "chunks">,
  bytes: Uint8Array,
): Promise<UploadRecord<O>> {
  const chunks = Math.ceil(bytes.length / UPLOAD_CHUNK_BYTES);
  const perCommit = Math.max(1, Math.floor((MAX_ATOMIC_BYTES - 20_000) / UPLOAD_CHUNK_BYTES));
  for (let first = 0; first < chunks; first += perCommit) {
    const op = kv.atomic();
    for (let n = first; n < Math.min(chunks, first + perCommit); n++) {
      const part = bytes.subarray(n * UPLOAD_CHUNK_BYTES, (n + 1) * UPLOAD_CHUNK_BYTES);
      op.set(adminImportKeys.chunk(cid, upload.id, n), part, { expireIn: UPLOAD_TTL_MS });
    }
    const res = await op.commit();
    if (!res.ok) throw new Error(`Upload "${upload.id}" could not be stored`);
  }
  const record: UploadRecord<O> = { ...upload, chunks };
  await kv.set(adminImportKeys.upload(cid, upload.id), record, { expireIn: UPLOAD_TTL_MS });
  return record;
}

/** An upload's record and bytes; null when there is none (never uploaded, or expired). */
export async function readUpload<O>(
  kv: Deno.Kv,
  cid: string,
  id: string,
): Promise<{ record: UploadRecord<O>; bytes: Uint8Array } | null> {
  const record = (await kv.get<UploadRecord<O>>(adminImportKeys.upload(cid, id))).value;
  if (!record) return null;
  const bytes = new Uint8Array(record.size);
  let at = 0;
  let n = 0;
  for await (const e of kv.list<Uint8Array>({ prefix: adminImportKeys.chunks(cid, id) })) {
    if (e.key.at(-1) !== n) return null;
    bytes.set(e.value, at);
    at += e.value.length;
    n++;
  }
  if (n !== record.chunks || at !== record.size) return null;
  return { record, bytes };
}

/** Where a run started from the back office stands. */
export interface ImportJob<R> {
  id: string;
  upload: string;
  file: string;
  type: string;
  actor: string;
  state: "running" | "done" | "failed";
  /** Rows finished so far and the file's rows (from the dry run). */
  rows: number;
  total: number;
  started: number;
  updated: number;
  /** The finished run's report, or why it failed. */
  report: R | null;
  error: string | null;
}

/** Writes a job's state (the last writer wins: only the process running the job writes it). */
export async function saveJob<R>(kv: Deno.Kv, cid: string, job: ImportJob<R>): Promise<void> {
  await kv.set(adminImportKeys.job(cid, job.id), job, { expireIn: 30 * 86_400_000 });
}

/** A job's state, or null. */
export async function getJob<R>(kv: Deno.Kv, cid: string, id: string): Promise<ImportJob<R> | null> {
  return (await kv.get<ImportJob<R>>(adminImportKeys.job(cid, id))).value;
}

/**
 * Claims an upload for one run: the first claim wins (a double-submitted form starts one run), in one atomic
 * operation with the job's first state.
 */
export async function claimUpload<R>(kv: Deno.Kv, cid: string, job: ImportJob<R>): Promise<boolean> {
  const key = adminImportKeys.claim(cid, job.upload);
  const res = await kv.atomic()
    .check({ key, versionstamp: null })
    .set(key, job.id, { expireIn: UPLOAD_TTL_MS })
    .set(adminImportKeys.job(cid, job.id), job, { expireIn: 30 * 86_400_000 })
    .commit();
  return res.ok;
}

/** The job an upload was claimed by, if any. */
export async function jobOfUpload(kv: Deno.Kv, cid: string, upload: string): Promise<string | null> {
  return (await kv.get<string>(adminImportKeys.claim(cid, upload))).value;
}
