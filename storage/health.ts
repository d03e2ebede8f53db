import { keys } from "./keys.ts";

/** Reads one real key (the first-start marker) and returns the round trip in ms; throws when the store fails. */
export async function storeRoundTrip(kv: Deno.Kv, options: { timeoutMs: number }): Promise<number> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      kv.get(keys.bootstrap()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - started;
}
