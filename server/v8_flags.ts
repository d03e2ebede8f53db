/**
 * V8 settings the service runs with (`deno task start` passes them; `deno serve` users add
 * `--v8-flags=` + SERVICE_V8_FLAGS.join(",")). A young generation of 4 MB semi-spaces instead of 16 MB and an old
 * generation capped at 160 MB keep the process under 200 MB RSS at any load the bench drives (32 concurrent pages
 * of 200 with cards and bonuses reached 278 MB without them): the heap's live data is a few tens of MB (caches are
 * bounded, long lists are streamed), so the cap only makes garbage collection start sooner.
 */
export const SERVICE_V8_FLAGS = ["--max-semi-space-size=4", "--max-old-space-size=160"];
