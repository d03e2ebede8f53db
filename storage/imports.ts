/** Finished import runs: what was imported, when, and how it went (the first rejects), per company. */
import { importKeys } from "./keys.ts";

/** One finished import run. */
export interface ImportRun {
  id: string;
  file: string;
  type: string;
  /** Who ran it (`import:<file>` or `key:<id>`). */
  actor: string;
  dry_run: boolean;
  started: number;
  finished: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  skipped: number;
  /** The first rejects, kept small so the record stays one value. */
  rejects: { line: number; field: string; info: string }[];
}

/** Rejects kept with a run record. */
export const RUN_REJECTS_KEPT = 100;

/** Stores a run; its id sorts by start time. */
export async function saveImportRun(kv: Deno.Kv, cid: string, run: Omit<ImportRun, "id">): Promise<ImportRun> {
  const id = `${String(run.started).padStart(15, "0")}-${crypto.randomUUID().slice(0, 8)}`;
  const record: ImportRun = { ...run, id, rejects: run.rejects.slice(0, RUN_REJECTS_KEPT) };
  for (const r of record.rejects) r.info = r.info.slice(0, 300);
  const res = await kv.atomic().check({ key: importKeys.run(cid, id), versionstamp: null })
    .set(importKeys.run(cid, id), record).commit();
  if (!res.ok) throw new Error(`Import run "${id}" already recorded`);
  return record;
}

/** The latest runs, newest first. */
export async function listImportRuns(kv: Deno.Kv, cid: string, options: { limit: number }): Promise<ImportRun[]> {
  const out: ImportRun[] = [];
  for await (const e of kv.list<ImportRun>({ prefix: importKeys.runs(cid) }, { reverse: true, limit: options.limit })) {
    out.push(e.value);
  }
  return out;
}
