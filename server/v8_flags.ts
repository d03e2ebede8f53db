/**
 * V8 settings the service runs with (`deno task start` passes them; `deno serve` users add
 * `--v8-flags=` + SERVICE_V8_FLAGS.join(",")). An old generation capped at 160 MB keeps the process under 200 MB RSS
 * at any load the bench drives: the heap's live data is a few tens of MB (caches are bounded, long lists are
 * streamed, pages are built a few at a time), so the cap only makes garbage collection start sooner. The young
 * generation keeps 16 MB semi-spaces: a young collection's cost is mostly fixed (about 0.2-0.4 ms here, whatever the
 * garbage), so smaller ones collect more often for the same work. Over HTTP, 4 MB semi-spaces cost a read by id
 * 1.36 us of young collections against 0.47 us with 16 MB, and 32 concurrent pages of 200 ran 117 against 163 pages
 * a second, for 30 MB more peak RSS (docs/performance.md, Memory).
 */
export const SERVICE_V8_FLAGS = ["--max-semi-space-size=16", "--max-old-space-size=160"];
