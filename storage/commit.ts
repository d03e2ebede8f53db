/**
 * The one commit path every write takes: checks, sets, deletes and counter sums collected as data, the audit
 * entry of the change appended, the whole counted against the remote KV limits before it is sent, and lost races
 * retried through one bounded retry with backoff.
 */
import { type Actor, type AuditEntity, type AuditEntry, auditEntry } from "../domain/audit.ts";
import { AppError, ConflictError } from "../domain/errors.ts";
import { auditKeys } from "./keys.ts";
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

/** Approximate encoded size of a key, bytes (each part plus a tag byte, as KV's encoding). */
export function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    n += 2 + (typeof part === "string" ? encoder.encode(part).length : part instanceof Uint8Array ? part.length : 9);
  }
  return n;
}

/** Approximate serialised size of a value, bytes. */
export function valueSize(value: unknown): number {
  if (value === null || value === undefined) return 1;
  if (value instanceof Deno.KvU64) return 8;
  if (typeof value === "string") return encoder.encode(value).length + 4;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return 9;
  return encoder.encode(JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v)).length + 16;
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

  /** What this write uses of the limits. */
  size(): WriteSize {
    let bytes = 0;
    for (const c of this.#checks) bytes += keySize(c.key) + 10;
    for (const m of this.#mutations) bytes += keySize(m.key) + (m.type === "set" ? valueSize(m.value) : 9);
    return { checks: this.#checks.length, mutations: this.#mutations.length, bytes };
  }

  /** Refuses a write that the remote store would refuse, naming what is over. */
  assertWithinLimits(what: string): void {
    const size = this.size();
    const over = (reason: string) =>
      new StoreLimitError(`Cannot ${what}: the change is too large for one write (${reason})`);
    if (size.checks > MAX_CHECKS) throw over(`${size.checks} checks, at most ${MAX_CHECKS}`);
    if (size.mutations > MAX_MUTATIONS) throw over(`${size.mutations} mutations, at most ${MAX_MUTATIONS}`);
    if (size.bytes > MAX_ATOMIC_BYTES) throw over(`${size.bytes} bytes, at most ${MAX_ATOMIC_BYTES}`);
    for (const m of this.#mutations) {
      if (keySize(m.key) > MAX_KEY_BYTES) throw over(`a key of ${keySize(m.key)} bytes, at most ${MAX_KEY_BYTES}`);
      if (m.type === "set" && valueSize(m.value) > MAX_VALUE_BYTES) {
        throw over(`a value of about ${valueSize(m.value)} bytes, at most ${MAX_VALUE_BYTES}`);
      }
    }
  }

  /** Commits after checking the limits; the versionstamp, or null when a check failed (a lost race). */
  async commit(what = "save"): Promise<string | null> {
    this.assertWithinLimits(what);
    const op = this.store.kv.atomic().check(...this.#checks);
    for (const m of this.#mutations) {
      if (m.type === "set") op.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
      else if (m.type === "delete") op.delete(m.key);
      else op.sum(m.key, m.n);
    }
    const res = await op.commit();
    return res.ok ? res.versionstamp : null;
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
 * Reads the unique keys a diff claims: each must be free or already held by `id`, else `clash(name)` is thrown (it
 * may instead return RETRY, e.g. when a lookup key was just taken by a concurrent create, and so does this).
 * The entries read are checked unchanged at commit by addIndexDiff.
 */
export async function readClaims(
  kv: Deno.Kv,
  diff: IndexDiff,
  options: { id: number; clash: (name: string) => typeof RETRY | never },
): Promise<Deno.KvEntryMaybe<unknown>[] | typeof RETRY> {
  const current = diff.claim.length === 0 ? [] : await getManyChecked(kv, diff.claim.map((c) => c.key));
  for (const [i, { name }] of diff.claim.entries()) {
    const value = current[i]!.value;
    if (value !== null && value !== options.id && options.clash(name) === RETRY) return RETRY;
  }
  return current;
}

/** Adds an index diff to a write: claimed keys checked as read and pointed at `id`, old keys deleted, lists kept. */
export function addIndexDiff(
  write: Write,
  diff: IndexDiff,
  options: { claims: Deno.KvEntryMaybe<unknown>[]; id: number },
): void {
  diff.claim.forEach(({ key }, i) => write.check(options.claims[i]!).set(key, options.id));
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
