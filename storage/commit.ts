/**
 * The one commit path every write takes: checks, sets, deletes and counter sums collected as data, the audit
 * entry of the change appended, the whole counted against the remote KV limits before it is sent, and lost races
 * retried through one bounded retry with backoff.
 */
import { type Actor, type AuditEntity, type AuditEntry, auditEntry } from "../domain/audit.ts";
import { AppError, ConflictError } from "../domain/errors.ts";
import { auditKeys, claimKeys, UNIQUE_INDEXES } from "./keys.ts";
import { MAX_ATOMIC_BYTES, MAX_CHECKS, MAX_KEY_BYTES, MAX_MUTATIONS, MAX_RETRIES, MAX_VALUE_BYTES } from "./limits.ts";
import type { Store } from "./store.ts";

/** A change too large for one atomic operation of the remote store: refused before anything is written. */
export class StoreLimitError extends AppError {
  override name = "StoreLimitError";
  override status = 413;
}

/** Returned by an attempt that lost a race: read again and retry. */
export const RETRY: unique symbol = Symbol("retry");

/** Longest pause between two attempts, ms; the pause is random up to min(this, 2^attempt). */
const MAX_BACKOFF_MS = 64;

/** A short random pause before a retry, so writers that collided do not collide again at once. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(MAX_BACKOFF_MS, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `attempt` until it returns something other than RETRY, at most `attempts` times (default MAX_RETRIES) with
 * a random backoff between tries; then fails with 409 `message`.
 */
export async function withRetry<T>(
  attempt: (n: number) => Promise<T | typeof RETRY>,
  options: { message: string; attempts?: number },
): Promise<T> {
  const attempts = options.attempts ?? MAX_RETRIES;
  for (let n = 1; n <= attempts; n++) {
    if (n > 1) await backoff(n);
    const result = await attempt(n);
    if (result !== RETRY) return result as T;
  }
  throw new ConflictError(options.message);
}

const encoder = new TextEncoder();

/** Encoded size of a key, bytes (each part plus a tag byte, as KV's encoding; numbers as 9). */
export function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    n += 2 + (typeof part === "string" ? encoder.encode(part).length : part instanceof Uint8Array ? part.length : 9);
  }
  return n;
}

/** An upper bound of keySize that costs no encoding: a UTF-16 unit is at most 3 bytes of UTF-8. */
function keyBound(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    n += 2 + (typeof part === "string" ? part.length * 3 : part instanceof Uint8Array ? part.length : 9);
  }
  return n;
}

function serialised(value: unknown): string | null {
  if (value === null || value === undefined || typeof value !== "object" || value instanceof Deno.KvU64) return null;
  return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v);
}

/** Approximate serialised size of a value, bytes. */
export function valueSize(value: unknown): number {
  if (typeof value === "string") return encoder.encode(value).length + 4;
  const json = serialised(value);
  return json === null ? 9 : encoder.encode(json).length + 16;
}

/** An upper bound of valueSize that costs no encoding. */
function valueBound(value: unknown): number {
  if (typeof value === "string") return value.length * 3 + 4;
  const json = serialised(value);
  return json === null ? 9 : json.length * 3 + 16;
}

/** What one atomic operation uses of the limits. */
export interface WriteSize {
  checks: number;
  mutations: number;
  bytes: number;
}

type Mutation =
  | { type: "set"; key: Deno.KvKey; value: unknown; expireIn?: number }
  | { type: "delete"; key: Deno.KvKey }
  | { type: "sum"; key: Deno.KvKey; n: bigint };

/** The checks and mutations of one atomic operation, with the audit entries of the changes it makes. */
export class Write {
  #checks: Deno.AtomicCheck[] = [];
  #mutations: Mutation[] = [];
  #sums = new Map<string, Mutation & { type: "sum" }>();
  #epochsSet = new Set<string>();
  #counted = new Set<string>();

  constructor(readonly store: Store, readonly actor: Actor | null = null) {}

  /** Commits only if each entry still has the versionstamp it was read with (null: still absent). */
  check(...checks: Deno.AtomicCheck[]): this {
    this.#checks.push(...checks);
    return this;
  }
  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.#mutations.push({ type: "set", key, value, expireIn: options?.expireIn });
    return this;
  }
  delete(key: Deno.KvKey): this {
    this.#mutations.push({ type: "delete", key });
    return this;
  }
  /** Adds to a grow-only counter; sums of one key in one write are merged into one mutation. */
  sum(key: Deno.KvKey, n = 1n): this {
    const id = JSON.stringify(key);
    const known = this.#sums.get(id);
    if (known) known.n += n;
    else {
      const m = { type: "sum" as const, key, n };
      this.#sums.set(id, m);
      this.#mutations.push(m);
    }
    return this;
  }

  /**
   * Records the change of one record in the audit trail (nothing when only bookkeeping fields changed). Entries
   * sort by time, then by the store's increasing order: a change made after another in this process, and so every
   * retry of a write that lost a race, sorts after it even in the same millisecond.
   */
  audit(change: {
    entity: AuditEntity;
    entityId: string | number;
    before: object | null;
    after: object | null;
    /** Where the entry is filed when not under its own entity (balances sit in their customer's history). */
    filedUnder?: { entity: AuditEntity; entityId: string | number };
  }): AuditEntry | null {
    if (!this.actor) return null;
    const entry = auditEntry(this.actor, {
      entity: change.entity,
      entityId: change.entityId,
      before: change.before as Record<string, unknown> | null,
      after: change.after as Record<string, unknown> | null,
      at: this.store.clock(),
    });
    if (!entry) return null;
    const home = change.filedUnder ?? { entity: change.entity, entityId: change.entityId };
    const key = auditKeys.entry(this.actor.companyId, home.entity, String(home.entityId), entry.at, {
      order: this.store.nextAuditOrder(),
    });
    this.set(key, entry, { expireIn: this.store.auditRetentionMs });
    return entry;
  }

  /** How many checks and mutations this write holds so far (no encoding: for packing batches). */
  counts(): { checks: number; mutations: number } {
    return { checks: this.#checks.length, mutations: this.#mutations.length };
  }

  /**
   * The commit path's own mutations, added once per write: the claims epoch of each company a unique key of which
   * this write sets (one blind mutation, no read, no check: a batch that read many unique keys absent then checks
   * that one key instead of each, import_batch.ts), and one to the change counter of each company it changes (a
   * sum, which conflicts with nothing: an import tells by it whether anyone else changed the company while it ran,
   * or since). Returns whether the actor's own company is counted.
   */
  #addOwnMutations(): boolean {
    let claimed: Set<string> | null = null;
    let changed: Set<string> | null = null;
    for (const m of this.#mutations) {
      const k = m.key;
      if (k[0] !== "company") continue;
      const cid = k[1] as string;
      (changed ??= new Set()).add(cid);
      if (m.type === "set" && k.length === 4 && UNIQUE_INDEXES.has(k[2] as string)) (claimed ??= new Set()).add(cid);
    }
    if (changed === null) return false;
    if (claimed !== null) {
      for (const cid of claimed) {
        if (this.#epochsSet.has(cid)) continue;
        this.#epochsSet.add(cid);
        this.set(claimKeys.epoch(cid), null);
      }
    }
    for (const cid of changed) {
      if (this.#counted.has(cid)) continue;
      this.#counted.add(cid);
      this.sum(claimKeys.changes(cid));
    }
    return this.actor !== null && changed.has(this.actor.companyId);
  }

  /** What this write uses of the limits (exact byte counts: for reports and tests, not the hot path). */
  size(): WriteSize {
    let bytes = 0;
    for (const c of this.#checks) bytes += keySize(c.key) + 10;
    for (const m of this.#mutations) bytes += keySize(m.key) + (m.type === "set" ? valueSize(m.value) : 9);
    return { checks: this.#checks.length, mutations: this.#mutations.length, bytes };
  }

  /**
   * Refuses a write that the remote store would refuse, naming what is over. Sizes are first bounded without
   * encoding anything (3 bytes per UTF-16 unit); only a bound over a limit is measured exactly.
   */
  assertWithinLimits(what: string): void {
    const over = (reason: string) =>
      new StoreLimitError(`Cannot ${what}: the change is too large for one write (${reason})`);
    const checks = this.#checks.length;
    const mutations = this.#mutations.length;
    if (checks > MAX_CHECKS) throw over(`${checks} checks, at most ${MAX_CHECKS}`);
    if (mutations > MAX_MUTATIONS) throw over(`${mutations} mutations, at most ${MAX_MUTATIONS}`);
    let bound = 0;
    for (const c of this.#checks) bound += keyBound(c.key) + 10;
    for (const m of this.#mutations) {
      let k = keyBound(m.key);
      if (k > MAX_KEY_BYTES) {
        k = keySize(m.key);
        if (k > MAX_KEY_BYTES) throw over(`a key of ${k} bytes, at most ${MAX_KEY_BYTES}`);
      }
      let v = 9;
      if (m.type === "set") {
        v = valueBound(m.value);
        if (v > MAX_VALUE_BYTES) {
          v = valueSize(m.value);
          if (v > MAX_VALUE_BYTES) throw over(`a value of about ${v} bytes, at most ${MAX_VALUE_BYTES}`);
        }
      }
      bound += k + v;
    }
    if (bound > MAX_ATOMIC_BYTES) {
      const bytes = this.size().bytes;
      if (bytes > MAX_ATOMIC_BYTES) throw over(`${bytes} bytes, at most ${MAX_ATOMIC_BYTES}`);
    }
  }

  /** Commits after checking the limits; the versionstamp, or null when a check failed (a lost race). */
  async commit(what = "save"): Promise<string | null> {
    const counted = this.#addOwnMutations();
    this.assertWithinLimits(what);
    const op = this.store.kv.atomic().check(...this.#checks);
    for (const m of this.#mutations) {
      if (m.type === "set") op.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
      else if (m.type === "delete") op.delete(m.key);
      else op.sum(m.key, m.n);
    }
    const res = await op.commit();
    if (!res.ok) return null;
    if (counted && this.actor?.commits) this.actor.commits.n++;
    return res.versionstamp;
  }
}

/** Index keys of one version of a record: unique keys by name, and list (non-unique) keys. */
export interface IndexKeys {
  unique: Record<string, Deno.KvKey | null>;
  lists: Deno.KvKey[];
}

/** What a change from one version of a record to another does to its indexes. */
export interface IndexDiff {
  /** Unique keys the new version claims (new or changed): read, checked and set. */
  claim: { name: string; key: Deno.KvKey }[];
  /** Unique keys the old version held and the new one does not. */
  release: Deno.KvKey[];
  /** List keys to add and to remove. */
  add: Deno.KvKey[];
  remove: Deno.KvKey[];
}

const NO_INDEXES: IndexKeys = { unique: {}, lists: [] };

/** The one index diff of every entity: computed as data from the keys of the old and new versions. */
export function diffIndexes(before: IndexKeys | null, after: IndexKeys | null): IndexDiff {
  const b = before ?? NO_INDEXES;
  const a = after ?? NO_INDEXES;
  const id = (k: Deno.KvKey | null) => k === null ? null : JSON.stringify(k);
  const claim: IndexDiff["claim"] = [];
  const release: Deno.KvKey[] = [];
  for (const name of new Set([...Object.keys(b.unique), ...Object.keys(a.unique)])) {
    const old = b.unique[name] ?? null;
    const next = a.unique[name] ?? null;
    if (id(old) === id(next)) continue;
    if (next !== null) claim.push({ name, key: next });
    if (old !== null) release.push(old);
  }
  const oldLists = new Set(b.lists.map((k) => JSON.stringify(k)));
  const newLists = new Set(a.lists.map((k) => JSON.stringify(k)));
  return {
    claim,
    release,
    add: a.lists.filter((k) => !oldLists.has(JSON.stringify(k))),
    remove: b.lists.filter((k) => !newLists.has(JSON.stringify(k))),
  };
}

/**
 * The id a unique index entry names: the entry holds its record's id, or (card indexes, storage/cards.ts) an array
 * starting with it; null for an absent entry or a value of neither form.
 */
export function indexedId(value: unknown): number | null {
  if (typeof value === "number") return value;
  if (Array.isArray(value) && typeof value[0] === "number") return value[0];
  return null;
}

/** How unique keys a change claims were taken: as read, or assumed free without a read (optimistic). */
export interface Claims {
  entries: Deno.KvEntryMaybe<unknown>[];
  /** True when the keys were assumed free: a failed commit must then be explained by `explainFailure`. */
  optimistic: boolean;
}

/**
 * Reads the unique keys a diff claims: each must be free or already held by `id`, else `clash(name)` is thrown (it
 * may instead return RETRY, e.g. when a lookup key was just taken by a concurrent create, and so does this).
 * The entries read are checked unchanged at commit by addIndexDiff.
 *
 * With `optimistic`, nothing is read: the keys are assumed free and checked absent at commit, which saves a round
 * trip on every create and every change of a unique value (the common case: the value is new). A commit that then
 * fails is explained by `explainFailure`, which reads the keys and reports a clash; the retry reads first.
 */
export async function readClaims(
  kv: Deno.Kv,
  diff: IndexDiff,
  options: { id: number; clash: (name: string) => typeof RETRY | never; optimistic?: boolean },
): Promise<Claims | typeof RETRY> {
  if (options.optimistic) return assumedFree(diff);
  const current = diff.claim.length === 0 ? [] : await getManyChecked(kv, diff.claim.map((c) => c.key));
  for (const [i, { name }] of diff.claim.entries()) {
    const value = current[i]!.value;
    if (value !== null && indexedId(value) !== options.id && options.clash(name) === RETRY) return RETRY;
  }
  return { entries: current, optimistic: false };
}

/** The keys a diff claims, taken as free without a read: each is checked absent at commit (optimistic claims). */
export function assumedFree(diff: IndexDiff): Claims {
  return { entries: diff.claim.map(({ key }) => ({ key, value: null, versionstamp: null })), optimistic: true };
}

/**
 * After a commit with optimistic claims failed: reads the claimed keys and throws (or returns RETRY from) `clash`
 * when one is held by another record; otherwise the failure was a race elsewhere, to be retried.
 */
export async function explainFailure(
  kv: Deno.Kv,
  diff: IndexDiff,
  options: { claims: Claims; id: number; clash: (name: string) => typeof RETRY | never },
): Promise<typeof RETRY> {
  if (options.claims.optimistic && diff.claim.length > 0) {
    await readClaims(kv, diff, { id: options.id, clash: options.clash });
  }
  return RETRY;
}

/**
 * Adds an index diff to a write: claimed keys checked as read and pointed at `id` (or set to `value`, for indexes
 * whose entries hold more than the id), old keys deleted, lists kept.
 */
export function addIndexDiff(
  write: Write,
  diff: IndexDiff,
  options: { claims: Claims; id: number; value?: unknown },
): void {
  const value = options.value === undefined ? options.id : options.value;
  diff.claim.forEach(({ key }, i) => write.check(options.claims.entries[i]!).set(key, value));
  for (const key of diff.release) write.delete(key);
  for (const key of diff.remove) write.delete(key);
  for (const key of diff.add) write.set(key, null);
}

async function getManyChecked(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<unknown>[]> {
  const out: Deno.KvEntryMaybe<unknown>[] = [];
  for (let i = 0; i < keys.length; i += 10) out.push(...await kv.getMany(keys.slice(i, i + 10)));
  return out;
}

export type { AuditEntry };
