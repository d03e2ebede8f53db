/**
 * The store object: the KV handle with everything a process keeps beside it (the clock, caches, per-key queues,
 * the last sequence values it committed). Built once per process by `createStore` and passed to every use case,
 * so nothing lives in hidden module state and tests inject a clock instead of sleeping.
 */
import type { ApiKeyRecord } from "../domain/api_key.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { KeyedMutex } from "./mutex.ts";

/**
 * Puts `value` last in a map kept in order of use, first dropping the least recently used when the map holds `max`
 * others; putting a value found again is how a hit is marked used.
 */
export function keepRecent<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** A bounded map of values that expire: entries older than their age are read again. */
export class TtlCache<V> {
  #entries = new Map<string, { value: V; expires: number }>();
  constructor(readonly options: { maxEntries: number; clock: () => number }) {}

  /** The value of `key` when it is still fresh. */
  get(key: string): V | undefined {
    const hit = this.#entries.get(key);
    return hit && hit.expires > this.options.clock() ? hit.value : undefined;
  }
  /** Stores `value` for `maxAgeMs`; the oldest entry goes when the cache is full. */
  set(key: string, value: V, maxAgeMs: number): void {
    keepRecent(this.#entries, key, { value, expires: this.options.clock() + maxAgeMs }, this.options.maxEntries);
  }
  delete(key: string): void {
    this.#entries.delete(key);
  }
  /** Removes every entry whose value matches, e.g. every cached lookup of a revoked key. */
  deleteWhere(matches: (value: V) => boolean): void {
    for (const [key, entry] of this.#entries) if (matches(entry.value)) this.#entries.delete(key);
  }
  get size(): number {
    return this.#entries.size;
  }
}

/** Settings of a store. */
export interface StoreOptions {
  /** Current time, epoch ms (default Date.now). */
  clock?: () => number;
  /** How long audit entries are kept, days (default 365). */
  auditRetentionDays?: number;
  /** Most directory entries, and most API key lookups, cached at once (default 10,000 each). */
  maxCachedEntries?: number;
}

/** A KV handle with the process state that goes with it. */
export interface Store {
  kv: Deno.Kv;
  clock: () => number;
  /** Queues writers of one hot key inside this process. */
  mutex: KeyedMutex;
  /** Directory entries (groups, card types, programs) read recently, by "cid/kind/id". */
  directories: TtlCache<DirectoryEntry>;
  /** API keys looked up recently (hits and misses), by the presented key: in memory only, never stored. */
  apiKeys: TtlCache<ApiKeyRecord | null>;
  /** Whole directories read recently (the customer groups, for tiers), by "cid/kind". */
  directoryLists: TtlCache<DirectoryEntry[]>;
  /** The last id this process committed from each sequence, with the versionstamp of that commit. */
  sequences: Map<string, { value: number; versionstamp: string }>;
  /** How long an audit entry is kept, ms. */
  auditRetentionMs: number;
  /**
   * The next order of an audit entry within its millisecond: a counter of this process (zero-padded, so it sorts)
   * and the process's id. A change made after another in this process always sorts after it.
   */
  nextAuditOrder: () => string;
}

/** A source of increasing audit orders, unique to this store object (and so to the process). */
function auditOrders(): () => string {
  const processId = crypto.randomUUID().slice(0, 8);
  let counter = 0;
  return () => `${(++counter).toString(36).padStart(10, "0")}-${processId}`;
}

/** Builds the store object of a KV handle. */
export function createStore(kv: Deno.Kv, options: StoreOptions = {}): Store {
  const clock = options.clock ?? Date.now;
  return {
    kv,
    clock,
    mutex: new KeyedMutex(),
    directories: new TtlCache({ maxEntries: options.maxCachedEntries ?? 10_000, clock }),
    apiKeys: new TtlCache({ maxEntries: options.maxCachedEntries ?? 10_000, clock }),
    directoryLists: new TtlCache({ maxEntries: 1000, clock }),
    sequences: new Map(),
    auditRetentionMs: (options.auditRetentionDays ?? 365) * 24 * 60 * 60 * 1000,
    nextAuditOrder: auditOrders(),
  };
}

/** A store object for a bare KV handle (tasks and tests that have only the handle); a store is passed through. */
export function storeOf(kvOrStore: Deno.Kv | Store): Store {
  return "kv" in kvOrStore && "clock" in kvOrStore ? kvOrStore : createStore(kvOrStore);
}
