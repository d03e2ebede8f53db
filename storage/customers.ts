import { type Customer, customerLists, customerUniqueKeys, uniqueClash } from "../domain/customer.ts";
import { ConflictError, NotFoundError, ValidationError } from "../domain/errors.ts";
import type { Actor } from "../domain/audit.ts";
import { addPendingEntry, type NameResolution, requireEntry, resolveName } from "./directories.ts";
import { keys, nameKeys } from "./keys.ts";
import { lastNameKey } from "../domain/name_index.ts";
import { getByIds } from "./batch.ts";
import {
  addIndexDiff,
  assumedFree,
  type Claims,
  diffIndexes,
  explainFailure,
  type IndexKeys,
  readClaims,
  RETRY,
  withRetry,
  Write,
} from "./commit.ts";
import { BUCKET_SIZE, MAX_ATOMIC_BYTES, MAX_CHECKS, MAX_CREATE_RETRIES, MAX_RETRIES } from "./limits.ts";
import { keepRecent, type Store } from "./store.ts";
import { type Left, type Queued, togetherQueue } from "./together.ts";

/** The unique customer fields and the index each one lives in. */
const UNIQUE = {
  phone: keys.customerByPhone,
  email: keys.customerByEmail,
  external_id: keys.customerByExternalId,
} as const;

type UniqueField = keyof typeof UNIQUE;

/**
 * The index keys of one version of a customer: its unique values and the lists it is in (the one list of them, so
 * every writer, the importer's batched create too, writes the same ones).
 */
export function customerIndexKeys(cid: string, c: Customer): IndexKeys {
  const unique = customerUniqueKeys(c);
  return {
    unique: {
      phone: unique.phone === null ? null : UNIQUE.phone(cid, unique.phone),
      email: unique.email === null ? null : UNIQUE.email(cid, unique.email),
      external_id: unique.external_id === null ? null : UNIQUE.external_id(cid, unique.external_id),
    },
    lists: [...customerLists(c).map((list) => keys.customerListEntry(cid, list, c.id)), ...nameEntry(cid, c)],
  };
}

/** Counts a customer entering or leaving the last-name index (a rename moves the entry and keeps the count). */
export function countNameEntry(write: Write, cid: string, before: Customer | null, after: Customer): void {
  const had = before !== null && lastNameKey(before.lname) !== null;
  const has = lastNameKey(after.lname) !== null;
  if (had !== has) write.sum(nameKeys.total(cid, has ? "in" : "out"));
}

/** Number of customers in the last-name index, from its two grow-only counters: no scan. */
export async function countNamed(kv: Deno.Kv, cid: string): Promise<number> {
  const [inc, out] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>([
    nameKeys.total(cid, "in"),
    nameKeys.total(cid, "out"),
  ]);
  return Number((inc.value?.value ?? 0n) - (out.value?.value ?? 0n));
}

/** The customer's entry in the last-name index, when it has a last name. */
function nameEntry(cid: string, c: Customer): Deno.KvKey[] {
  const name = lastNameKey(c.lname);
  return name === null ? [] : [nameKeys.entry(cid, name, c.id)];
}

/** What to change: how to find the customer, what group to put them in, and the pure rule that decides. */
export interface UpsertCustomer {
  /** Find by internal id; a missing customer is a 404. */
  id?: number;
  /** Find by external id when no id is given; a missing customer is created when `create` is true. */
  externalId?: string;
  /** Whether a customer not found (or not identified) is created. */
  create: boolean;
  /**
   * Without id and external id: a key linking another system's customer to ours (holding our id). The customer it
   * points at is the one updated; else the new customer is written with it (checked as read) in the same atomic
   * operation, so that concurrent creates for one linked customer make one customer (the others update it).
   */
  link?: Deno.KvKey;
  /** Put the customer in this group (null: no group); it must exist. Wins over groupName. */
  groupId?: number | null;
  /** Put the customer in the group of this name (case-insensitive), creating the group when new. */
  groupName?: string | null;
  /** Computes the customer to store from the current one (null for a new one). */
  decide: (
    existing: Customer | null,
    context: { id: number; groupId: number | null | undefined; now: number },
  ) => Customer;
}

/** Result of an upsert: the stored customer and whether it was created. */
export interface UpsertResult {
  customer: Customer;
  isNew: boolean;
}

/**
 * Creates or updates a customer with its unique indexes, list indexes, counters and audit entry in one atomic
 * operation; lost races are re-read and retried. Creates take their id inside a per-company queue of this process
 * that holds only the commit (the sequence is known from the last commit), so concurrent creates neither
 * retry-storm nor serialise their reads; ids are dense and in commit order.
 */
export async function upsertCustomer(store: Store, actor: Actor, request: UpsertCustomer): Promise<UpsertResult> {
  const cid = actor.companyId;
  return await withRetry(async (attempt) => {
    const { entry, link } = await locate(store.kv, cid, request);
    try {
      // The first attempt takes new unique values as free without reading them; a clash shows as a failed commit.
      const prepared = await prepare(store, actor, request, entry, { optimistic: attempt === 1 });
      if (prepared === RETRY) return RETRY;
      const plan = link ? { ...prepared, link } : prepared;
      const result = entry ? await commit(new Write(store, actor), plan) : await queueCreate(store, actor, plan);
      if (result) return result;
      return await explainFailure(store.kv, indexDiff(cid, entry?.value ?? null, plan.next), {
        claims: plan.claims,
        id: plan.next.id,
        clash: plan.clash,
      });
    } catch (error) {
      // A create found by external id that clashed (on any value: a till's retry carries the same phone) because a
      // concurrent create of that customer came first: update the customer it made, as if this request had come a
      // moment later. Only when the lookup now finds one: a value held by anyone else stays a 409 naming it.
      if (!entry && request.externalId !== undefined && error instanceof ConflictError) {
        if ((await locate(store.kv, cid, request)).entry) return RETRY;
      }
      throw error;
    }
  }, {
    message: "Cannot save customer: it was changed concurrently, try again",
    attempts: request.create && request.id === undefined ? MAX_CREATE_RETRIES : MAX_RETRIES,
  });
}

async function locate(
  kv: Deno.Kv,
  cid: string,
  request: UpsertCustomer,
): Promise<{ entry: Deno.KvEntry<Customer> | null; link?: Deno.KvEntryMaybe<number> }> {
  if (request.id === undefined && request.externalId === undefined && request.link !== undefined) {
    const link = await kv.get<number>(request.link);
    if (link.value !== null) {
      const entry = await kv.get<Customer>(keys.customer(cid, link.value));
      if (entry.value !== null) return { entry: entry as Deno.KvEntry<Customer> };
    }
    if (!request.create) throw new NotFoundError("Linked customer not found", "id");
    return { entry: null, link };
  }
  if (request.id !== undefined) {
    const entry = await kv.get<Customer>(keys.customer(cid, request.id));
    if (entry.value === null) throw new NotFoundError(`Customer "${request.id}" not found`, "id");
    return { entry: entry as Deno.KvEntry<Customer> };
  }
  if (request.externalId !== undefined) {
    const index = await kv.get<number>(keys.customerByExternalId(cid, request.externalId));
    if (index.value !== null) {
      const entry = await kv.get<Customer>(keys.customer(cid, index.value));
      if (entry.value !== null) return { entry: entry as Deno.KvEntry<Customer> };
    }
    if (!request.create) {
      throw new NotFoundError(`Customer with external_id "${request.externalId}" not found`, "external_id");
    }
    return { entry: null };
  }
  if (!request.create) {
    throw new ValidationError("id", "Cannot update customer: pass id or external_id, or allow create_if_not_exist");
  }
  return { entry: null };
}

/** Everything a write needs that can be read before its id is known. */
interface Plan {
  entry: Deno.KvEntry<Customer> | null;
  next: Customer;
  group: NameResolution | null;
  /** Unique index entries the new version claims, as read or assumed free (checked at commit). */
  claims: Claims;
  /** Throws the 409 of a unique value held by another customer. */
  clash: (field: string) => never;
  /** A create's link (UpsertCustomer.link), as read: checked and pointed at the new id. */
  link?: Deno.KvEntryMaybe<number>;
}

async function prepare(
  store: Store,
  actor: Actor,
  request: UpsertCustomer,
  entry: Deno.KvEntry<Customer> | null,
  options: { optimistic: boolean },
): Promise<Plan | typeof RETRY> {
  const { kv } = store;
  const cid = actor.companyId;
  const now = store.clock();
  const existing = entry?.value ?? null;
  let groupId: number | null | undefined = undefined;
  let group: NameResolution | null = null;
  if (request.groupId !== undefined) {
    if (request.groupId !== null) {
      await requireEntry(kv, cid, { kind: "groups", id: request.groupId, field: "group_id" });
    }
    groupId = request.groupId;
  } else if (request.groupName !== undefined) {
    if (request.groupName === null) groupId = null;
    else {
      group = await resolveName(kv, cid, { kind: "groups", name: request.groupName, now });
      groupId = group.id;
    }
  }
  const id = existing?.id ?? 0;
  const next = request.decide(existing, { id, groupId, now });
  if (!existing && request.externalId !== undefined && next.external_id === null) {
    next.external_id = request.externalId;
  }
  // Unique keys do not depend on the id, so a new customer's claims are read before its id is taken.
  const unique = customerUniqueKeys(next);
  const clash = (field: string): never => {
    throw uniqueClash(field, field === "email" ? next.email! : unique[field as UniqueField]!, !existing);
  };
  const claims = await readClaims(kv, indexDiff(cid, existing, next), { id, clash, optimistic: options.optimistic });
  if (claims === RETRY) return RETRY;
  return { entry, next, group, claims, clash };
}

function indexDiff(cid: string, before: Customer | null, after: Customer) {
  return diffIndexes(before ? customerIndexKeys(cid, before) : null, customerIndexKeys(cid, after));
}

/** The company's customer id sequence as this process's last create left it (cached), or as read. */
async function idSequence(store: Store, cid: string) {
  const seqKey = keys.sequence(cid, "customers");
  const cacheKey = `${cid}/customers`;
  let seq = store.sequences.get(cacheKey);
  if (!seq) {
    const read = await store.kv.get<number>(seqKey);
    seq = { value: read.value ?? 0, versionstamp: read.versionstamp ?? "" };
  }
  return { seqKey, cacheKey, seq };
}

/**
 * Commits a create: it takes the next id of the sequence (cached from this process's last commit) in its own commit,
 * checked, so ids stay dense and in commit order across processes: a new customer always has the highest id, which
 * paging by id and the streamed whole-list read rely on (reserving blocks of ids per process, tried in round 3 of
 * the read-path work, let a later create take an id below existing customers: tests/blackbox_6_test.ts).
 */
async function commitCreate(store: Store, actor: Actor, plan: Plan): Promise<UpsertResult | null> {
  const cid = actor.companyId;
  const { seqKey, cacheKey, seq } = await idSequence(store, cid);
  const id = seq.value + 1;
  const write = new Write(store, actor);
  write.check({ key: seqKey, versionstamp: seq.versionstamp || null }).set(seqKey, id);
  const result = await commit(write, { ...plan, next: { ...plan.next, id } });
  if (result) store.sequences.set(cacheKey, { value: id, versionstamp: result.versionstamp });
  else store.sequences.delete(cacheKey);
  return result;
}

/** Most creates of one company committed together in one atomic operation (MAX_CHECKS usually stops it sooner). */
const CREATES_PER_COMMIT = 16;
/** Bytes of the records and audit entries of the creates committed together, at most: well inside MAX_ATOMIC_BYTES. */
const GROUP_BYTES = MAX_ATOMIC_BYTES / 2;

/** A customer create waiting for its company's queue. */
type QueuedCreate = Queued<{ plan: Plan }, UpsertResult | null>;

/** Customer creates, committed together when they queue (storage/together.ts). */
const creates = togetherQueue<{ plan: Plan }, UpsertResult | null>({
  queueKey: (cid) => `customers:${cid}`,
  perCommit: CREATES_PER_COMMIT,
  together: (store, cid, queued) => createTogether(store, cid, queued),
  alone: (store, q) => commitCreate(store, q.actor, q.plan),
});

/**
 * Commits a create in its company's queue; creates that queue are committed together (storage/together.ts). A
 * create that links another system's customer or makes a new group goes alone.
 */
function queueCreate(store: Store, actor: Actor, plan: Plan): Promise<UpsertResult | null> {
  if (plan.link || plan.group?.pending || actor.commits) {
    return store.mutex.run(`customers:${actor.companyId}`, () => commitCreate(store, actor, plan));
  }
  return creates.add(store, actor, { plan });
}

/**
 * Commits several creates of one actor in one atomic operation, with consecutive ids, as optimistic as a create alone:
 * nothing is read (the sequence as this process's last commit left it), each claimed unique key is checked absent,
 * and the sequence is checked, so an id taken by another process or a key taken anywhere fails it whole. Ids above
 * the sequence are never written (every writer of a new record takes its id from the checked sequence, the
 * importer's blocks too), so the records need no check of their own. The checks limit a write to a few creates
 * (MAX_CHECKS). Returns the creates it did not commit: `alone`, in order, for the one-at-a-time path (all those it
 * tried when a check failed, so that path tells a clash, 409, from a race; else those claiming a key another of them
 * claims), and `unfit`, those past the limits, to go together on the queue's next turn. A write that fails otherwise
 * (a store error) gives its own creates that error and none other.
 */
async function createTogether(
  store: Store,
  cid: string,
  queued: QueuedCreate[],
): Promise<Left<QueuedCreate>> {
  let sequence;
  try {
    sequence = await idSequence(store, cid);
  } catch {
    // The sequence could not be read: each create tries alone (and gets its own error if the store still fails).
    return { alone: queued, unfit: [] };
  }
  const { seqKey, cacheKey, seq } = sequence;
  const write = new Write(store, queued[0]!.actor);
  write.check({ key: seqKey, versionstamp: seq.versionstamp || null });
  const claimed = new Set<string>();
  const committed: { q: QueuedCreate; next: Customer }[] = [];
  const twice: QueuedCreate[] = [];
  let checks = 1;
  let bytes = 0;
  let fitted = 0;
  for (const q of queued) {
    const next = { ...q.plan.next, id: seq.value + committed.length + 1 };
    const diff = indexDiff(cid, null, next);
    const names = diff.claim.map((c) => JSON.stringify(c.key));
    bytes += 6 * JSON.stringify(next).length + 2048;
    if (checks + diff.claim.length > MAX_CHECKS || bytes > GROUP_BYTES) break;
    fitted++;
    if (names.some((n) => claimed.has(n))) {
      twice.push(q);
      continue;
    }
    for (const n of names) claimed.add(n);
    checks += diff.claim.length;
    addIndexDiff(write, diff, { claims: assumedFree(diff), id: next.id });
    addChange(write, { ...q.plan, next });
    committed.push({ q, next });
  }
  const unfit = queued.slice(fitted);
  if (committed.length < 2) return { alone: queued.slice(0, fitted), unfit };
  const last = seq.value + committed.length;
  write.set(seqKey, last);
  let versionstamp: string | null;
  try {
    versionstamp = await write.commit("save customers");
  } catch (error) {
    // The write itself failed (not a lost check): each create in it gets the error, as a create alone would; the
    // others go on.
    store.sequences.delete(cacheKey);
    for (const { q } of committed) q.settle(Promise.reject(error));
    return { alone: twice, unfit };
  }
  if (!versionstamp) {
    store.sequences.delete(cacheKey);
    return { alone: queued.slice(0, fitted), unfit };
  }
  store.sequences.set(cacheKey, { value: last, versionstamp });
  for (const { q, next } of committed) q.settle(Promise.resolve({ customer: next, isNew: true }));
  return { alone: twice, unfit };
}

/** One optimistic commit; null means a versionstamp check failed and the caller should try again. */
async function commit(write: Write, plan: Plan): Promise<(UpsertResult & { versionstamp: string }) | null> {
  const cid = write.actor!.companyId;
  const { entry, next } = plan;
  write.check({ key: keys.customer(cid, next.id), versionstamp: entry?.versionstamp ?? null });
  addIndexDiff(write, indexDiff(cid, entry?.value ?? null, next), { claims: plan.claims, id: next.id });
  if (!entry && plan.link) write.check(plan.link).set(plan.link.key, next.id);
  addChange(write, plan);
  const versionstamp = await write.commit("save customer");
  return versionstamp ? { customer: next, isNew: !entry, versionstamp } : null;
}

/**
 * The mutations of one customer's change besides its checks, index keys and link: list and name counters, a group
 * it creates, the record and its audit entry.
 */
function addChange(write: Write, plan: Plan): void {
  const cid = write.actor!.companyId;
  const { entry, next } = plan;
  const existing = entry?.value ?? null;
  const id = next.id;
  const recordKey = keys.customer(cid, id);
  // Every list a customer enters or leaves is counted, whole and per bucket, by grow-only counters.
  const oldLists = existing ? customerLists(existing) : [];
  const newLists = customerLists(next);
  const bucket = Math.floor(id / BUCKET_SIZE);
  for (const list of oldLists) {
    if (newLists.includes(list)) continue;
    write.sum(keys.customerBucket(cid, list, bucket, "out")).sum(keys.customerTotal(cid, list, "out"));
  }
  for (const list of newLists) {
    if (oldLists.includes(list)) continue;
    write.sum(keys.customerBucket(cid, list, bucket, "in")).sum(keys.customerTotal(cid, list, "in"));
  }
  countNameEntry(write, cid, existing, next);
  if (plan.group?.pending) addPendingEntry(write, cid, "groups", plan.group.pending);
  write.set(recordKey, next);
  write.audit({ entity: "customer", entityId: id, before: existing, after: next });
}

/** Reads one customer by id. */
export async function getCustomer(kv: Deno.Kv, cid: string, id: number): Promise<Customer | null> {
  return (await kv.get<Customer>(keys.customer(cid, id))).value;
}

/** Finds the id of the customer holding a unique value (phone digits, lower-cased email, external id). */
export async function findCustomerId(
  kv: Deno.Kv,
  cid: string,
  field: UniqueField,
  value: string,
): Promise<number | null> {
  return (await kv.get<number>(UNIQUE[field](cid, value))).value;
}

/** Reads customers by id, keeping the given order and dropping ids that do not exist. */
export async function getCustomers(kv: Deno.Kv, cid: string, ids: number[]): Promise<Customer[]> {
  const found = await getByIds<Customer>(kv, keys.customers(cid), ids);
  return ids.flatMap((id) => {
    const c = found.get(id);
    return c ? [c] : [];
  });
}

/** Number of customers in a list, from its two grow-only counters: no scan. */
export async function countList(kv: Deno.Kv, cid: string, list: string): Promise<number> {
  const [inc, out] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>([
    keys.customerTotal(cid, list, "in"),
    keys.customerTotal(cid, list, "out"),
  ]);
  return Number((inc.value?.value ?? 0n) - (out.value?.value ?? 0n));
}

/** A list's per-bucket counts summed up, as of the list's two totals (which every change of a bucket moves). */
interface BucketSums {
  /** The list's "in" and "out" totals when the buckets were read. */
  totals: string;
  totalIn: bigint;
  totalOut: bigint;
  /** Bucket numbers that hold anyone, ascending. */
  buckets: number[];
  /** Customers in the list before each of those buckets. */
  before: number[];
  /** Customers in each of those buckets. */
  sizes: number[];
  /** Each of those buckets' own "in" and "out" counters. */
  ins: bigint[];
  outs: bigint[];
}

/** Summed bucket counts by store and list, reused while the list's totals stay the same. */
const BUCKET_SUMS = new WeakMap<Deno.Kv, Map<string, BucketSums>>();

/** The map a process keeps for one store in `maps` (caches of paging state), made on first use. */
function ofStore<V>(maps: WeakMap<Deno.Kv, Map<string, V>>, kv: Deno.Kv): Map<string, V> {
  let map = maps.get(kv);
  if (!map) maps.set(kv, map = new Map());
  return map;
}

/** The name of one bucket of a company's list in the bucket caches. */
function bucketName(cid: string, list: string, bucket: number): string {
  return `${cid}\u0000${list}\u0000${bucket}`;
}

const u64 = (e: Deno.KvEntryMaybe<Deno.KvU64>): bigint => e.value?.value ?? 0n;

/**
 * The sums after changes confined to the last bucket and the one after it (creates: new ids are the highest),
 * from one consistent read of the totals and those four counters; null when the change reached other buckets. All
 * counters only grow, so when the cached counts of the other buckets plus the two read add up to the totals read,
 * none of the other buckets moved: the sums are exact.
 */
async function tailUpdate(kv: Deno.Kv, cid: string, list: string, known: BucketSums): Promise<BucketSums | null> {
  const last = known.buckets.at(-1);
  if (last === undefined) return null;
  const [inc, out, lastIn, lastOut, nextIn, nextOut] = await kv.getMany<Deno.KvU64[]>([
    keys.customerTotal(cid, list, "in"),
    keys.customerTotal(cid, list, "out"),
    keys.customerBucket(cid, list, last, "in"),
    keys.customerBucket(cid, list, last, "out"),
    keys.customerBucket(cid, list, last + 1, "in"),
    keys.customerBucket(cid, list, last + 1, "out"),
  ]);
  const totalIn = u64(inc!);
  const totalOut = u64(out!);
  const totals = `${totalIn}/${totalOut}`;
  if (totals === known.totals) return known;
  const headIn = known.totalIn - known.ins.at(-1)!;
  const headOut = known.totalOut - known.outs.at(-1)!;
  if (headIn + u64(lastIn!) + u64(nextIn!) !== totalIn || headOut + u64(lastOut!) + u64(nextOut!) !== totalOut) {
    return null;
  }
  const at = known.buckets.length - 1;
  const lastSize = Number(u64(lastIn!) - u64(lastOut!));
  const sums: BucketSums = {
    totals,
    totalIn,
    totalOut,
    buckets: known.buckets,
    before: known.before,
    sizes: [...known.sizes.slice(0, at), lastSize],
    ins: [...known.ins.slice(0, at), u64(lastIn!)],
    outs: [...known.outs.slice(0, at), u64(lastOut!)],
  };
  if (nextIn!.versionstamp !== null || nextOut!.versionstamp !== null) {
    // The next bucket was started: it becomes the last.
    sums.buckets = [...known.buckets, last + 1];
    sums.before = [...known.before, known.before[at]! + lastSize];
    sums.sizes.push(Number(u64(nextIn!) - u64(nextOut!)));
    sums.ins.push(u64(nextIn!));
    sums.outs.push(u64(nextOut!));
  }
  return sums;
}

/**
 * The list's bucket counts summed up. Every change of a bucket counter also moves one of the list's two totals,
 * in the same atomic write, and both only grow, so sums of one moment's counters are exact and stay exact while the
 * totals read the same: a deep page then costs one read of the totals, not a list of every bucket before it (2,000
 * buckets at a million customers). After creates (changes at the end of the list) the sums are brought up to date
 * from the last two buckets' counters (tailUpdate), in the same one read.
 */
async function bucketSums(kv: Deno.Kv, cid: string, list: string): Promise<BucketSums> {
  const cache = ofStore(BUCKET_SUMS, kv);
  const name = `${cid}\u0000${list}`;
  const known = cache.get(name);
  if (known) {
    const updated = await tailUpdate(kv, cid, list, known);
    if (updated !== null) {
      if (updated !== known) cache.set(name, updated);
      return updated;
    }
  }
  // Pages that find the sums stale at once (a cold start, a change to an early bucket) share one listing instead of
  // each listing every counter: one that joins a listing begun before it came brings the result up to date with
  // tailUpdate, as from the cache, so it sees every write made before it came; else it lists on its own.
  const listings = ofStore(LISTINGS, kv);
  const running = listings.get(name);
  if (running) {
    const shared = await running.catch(() => null);
    const updated = shared && await tailUpdate(kv, cid, list, shared);
    if (updated) return updated;
  }
  const listing = listExactly(kv, cid, list, cache, name);
  if (!running) {
    listings.set(name, listing);
    const done = () => listings.get(name) === listing && listings.delete(name);
    listing.then(done, done);
  }
  return await listing;
}

/** Listings of bucket counters under way, by store and list. */
const LISTINGS = new WeakMap<Deno.Kv, Map<string, Promise<BucketSums>>>();

/** Lists a list's bucket counters until a listing is exact (at most SUM_ATTEMPTS times) and caches it. */
async function listExactly(
  kv: Deno.Kv,
  cid: string,
  list: string,
  cache: Map<string, BucketSums>,
  name: string,
): Promise<BucketSums> {
  // A listing read in one batch is one consistent reading (every bucket as of one moment), and the totals are the
  // sums of the buckets in the same write, so it is exact whatever is written meanwhile. A longer list comes in
  // several reads: it is exact when the totals read after it equal its sums with the last buckets read again with
  // them (tailUpdate: every counter only grows, so equal sums mean no other counter moved while it was read). Creates
  // land in the last buckets only, so a steady stream of them no longer keeps a long list from being cached (it kept
  // the listing of a million customers' 4,000 counters uncached and repeated three times per page under the mixed
  // load); a change elsewhere may take a few attempts.
  for (let attempt = 1;; attempt++) {
    const { sums, oneRead } = await listBuckets(kv, cid, list);
    const exact = oneRead ? sums : await tailUpdate(kv, cid, list, sums);
    if (exact) {
      if (cache.size >= MAX_CACHED_LISTS) cache.delete(cache.keys().next().value!);
      cache.set(name, exact);
      return exact;
    }
    if (attempt >= SUM_ATTEMPTS) return sums;
  }
}

/** Attempts at a reading of a list's buckets that no write overlapped, before one is used uncached. */
const SUM_ATTEMPTS = 3;

/** Bucket counters a list read takes at once: a list of fewer is one consistent reading. */
const BUCKETS_BATCH = 1000;

/**
 * Reads every bucket counter of a list, summed, with the totals they add up to; `oneRead`: the listing took one read
 * (fewer than BUCKETS_BATCH counters, up to 250,000 customers in the list), so it is one moment's.
 */
async function listBuckets(
  kv: Deno.Kv,
  cid: string,
  list: string,
): Promise<{ sums: BucketSums; oneRead: boolean }> {
  const sums: BucketSums = {
    totals: "",
    totalIn: 0n,
    totalOut: 0n,
    buckets: [],
    before: [],
    sizes: [],
    ins: [],
    outs: [],
  };
  let before = 0;
  let counters = 0;
  const entries = kv.list<Deno.KvU64>({ prefix: keys.customerBuckets(cid, list) }, { batchSize: BUCKETS_BATCH });
  for await (const e of entries) {
    counters++;
    const b = e.key.at(-2) as number;
    const isIn = e.key.at(-1) === "in";
    const n = Number(e.value.value) * (isIn ? 1 : -1);
    if (sums.buckets.at(-1) === b) sums.sizes[sums.sizes.length - 1]! += n;
    else {
      if (sums.buckets.length > 0) before += sums.sizes.at(-1)!;
      sums.buckets.push(b);
      sums.before.push(before);
      sums.sizes.push(n);
      sums.ins.push(0n);
      sums.outs.push(0n);
    }
    if (isIn) {
      sums.ins[sums.ins.length - 1] = e.value.value;
      sums.totalIn += e.value.value;
    } else {
      sums.outs[sums.outs.length - 1] = e.value.value;
      sums.totalOut += e.value.value;
    }
  }
  sums.totals = `${sums.totalIn}/${sums.totalOut}`;
  return { sums, oneRead: counters < BUCKETS_BATCH };
}

/** Lists whose bucket sums one store keeps at once (a few lists per company). */
const MAX_CACHED_LISTS = 1000;

/**
 * The smallest id at `offset` in a list: the bucket holding it is found in the summed bucket counts (binary
 * search), then its position in the bucket from the bucket's ids kept in the process (a list of up to
 * KEPT_LIST_BUCKETS buckets), or from at most half a bucket of keys read from whichever end of the bucket is nearer.
 * So the cost grows with the page size, not the offset. Null: past the end.
 */
async function idAtOffset(kv: Deno.Kv, cid: string, list: string, offset: number): Promise<number | null> {
  const sums = await bucketSums(kv, cid, list);
  let lo = 0;
  let hi = sums.buckets.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sums.before[mid]! <= offset) {
      at = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (at === -1) return null;
  const size = sums.sizes[at]!;
  const skip = offset - sums.before[at]!;
  if (skip >= size) return null;
  const bucket = sums.buckets[at]!;
  if (sums.buckets.length > KEPT_LIST_BUCKETS) {
    const last = at === sums.buckets.length - 1;
    return await idInBucket(kv, cid, list, { bucket, skip, size, last, in: sums.ins[at]!, out: sums.outs[at]! });
  }
  const ids = await bucketIds(kv, cid, list, { bucket, in: sums.ins[at]!, out: sums.outs[at]! });
  return ids[skip] ?? null;
}

/**
 * Lists of at most this many buckets (128,000 customers) have their buckets' ids read whole and kept (bucketIds): the
 * cache holds them all, so a deep page reads no index keys at all. The buckets of a longer list would only take turns
 * in the cache, each page reading 500 keys to keep them for a page that rarely comes: at 1,000,000 customers that read
 * was most of a page's time under the mixed load. A longer list reads only the keys up to the page's first id, from
 * the nearer end of its bucket, and keeps those (idInBucket).
 */
const KEPT_LIST_BUCKETS = 256;

/** The ids read from one end of a bucket of a long list, with the counters its sums had when they were read. */
interface BucketEnd {
  in: bigint;
  out: bigint;
  /** Read from the bucket's end: `ids[k]` is the member at position size - 1 - k. */
  reverse: boolean;
  ids: number[];
}

/** Ends of buckets of long lists by store, then by company, list and bucket; at most MAX_CACHED_BUCKETS. */
const BUCKET_ENDS = new WeakMap<Deno.Kv, Map<string, BucketEnd>>();

/**
 * The id at position `skip` of a bucket of `size` members, reading index keys from the nearer end of the bucket (at
 * most half of it, 250 keys). The last bucket, which creates grow, is read from its start, so a create meanwhile does
 * not move the position. What was read is kept with the bucket's counters as the sums had them (any change of the
 * bucket moves one, and counters only grow, so equal counters mean the same members), and serves a later page whose
 * position it covers: a page asked for again reads no keys. A bucket found smaller than its counts said (a change
 * meanwhile) gives the nearest id the page can go on from, after its last member or its first, and is not kept.
 */
async function idInBucket(
  kv: Deno.Kv,
  cid: string,
  list: string,
  at: { bucket: number; skip: number; size: number; last: boolean; in: bigint; out: bigint },
): Promise<number | null> {
  const cache = ofStore(BUCKET_ENDS, kv);
  const name = bucketName(cid, list, at.bucket);
  const known = cache.get(name);
  if (known && known.in === at.in && known.out === at.out) {
    const k = known.reverse ? at.size - 1 - at.skip : at.skip;
    if (k < known.ids.length) {
      keepRecent(cache, name, known, MAX_CACHED_BUCKETS);
      return known.ids[k]!;
    }
  }
  const start = keys.customerListEntry(cid, list, at.bucket * BUCKET_SIZE);
  const end = keys.customerListEntry(cid, list, (at.bucket + 1) * BUCKET_SIZE);
  const reverse = !at.last && at.skip >= at.size / 2;
  const limit = reverse ? at.size - at.skip : at.skip + 1;
  const ids: number[] = [];
  for await (const e of kv.list({ start, end }, { limit, reverse, batchSize: limit })) ids.push(e.key.at(-1) as number);
  const id = ids.at(-1) ?? null;
  if (ids.length === limit) {
    keepRecent(cache, name, { in: at.in, out: at.out, reverse, ids }, MAX_CACHED_BUCKETS);
    return id;
  }
  if (id === null) return (at.bucket + 1) * BUCKET_SIZE;
  return reverse ? id : id + 1;
}

/** The ids of one bucket of a list, as read when its two counters were `in` and `out`. */
interface BucketIds {
  in: bigint;
  out: bigint;
  ids: number[];
}

/** Bucket ids by store, then by company, list and bucket; at most MAX_CACHED_BUCKETS (about 2 KB each). */
const BUCKET_IDS = new WeakMap<Deno.Kv, Map<string, BucketIds>>();
const MAX_CACHED_BUCKETS = 512;

/**
 * The ids in one bucket of a list, in order, where the bucket's counters are those given (from exact sums). Kept in
 * the process with the counters they were read at: the counters only grow and every entry or exit of the bucket
 * moves one, so equal counters mean the same members, and a deep page takes no read of its bucket's keys. Read
 * between two equal readings of the counters, or else used once and not kept.
 */
async function bucketIds(
  kv: Deno.Kv,
  cid: string,
  list: string,
  at: { bucket: number; in: bigint; out: bigint },
): Promise<number[]> {
  const cache = ofStore(BUCKET_IDS, kv);
  const name = bucketName(cid, list, at.bucket);
  const known = cache.get(name);
  if (known && known.in === at.in && known.out === at.out) {
    // Most recently used last, so the least recently used goes first when the cache is full.
    keepRecent(cache, name, known, MAX_CACHED_BUCKETS);
    return known.ids;
  }
  const counterKeys: [Deno.KvKey, Deno.KvKey] = [
    keys.customerBucket(cid, list, at.bucket, "in"),
    keys.customerBucket(cid, list, at.bucket, "out"),
  ];
  const [in1, out1] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>(counterKeys);
  const ids: number[] = [];
  const start = keys.customerListEntry(cid, list, at.bucket * BUCKET_SIZE);
  const end = keys.customerListEntry(cid, list, (at.bucket + 1) * BUCKET_SIZE);
  for await (const e of kv.list({ start, end }, { batchSize: 1000 })) ids.push(e.key.at(-1) as number);
  const [in2, out2] = await kv.getMany<[Deno.KvU64, Deno.KvU64]>(counterKeys);
  if (in1.versionstamp === in2.versionstamp && out1.versionstamp === out2.versionstamp) {
    keepRecent(cache, name, { in: u64(in1), out: u64(out1), ids }, MAX_CACHED_BUCKETS);
  }
  return ids;
}

/** Reads up to `limit` customers of a list whose ids are at least `fromId`, in id order. */
async function readFrom(
  kv: Deno.Kv,
  cid: string,
  options: { list: string; fromId: number; limit: number },
): Promise<Customer[]> {
  const { list, fromId, limit } = options;
  if (limit <= 0) return [];
  const batchSize = Math.min(1000, limit);
  if (list === "all") {
    const out: Customer[] = [];
    const iter = kv.list<Customer>(
      { prefix: keys.customers(cid), start: keys.customer(cid, fromId) },
      { limit, batchSize },
    );
    for await (const e of iter) out.push(e.value);
    return out;
  }
  const ids: number[] = [];
  const iter = kv.list(
    { prefix: keys.customerList(cid, list), start: keys.customerListEntry(cid, list, fromId) },
    { limit, batchSize },
  );
  for await (const e of iter) ids.push(e.key.at(-1) as number);
  return await getCustomers(kv, cid, ids);
}

/** One page of a list by offset (page numbers). */
export async function pageList(
  kv: Deno.Kv,
  cid: string,
  options: { list: string; offset: number; limit: number },
): Promise<Customer[]> {
  const fromId = options.offset === 0 ? 0 : await idAtOffset(kv, cid, options.list, options.offset);
  if (fromId === null) return [];
  return await readFrom(kv, cid, { list: options.list, fromId, limit: options.limit });
}

/** One page of a list after a cursor (the last id of the previous page). */
export async function pageAfter(
  kv: Deno.Kv,
  cid: string,
  options: { list: string; afterId: number; limit: number },
): Promise<Customer[]> {
  return await readFrom(kv, cid, { list: options.list, fromId: options.afterId + 1, limit: options.limit });
}

/** Streams a whole list in id order, a batch at a time, so replies of any size use little memory. */
export async function* streamList(
  kv: Deno.Kv,
  cid: string,
  options: { list: string; limit: number; batch?: number },
): AsyncGenerator<Customer[]> {
  const batch = options.batch ?? 500;
  let left = options.limit;
  let fromId = 0;
  while (left > 0) {
    const page = await readFrom(kv, cid, { list: options.list, fromId, limit: Math.min(batch, left) });
    if (page.length === 0) return;
    yield page;
    left -= page.length;
    fromId = page[page.length - 1]!.id + 1;
    if (page.length < Math.min(batch, left + page.length)) return;
  }
}

/** Up to `limit` customers whose last name starts with `prefix` (any case), in name then id order. */
export async function findByLastNamePrefix(
  kv: Deno.Kv,
  cid: string,
  options: { prefix: string; limit: number },
): Promise<Customer[]> {
  const prefix = lastNameKey(options.prefix);
  if (prefix === null) return [];
  const ids: number[] = [];
  const iter = kv.list({
    start: [...nameKeys.all(cid), prefix],
    end: [...nameKeys.all(cid), prefix + "\u{10FFFF}"],
  }, { limit: options.limit, batchSize: Math.min(options.limit, 500) });
  for await (const e of iter) ids.push(e.key.at(-1) as number);
  return await getCustomers(kv, cid, ids);
}
