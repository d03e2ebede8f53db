/** Most versionstamp checks one atomic operation may carry on remote (Deno Deploy) KV. */
export const MAX_CHECKS = 10;
/** Most mutations one atomic operation may carry on remote KV. */
export const MAX_MUTATIONS = 1000;
/** Mutations the commit path adds to a write of one company itself: its claims epoch and its change counter. */
export const OWN_MUTATIONS = 2;
/** Most keys one getMany call may read. */
export const MAX_GET_MANY = 10;
/** Largest value KV stores, in bytes. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Largest key KV stores, in bytes. */
export const MAX_KEY_BYTES = 2 * 1024;
/** Largest total size of one atomic operation on remote KV, in bytes. */
export const MAX_ATOMIC_BYTES = 800 * 1024;
/** How often a write that lost a versionstamp race is re-read and tried again. */
export const MAX_RETRIES = 8;
/**
 * How often a write that may create is tried. A create contends only on its company's id sequence, where every lost
 * race is another create landing, so a loss carries nothing the caller should see: with two processes creating at
 * once a create loses about half its tries, and 8 tries failed one insert in 500 (tests/blackbox_9_test.ts in CI).
 * 40 tries make that 2^-40; the backoff (at most 64 ms a try) bounds the wait near 2.5 s.
 */
export const MAX_CREATE_RETRIES = 40;
/** Ids per count bucket: deep pages skip whole buckets by their counts instead of reading their keys. */
export const BUCKET_SIZE = 500;
