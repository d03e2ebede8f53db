/** Finished import runs: what was imported, when, and how it went (the first rejects), per company. */
import { claimKeys, importKeys } from "./keys.ts";
import { valueSize } from "./commit.ts";
import { MAX_VALUE_BYTES } from "./limits.ts";

/** One rejected row of an import: its line, the field and why, in the API's words. */
export interface ImportReject {
  line: number;
  field: string;
  info: string;
}

/** The counts of an import (whole or so far) and its rejects. */
export interface ImportCounts {
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  skipped: number;
  rejects: ImportReject[];
}

/** One finished import run; its rejects are the first RUN_REJECTS_KEPT, so the record stays one value. */
export interface ImportRun extends ImportCounts {
  id: string;
  file: string;
  type: string;
  /** Who ran it (`import:<file>` or `key:<id>`). */
  actor: string;
  dry_run: boolean;
  started: number;
  finished: number;
}

/** Rejects kept with a run record. */
export const RUN_REJECTS_KEPT = 100;

/** The shape of a run id: the start time (ms, 15 digits) and a random tail, so ids sort by start time. */
export const RUN_ID = /^\d{15}-[0-9a-f]{8}$/;

/** A new run id for a run started at `started` (ms). */
export function newRunId(started: number): string {
  return `${String(started).padStart(15, "0")}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Stores a run, or with `id` adds to the run of that id (a remote import sends its batches as several requests):
 * counts summed, rejects appended up to RUN_REJECTS_KEPT, the earliest start and latest finish kept.
 */
export async function saveImportRun(
  kv: Deno.Kv,
  cid: string,
  run: Omit<ImportRun, "id">,
  options: { id?: string } = {},
): Promise<ImportRun> {
  const id = options.id ?? newRunId(run.started);
  const key = importKeys.run(cid, id);
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await kv.get<ImportRun>(key);
    const old = current.value;
    const record: ImportRun = old
      ? {
        ...old,
        started: Math.min(old.started, run.started),
        finished: Math.max(old.finished, run.finished),
        created: old.created + run.created,
        updated: old.updated + run.updated,
        unchanged: old.unchanged + run.unchanged,
        rejected: old.rejected + run.rejected,
        skipped: old.skipped + run.skipped,
        rejects: [...old.rejects, ...run.rejects].slice(0, RUN_REJECTS_KEPT),
      }
      : { ...run, id, rejects: run.rejects.slice(0, RUN_REJECTS_KEPT) };
    record.rejects = record.rejects.map((r) => ({ ...r, info: r.info.slice(0, 300) }));
    const res = await kv.atomic().check(current).set(key, record).commit();
    if (res.ok) return record;
  }
  throw new Error(`Import run "${id}" was changed concurrently too often`);
}

/** The latest runs, newest first. */
export async function listImportRuns(kv: Deno.Kv, cid: string, options: { limit: number }): Promise<ImportRun[]> {
  const out: ImportRun[] = [];
  for await (const e of kv.list<ImportRun>({ prefix: importKeys.runs(cid) }, { reverse: true, limit: options.limit })) {
    out.push(e.value);
  }
  return out;
}

/**
 * How far an unfinished import of one file got: the last line of its last finished batch and its counts so far (the
 * first RUN_REJECTS_KEPT rejects).
 */
export interface ImportCheckpoint extends ImportCounts {
  line: number;
  updated_at: number;
  /** The options the run was given (checkpoints of earlier versions have none). */
  options?: string;
}

/**
 * A finished import of one file, kept in place of its checkpoint when nothing but the run itself changed the company
 * while it ran: a re-run of the same file with the same options, with the company's change counter still where the
 * run left it, has the same outcome (every row in unchanged, the same rejects) and needs no reads.
 */
export interface ImportDone extends ImportCounts {
  finished: true;
  updated_at: number;
  /** The company's change counter (claimKeys.changes) right after the run. */
  changes: string;
  /** The options that decide the outcome, as the run was given them. */
  options: string;
  /** The instant a balance the run compared or wrote changes by itself (a lot's start or end), or null for none. */
  valid_until?: number | null;
  // Its rejects are every reject of the run: a run whose rejects do not fit one value keeps no record.
}

/** The checkpoint of an unfinished import, or the record of a finished one, or null. */
export async function getCheckpoint(
  kv: Deno.Kv,
  cid: string,
  key: string,
): Promise<ImportCheckpoint | ImportDone | null> {
  return (await kv.get<ImportCheckpoint | ImportDone>(importKeys.checkpoint(cid, key))).value;
}

/** How many commits have changed the company so far (grow-only; every write of the commit path adds one). */
export async function readChangeCount(kv: Deno.Kv, cid: string): Promise<bigint> {
  const entry = await kv.get<Deno.KvU64>(claimKeys.changes(cid));
  return entry.value?.value ?? 0n;
}

/**
 * Keeps the record of a finished import in place of its checkpoint; when its rejects make it larger than one
 * value, drops the checkpoint instead (a re-run then reads the file again). Returns whether it was kept.
 */
export async function setImportDone(kv: Deno.Kv, cid: string, key: string, done: ImportDone): Promise<boolean> {
  if (valueSize(done) > MAX_VALUE_BYTES - 4096) {
    await clearCheckpoint(kv, cid, key);
    return false;
  }
  await kv.set(importKeys.checkpoint(cid, key), done);
  return true;
}

/** Records how far an import got (after each finished batch). */
export async function setCheckpoint(
  kv: Deno.Kv,
  cid: string,
  key: string,
  checkpoint: ImportCheckpoint,
): Promise<void> {
  const value = {
    ...checkpoint,
    rejects: checkpoint.rejects.slice(0, RUN_REJECTS_KEPT).map((r) => ({ ...r, info: r.info.slice(0, 300) })),
  };
  await kv.set(importKeys.checkpoint(cid, key), value);
}

/** Drops the checkpoint of a finished import. */
export async function clearCheckpoint(kv: Deno.Kv, cid: string, key: string): Promise<void> {
  await kv.delete(importKeys.checkpoint(cid, key));
}
