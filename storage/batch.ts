import { MAX_GET_MANY } from "./limits.ts";

/** getMany calls in flight at once when one reply reads many keys. */
const PARALLEL_READS = 32;

/**
 * Reads any number of keys in getMany batches of MAX_GET_MANY (the remote KV limit), up to PARALLEL_READS
 * batches at once, and returns the entries in the order of the keys: a page's records cost a few round
 * trips, never one per key.
 */
export async function getManyInBatches<T>(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const batches: Deno.KvKey[][] = [];
  for (let i = 0; i < keys.length; i += MAX_GET_MANY) batches.push(keys.slice(i, i + MAX_GET_MANY));
  const results: Deno.KvEntryMaybe<T>[][] = new Array(batches.length);
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const i = next++;
      results[i] = await kv.getMany<T[]>(batches[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_READS, batches.length) }, worker));
  return results.flat();
}

/** Range lists in flight at once when one reply reads many runs of ids. */
const PARALLEL_LISTS = 32;

/** A run of ascending ids, each at most a small gap from the one before. */
export interface IdRun {
  from: number;
  to: number;
  /** How many of the wanted ids the run holds. */
  count: number;
}

/** Groups ids (any order, repeats allowed) into ascending runs whose neighbours are at most `maxGap` apart. */
export function idRuns(ids: Iterable<number>, maxGap: number): IdRun[] {
  const runs: IdRun[] = [];
  for (const id of [...new Set(ids)].sort((a, b) => a - b)) {
    const last = runs.at(-1);
    if (last && id - last.to <= maxGap) {
      last.to = id;
      last.count++;
    } else runs.push({ from: id, to: id, count: 1 });
  }
  return runs;
}

/**
 * Lists every entry under `[...prefix, id, ...]` for the ids of each run, one range list per run (a run's ids in
 * between are read too), up to PARALLEL_LISTS lists at once.
 */
export async function listRuns<T>(kv: Deno.Kv, prefix: Deno.KvKey, runs: IdRun[]): Promise<Deno.KvEntry<T>[]> {
  const results: Deno.KvEntry<T>[][] = new Array(runs.length);
  let next = 0;
  const worker = async () => {
    while (next < runs.length) {
      const i = next++;
      const { from, to } = runs[i]!;
      const found: Deno.KvEntry<T>[] = [];
      for await (const e of kv.list<T>({ start: [...prefix, from], end: [...prefix, to + 1] }, { batchSize: 1000 })) {
        found.push(e);
      }
      results[i] = found;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_LISTS, runs.length) }, worker));
  return results.flat();
}

/**
 * Reads the records keyed `[...prefix, id]` of many ids in few store calls: runs of nearby ids long enough to fill
 * a getMany batch are read by one range list each (a page of consecutive customers is one call, not twenty),
 * the rest by getMany batches, all at once. Missing ids are absent from the map.
 */
export async function getByIds<T>(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  ids: Iterable<number>,
  options: { maxGap?: number } = {},
): Promise<Map<number, T>> {
  const out = new Map<number, T>();
  const wanted = new Set(ids);
  const runs = idRuns(wanted, options.maxGap ?? 2);
  const long = runs.filter((r) => r.count >= MAX_GET_MANY);
  const single: number[] = [];
  for (const r of runs) {
    if (r.count >= MAX_GET_MANY) continue;
    for (let id = r.from; id <= r.to; id++) single.push(id);
  }
  const [listed, got] = await Promise.all([
    listRuns<T>(kv, prefix, long),
    getManyInBatches<T>(kv, single.filter((id) => wanted.has(id)).map((id) => [...prefix, id])),
  ]);
  for (const e of listed) {
    const id = e.key[prefix.length] as number;
    if (e.key.length === prefix.length + 1 && wanted.has(id)) out.set(id, e.value);
  }
  for (const e of got) if (e.value !== null) out.set(e.key[prefix.length] as number, e.value);
  return out;
}
