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
