/**
 * The integrity check: reads a whole store in key order and reports, per company, every record whose index keys are
 * missing or point elsewhere, orphan index keys, duplicate unique values, counters and bucket counts that disagree
 * with their records, dangling references, balances that differ from their ledger or their lots, and sequences behind their
 * highest id. It streams (kv.list in key order, batched getMany for the other side of each invariant), so memory
 * stays flat however large the store is. Every suspected defect is read again in one consistent getMany (or with a
 * stable versionstamp) before it is reported, so a check run beside the live service does not report writes in
 * flight. With `repair`, what can be derived from the records (indexes, list entries, counters, buckets,
 * sequences) is rewritten with versionstamp checks, so a concurrent write is never clobbered; balances and ledger
 * entries are never changed.
 */
import type { Card } from "../domain/card.ts";
import { type Customer, customerLists, customerUniqueKeys } from "../domain/customer.ts";
import { lastNameKey } from "../domain/name_index.ts";
import type { LedgerEntry } from "../domain/bonus.ts";
import { type DirectoryEntry, directoryNameKey } from "../domain/directory.ts";
import type { BalanceRecord } from "./bonuses.ts";
import { getManyInBatches } from "./batch.ts";
import { bonusKeys, cardKeys, directoryKeys, type DirectoryKind, keys, nameKeys, orderKeys, statKeys } from "./keys.ts";
import type { OrderRecord } from "./purchases.ts";
import { BUCKET_SIZE, MAX_GET_MANY } from "./limits.ts";
import { indexedId, Write } from "./commit.ts";
import { cardIndexValue, holdsCardIndexValue } from "./cards.ts";
import { hourOf, kindOf, POINTS_KINDS, type PointsKind } from "./points_stats.ts";
import { walletOf } from "../domain/points.ts";
import { storeOf } from "./store.ts";

/** One thing the check found. */
export interface Finding {
  company: string;
  /** "defect" breaks an invariant of the store; "note" is worth knowing but not wrong. */
  severity: "defect" | "note";
  /** Short stable name of the check, e.g. "missing_index". */
  check: string;
  /** What is wrong, naming the record and the key. */
  message: string;
  /**
   * What repair did: "repaired"; "not derivable" (the check reports it, a human decides: balances, ledger
   * entries, duplicates, dangling references); "conflict" (changed concurrently, verify again). Absent without
   * repair.
   */
  repair?: "repaired" | "not derivable" | "conflict";
}

/** Where the check is, for a progress line. */
export interface Progress {
  company: string;
  /** The collection being read. */
  phase: string;
  /** Keys read so far, all companies. */
  scanned: number;
}

/** How to run the check. */
export interface VerifyOptions {
  /** Check only this company (default: every company found). */
  company?: string;
  /** Rewrite what can be derived from the records. */
  repair?: boolean;
  /** Called with each finding as soon as it is confirmed (findings are not kept in memory). */
  onFinding?: (finding: Finding) => void;
  /** Called often (every batch of keys); the caller decides how often to show it. */
  onProgress?: (progress: Progress) => void;
  /** The clock the pending points are judged by, epoch ms (default Date.now). */
  now?: () => number;
}

/** Totals of one run. */
export interface VerifySummary {
  companies: string[];
  scanned: number;
  defects: number;
  repaired: number;
  notes: number;
}

/** Records read per batch: the other side of each record is read with batched getMany. */
const CHUNK = 200;
/** Attempts at a stable read (the same versionstamp before and after) of a value that changes under load. */
const STABLE_ATTEMPTS = 10;

/** Collections under a company prefix that the check knows, or ignores on purpose. */
const KNOWN = new Set([
  "sequences",
  "customers",
  "customers_by_phone",
  "customers_by_email",
  "customers_by_external_id",
  "customer_lists",
  "customers_by_lname",
  "customers_by_lname_totals",
  "customer_totals",
  "customer_buckets",
  "cards",
  "cards_by_uid",
  "cards_by_barcode",
  "cards_by_external_id",
  "cards_by_customer",
  "balances",
  "ledger",
  "groups",
  "groups_by_name",
  "card_types",
  "card_types_by_name",
  "bonus_programs",
  "bonus_programs_by_name",
  "orders",
  "order_returns",
  "points_totals",
  "points_hours",
  "points_pending",
  "card_totals",
]);
/** What is wrong with one order record by itself (amounts it cannot have). */
export function orderProblems(o: OrderRecord): string[] {
  const out: string[] = [];
  if (o.returned < 0 || o.returned > o.amount) out.push(`returned ${o.returned} is not within 0..${o.amount}`);
  const spent = o.spent.reduce((sum, a) => sum + a.amount, 0);
  if (spent !== o.spend) out.push(`its lots give ${spent} spent, the order says ${o.spend}`);
  o.spent.forEach((a, i) => {
    const back = o.spent_returned[i] ?? 0;
    if (back < 0 || back > a.amount) out.push(`lot ${a.lot} got back ${back} of the ${a.amount} spent from it`);
  });
  if (o.taken_back_target < 0 || o.taken_back_target > o.accrued) {
    out.push(`taken back ${o.taken_back_target} is not within 0..${o.accrued}`);
  }
  return out;
}

/** Collections written by other parts of the service and not checked here. */
const IGNORED = new Set([
  "idempotency",
  "audit",
  "admin_uploads",
  "admin_upload_chunks",
  "admin_upload_claims",
  "admin_import_jobs",
  // Import runs and checkpoints (storage/imports.ts); the claims epoch and the change counter (storage/commit.ts),
  // single keys.
  "imports",
  "import_checkpoints",
  "claims_epoch",
  "changes",
]);
/** Every list a customer can be in. */
const LISTS = ["all", "phone0", "phone1", "email0", "email1", "p0e0", "p0e1", "p1e0", "p1e1"];

/** A unique index of an entity: value -> id. */
interface Unique<T> {
  field: string;
  key: (value: string) => Deno.KvKey;
  prefix: Deno.KvKey;
  value: (record: T) => string | null;
  /** What an entry must hold for the record when more than its id (card indexes: the owner too). */
  entry?: {
    make: (record: T) => unknown;
    holds: (value: unknown, record: T) => boolean;
    /** Why an entry naming the record is not right: it predates the format, or names another owner. */
    why: (value: unknown, record: T) => string;
  };
}

/** What the generic record and index passes need to know of an entity. */
interface Entity<T extends { id: number }> {
  /** How a record is named in messages, e.g. "Customer". */
  label: string;
  prefix: Deno.KvKey;
  record: (id: number) => Deno.KvKey;
  unique: Unique<T>[];
  /** Non-unique index keys (holding null) that must exist for a record. */
  entries: (record: T) => Deno.KvKey[];
  /** Whether the bulk pass leaves `entries` to a merge join in key order (suspects are still re-read with them). */
  mergedEntries?: boolean;
  sequence: Deno.KvKey;
}

/** A non-unique index (keys ending with a record id, holding null) and how to tell whether a key belongs. */
interface EntrySpec<T> {
  prefix: Deno.KvKey;
  /** The record a key names; null when the key cannot name one. */
  recordKey: (key: Deno.KvKey) => Deno.KvKey | null;
  belongs: (key: Deno.KvKey, record: T) => boolean;
  message: (key: Deno.KvKey, record: T | null) => string;
}

/** Last part of a key read in place of a record that an index key cannot name: never present. */
const NO_RECORD = "\0none";

/** The entries of one customer list, read one at a time in id order. */
class ListCursor {
  head: Deno.KvEntry<unknown> | null = null;
  started = false;
  #iter: AsyncIterator<Deno.KvEntry<unknown>>;
  #onRead: (n: number) => void;

  constructor(readonly list: Deno.KvKeyPart, iter: AsyncIterator<Deno.KvEntry<unknown>>, onRead: (n: number) => void) {
    this.#iter = iter;
    this.#onRead = onRead;
  }

  async next(): Promise<void> {
    this.started = true;
    const r = await this.#iter.next();
    this.head = r.done ? null : r.value;
    if (!r.done) this.#onRead(1);
  }
}

/**
 * What is wrong with the lots of a balance record: their remainders must add up to its balance, none may be below
 * zero, and their ids must be unique and below next_lot_id. Records from before lots have none to check.
 */
export function lotProblems(record: BalanceRecord): string[] {
  if (!record.lots) return [];
  const problems: string[] = [];
  const sum = record.lots.reduce((a, l) => a + l.remaining, 0);
  if (sum !== record.balance) problems.push(`balance is ${record.balance}, its lots hold ${sum}`);
  const seen = new Set<number>();
  for (const lot of record.lots) {
    if (lot.remaining < 0) problems.push(`lot ${lot.id} holds ${lot.remaining}, below zero`);
    if (seen.has(lot.id)) problems.push(`lot id ${lot.id} is used twice`);
    seen.add(lot.id);
    if (!(lot.id < (record.next_lot_id ?? 1))) {
      problems.push(`lot id ${lot.id} is not below next_lot_id ${record.next_lot_id ?? "(missing)"}`);
    }
  }
  return problems;
}

/** Runs the check (and repair) over the store; findings go to `onFinding` as they are confirmed. */
export async function verifyStore(kv: Deno.Kv, options: VerifyOptions = {}): Promise<VerifySummary> {
  const summary: VerifySummary = { companies: [], scanned: 0, defects: 0, repaired: 0, notes: 0 };
  const companies = options.company !== undefined ? [options.company] : await listCompanies(kv);
  for (const cid of companies) {
    summary.companies.push(cid);
    await new CompanyCheck(kv, cid, options, summary).run();
  }
  return summary;
}

/** Every company with a record or with data: ["companies", id] keys, then a skip scan of ["company", id]. */
async function listCompanies(kv: Deno.Kv): Promise<string[]> {
  const found = new Set<string>();
  for await (const e of kv.list({ prefix: keys.companies() })) found.add(String(e.key[1]));
  for (const part of await distinctParts(kv, ["company"])) found.add(String(part));
  return [...found].sort();
}

/**
 * The distinct key parts right after `prefix`, found by skipping past each one's keys: one read per part, not
 * one per key. Only string parts can be skipped this way; a key part of another type ends the scan.
 */
async function distinctParts(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvKeyPart[]> {
  const parts: Deno.KvKeyPart[] = [];
  let start: Deno.KvKey | null = null;
  while (true) {
    const selector: Deno.KvListSelector = start ? { prefix, start } : { prefix };
    let next: Deno.KvKeyPart | undefined;
    for await (const e of kv.list(selector, { limit: 1 })) next = e.key[prefix.length];
    if (next === undefined) return parts;
    parts.push(next);
    if (typeof next !== "string") return parts;
    // "name\0" sorts after every key under "name" and before any longer name.
    start = [...prefix, `${next}\0`];
  }
}

async function* chunks<T>(iter: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of iter) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** A random pause before attempt n of a stable read (none before the first), so it does not keep colliding. */
function pause(attempt: number): Promise<void> {
  if (attempt === 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
}

function u64(entry: Deno.KvEntryMaybe<unknown>): bigint {
  const v = entry.value;
  return v instanceof Deno.KvU64 ? v.value : 0n;
}

function show(key: Deno.KvKey): string {
  return JSON.stringify(key.slice(2));
}

/** The check of one company. */
class CompanyCheck {
  #kv: Deno.Kv;
  #cid: string;
  #options: VerifyOptions;
  #summary: VerifySummary;
  #phase = "";
  /** Expected members per list and bucket, counted from the customer records (ids / BUCKET_SIZE entries per list). */
  #buckets = new Map<string, Map<number, number>>();

  constructor(kv: Deno.Kv, cid: string, options: VerifyOptions, summary: VerifySummary) {
    this.#kv = kv;
    this.#cid = cid;
    this.#options = options;
    this.#summary = summary;
  }

  async run(): Promise<void> {
    await this.#collections();
    const customers = this.#customerEntity();
    const cursors = await this.#listCursors();
    await this.#records(customers, (chunk) => this.#customerExtras(chunk, cursors));
    for (const cursor of cursors) await this.#mergeList(cursor, null);
    for (const u of customers.unique) await this.#index(customers, u);
    await this.#bucketCounts();
    await this.#totals();
    await this.#sequence(customers);
    await this.#nameEntries();
    await this.#nameTotal();

    const cards = this.#cardEntity();
    await this.#records(cards, (chunk) => this.#cardExtras(chunk));
    for (const u of cards.unique) await this.#index(cards, u);
    await this.#ownerEntries();
    await this.#sequence(cards);

    for (const kind of ["groups", "card_types", "bonus_programs"] as const) {
      const entity = this.#directoryEntity(kind);
      await this.#records(entity, async () => {});
      for (const u of entity.unique) await this.#index(entity, u);
      await this.#sequence(entity);
    }

    await this.#ledger();
    await this.#balances();
    await this.#orders();
    await this.#aggregates();
  }

  // ---- reporting -------------------------------------------------------------------------------------------

  /**
   * Reports a defect; with repair, applies `fix` (false: a versionstamp check failed) when one is given. With
   * `retryable`, a repair that loses its check is neither reported nor counted: the caller reads again and retries.
   */
  async #defect(
    check: string,
    message: string,
    fix?: (op: Write) => void,
    options: { retryable?: boolean } = {},
  ): Promise<Finding["repair"]> {
    const finding: Finding = { company: this.#cid, severity: "defect", check, message };
    if (this.#options.repair) {
      if (!fix) finding.repair = "not derivable";
      else {
        // Repairs take the one commit path too (limits counted); they rebuild derived keys, so no audit entry.
        const op = new Write(storeOf(this.#kv));
        fix(op);
        finding.repair = await op.commit("repair") ? "repaired" : "conflict";
        if (finding.repair === "conflict" && options.retryable) return "conflict";
      }
    }
    this.#summary.defects++;
    if (finding.repair === "repaired") this.#summary.repaired++;
    this.#options.onFinding?.(finding);
    return finding.repair;
  }

  /** A value that changed on every attempt to read it stably: not checked, which is worth a note, not a defect. */
  #busy(message: string): void {
    this.#note("busy", `${message}; verify again when the store is quieter`);
  }

  #note(check: string, message: string): void {
    this.#summary.notes++;
    this.#options.onFinding?.({ company: this.#cid, severity: "note", check, message });
  }

  #progress(phase: string, n: number): void {
    this.#phase = phase;
    this.#summary.scanned += n;
    this.#options.onProgress?.({ company: this.#cid, phase: this.#phase, scanned: this.#summary.scanned });
  }

  // ---- the collections themselves ---------------------------------------------------------------------------

  async #collections(): Promise<void> {
    for (const part of await distinctParts(this.#kv, ["company", this.#cid])) {
      if (typeof part === "string" && (KNOWN.has(part) || IGNORED.has(part))) continue;
      this.#note("unknown_collection", `Unknown collection ${JSON.stringify(part)}: not checked`);
    }
  }

  // ---- entities ---------------------------------------------------------------------------------------------

  #customerEntity(): Entity<Customer> {
    const cid = this.#cid;
    const unique = (field: "phone" | "email" | "external_id", key: (cid: string, v: string) => Deno.KvKey) => ({
      field,
      key: (v: string) => key(cid, v),
      prefix: key(cid, "").slice(0, -1),
      value: (c: Customer) => customerUniqueKeys(c)[field],
    });
    return {
      label: "Customer",
      prefix: keys.customers(cid),
      record: (id) => keys.customer(cid, id),
      unique: [
        unique("phone", keys.customerByPhone),
        unique("email", keys.customerByEmail),
        unique("external_id", keys.customerByExternalId),
      ],
      entries: (c) => customerLists(c).map((list) => keys.customerListEntry(cid, list, c.id)),
      mergedEntries: true,
      sequence: keys.sequence(cid, "customers"),
    };
  }

  #cardEntity(): Entity<Card> {
    const cid = this.#cid;
    const unique = (field: "uid" | "barcode" | "external_id", key: (cid: string, v: string) => Deno.KvKey) => ({
      field,
      key: (v: string) => key(cid, v),
      prefix: key(cid, "").slice(0, -1),
      value: (c: Card) => c[field],
      entry: {
        make: cardIndexValue,
        holds: holdsCardIndexValue,
        why: (v: unknown, c: Card) =>
          typeof v === "number"
            ? "holds the bare card id (written before index entries named the owner)"
            : `names owner ${JSON.stringify(Array.isArray(v) ? v[1] : v)}, the card's is ${
              JSON.stringify(c.customer_id)
            }`,
      },
    });
    return {
      label: "Card",
      prefix: cardKeys.cards(cid),
      record: (id) => cardKeys.card(cid, id),
      unique: [
        unique("uid", cardKeys.byUid),
        unique("barcode", cardKeys.byBarcode),
        unique("external_id", cardKeys.byExternalId),
      ],
      entries: (c) => c.customer_id === null ? [] : [cardKeys.ofCustomerEntry(cid, c.customer_id, c.id)],
      sequence: cardKeys.idSequence(cid),
    };
  }

  #directoryEntity(kind: DirectoryKind): Entity<DirectoryEntry> {
    const cid = this.#cid;
    const label = { groups: "Customer group", card_types: "Card type", bonus_programs: "Bonus program" }[kind];
    return {
      label,
      prefix: directoryKeys.entries(cid, kind),
      record: (id) => directoryKeys.entry(cid, kind, id),
      unique: [{
        field: "name",
        key: (v) => directoryKeys.byName(cid, kind, v),
        prefix: directoryKeys.byName(cid, kind, "").slice(0, -1),
        value: (e) => directoryNameKey(e.name),
      }],
      entries: () => [],
      sequence: directoryKeys.sequence(cid, kind),
    };
  }

  // ---- records -> their index keys ---------------------------------------------------------------------------

  /** Reads every record of an entity and checks that each of its index keys exists and holds its id. */
  async #records<T extends { id: number }>(
    entity: Entity<T>,
    extras: (chunk: Deno.KvEntry<T>[]) => Promise<Set<number> | void>,
  ): Promise<void> {
    const phase = show(entity.prefix);
    for await (const chunk of chunks(this.#kv.list<T>({ prefix: entity.prefix }, { batchSize: 500 }), CHUNK)) {
      this.#progress(phase, chunk.length);
      const good: Deno.KvEntry<T>[] = [];
      for (const e of chunk) {
        const id = e.key.at(-1);
        if (typeof id !== "number" || e.value?.id !== id) {
          await this.#defect(
            "record_id_mismatch",
            `${entity.label} record at ${show(e.key)} holds id "${e.value?.id}": not checked further`,
          );
        } else good.push(e);
      }
      const wanted = good.map((e) => this.#wantedKeys(entity, e.value, !entity.mergedEntries));
      const read = await getManyInBatches<unknown>(this.#kv, wanted.flatMap((w) => w.map((k) => k.key)));
      const suspects = (await extras(good)) ?? new Set<number>();
      let at = 0;
      for (const [i, e] of good.entries()) {
        const w = wanted[i]!;
        const values = read.slice(at, at + w.length);
        at += w.length;
        if (w.some((k, j) => !k.holds(values[j]!))) suspects.add(e.value.id);
      }
      for (const id of [...suspects].sort((a, b) => a - b)) await this.#recheckRecord(entity, id);
    }
  }

  /** The index keys a record must have, each with what it must hold (its id, or for list entries anything). */
  #wantedKeys<T extends { id: number }>(
    entity: Entity<T>,
    record: T,
    withEntries = true,
  ): { key: Deno.KvKey; unique: Unique<T> | null; holds: (e: Deno.KvEntryMaybe<unknown>) => boolean }[] {
    const out: { key: Deno.KvKey; unique: Unique<T> | null; holds: (e: Deno.KvEntryMaybe<unknown>) => boolean }[] = [];
    for (const u of entity.unique) {
      const value = u.value(record);
      if (value === null) continue;
      const entry = u.entry;
      const holds = entry
        ? (e: Deno.KvEntryMaybe<unknown>) => entry.holds(e.value, record)
        : (e: Deno.KvEntryMaybe<unknown>) => e.value === record.id;
      out.push({ key: u.key(value), unique: u, holds });
    }
    if (!withEntries) return out;
    for (const key of entity.entries(record)) out.push({ key, unique: null, holds: (e) => e.versionstamp !== null });
    return out;
  }

  /** Reads a suspect record with its index keys in one consistent read and reports (and repairs) what is wrong. */
  async #recheckRecord<T extends { id: number }>(entity: Entity<T>, id: number): Promise<void> {
    const recordKey = entity.record(id);
    for (let attempt = 0; attempt < STABLE_ATTEMPTS; attempt++) {
      const first = await this.#kv.get<T>(recordKey);
      if (first.value === null) return;
      const wanted = this.#wantedKeys(entity, first.value);
      const [record, ...values] = await this.#kv.getMany<unknown[]>([recordKey, ...wanted.map((w) => w.key)]);
      if (record!.versionstamp !== first.versionstamp) continue;
      const name = `${entity.label} "${id}"`;
      for (const [j, w] of wanted.entries()) {
        const index = values[j]!;
        if (w.holds(index)) continue;
        if (!w.unique) {
          await this.#defect("missing_list_entry", `${name}: index entry ${show(w.key)} is missing`, (op) => {
            op.check(record!, index).set(w.key, null);
          });
          continue;
        }
        const value = w.key.at(-1) as string;
        const field = w.unique.field;
        const made = w.unique.entry ? w.unique.entry.make(record!.value as T) : id;
        if (index.value === null) {
          await this.#defect("missing_index", `${name}: ${field} index "${value}" is missing`, (op) => {
            op.check(record!, index).set(w.key, made);
          });
          continue;
        }
        const other = indexedId(index.value);
        if (other === id && w.unique.entry) {
          const why = w.unique.entry.why(index.value, record!.value as T);
          await this.#defect("index_value", `${name}: ${field} index "${value}" ${why}`, (op) => {
            op.check(record!, index).set(w.key, made);
          });
          continue;
        }
        const [again, index2, holder] = await this.#kv.getMany<unknown[]>([
          recordKey,
          w.key,
          entity.record(other ?? -1),
        ]);
        if (again!.versionstamp !== record!.versionstamp || index2!.versionstamp !== index.versionstamp) continue;
        if (other !== null && holder!.value !== null && w.unique.value(holder!.value as T) === value) {
          await this.#defect(
            "duplicate_unique",
            `${entity.label} ${field} "${value}" is claimed by ${entity.label.toLowerCase()}s "${other}" and "${id}"`,
          );
          continue;
        }
        await this.#defect(
          "index_elsewhere",
          `${name}: ${field} index "${value}" points at "${String(index.value)}", which does not claim it`,
          (op) => op.check(record!, index2!, holder!).set(w.key, made),
        );
      }
      return;
    }
    this.#busy(`${entity.label} "${id}": changed on every read, not checked`);
  }

  // ---- index keys -> their records ---------------------------------------------------------------------------

  /** Reads every key of a unique index and checks that the record it names exists and claims the value. */
  async #index<T extends { id: number }>(entity: Entity<T>, u: Unique<T>): Promise<void> {
    const phase = show(u.prefix);
    for await (const chunk of chunks(this.#kv.list<unknown>({ prefix: u.prefix }, { batchSize: 500 }), CHUNK)) {
      this.#progress(phase, chunk.length);
      const ids = chunk.map((e) => indexedId(e.value) ?? -1);
      const records = await getManyInBatches<T>(this.#kv, ids.map((id) => entity.record(id)));
      for (const [i, e] of chunk.entries()) {
        const record = records[i]!.value;
        if (record !== null && u.value(record) === e.key.at(-1)) continue;
        const [index, holder] = await this.#kv.getMany<[unknown, T]>([e.key, entity.record(ids[i]!)]);
        if (index.value === null) continue;
        const id = indexedId(index.value) ?? -1;
        if (id !== ids[i]) continue; // changed meanwhile; the record pass sees the new state next time
        if (holder.value !== null && u.value(holder.value) === e.key.at(-1)) continue;
        const why = holder.value === null
          ? "which does not exist"
          : `whose ${u.field} is ${JSON.stringify(u.value(holder.value))}`;
        await this.#defect(
          "orphan_index",
          `${entity.label} ${u.field} index "${String(e.key.at(-1))}" points at "${String(index.value)}", ${why}`,
          (op) => op.check(index, holder).delete(e.key),
        );
      }
    }
  }

  /** The list entries of the customer lists that have any, each read in id order alongside the records. */
  async #listCursors(): Promise<ListCursor[]> {
    const prefix = keys.customerList(this.#cid, "").slice(0, -1);
    const lists = await distinctParts(this.#kv, prefix);
    return lists.map((list) => {
      const iter = this.#kv.list({ prefix: [...prefix, list] }, { batchSize: 1000 })[Symbol.asyncIterator]();
      // Read beside the records: counted as part of that phase.
      return new ListCursor(list, iter, (n) => this.#progress(this.#phase, n));
    });
  }

  /**
   * Moves a list cursor up to customer `c` (null: to the end): entries before it name no customer record read
   * (orphans); an entry of c must match c's membership. Returns whether c is in the list's entries.
   */
  async #mergeList(cursor: ListCursor, c: Customer | null): Promise<boolean> {
    if (!cursor.started) await cursor.next();
    while (cursor.head) {
      const id = cursor.head.key.at(-1);
      if (c !== null && typeof id === "number" && id >= c.id) break;
      await this.#confirmOrphan(this.#listEntrySpec(), cursor.head.key);
      await cursor.next();
    }
    if (c === null || cursor.head?.key.at(-1) !== c.id) return false;
    if (!customerLists(c).includes(String(cursor.list))) {
      await this.#confirmOrphan(this.#listEntrySpec(), cursor.head.key);
    }
    await cursor.next();
    return true;
  }

  #listEntrySpec(): EntrySpec<Customer> {
    const cid = this.#cid;
    return {
      prefix: keys.customerList(cid, "").slice(0, -1),
      recordKey: (key) => typeof key.at(-1) === "number" ? keys.customer(cid, key.at(-1) as number) : null,
      belongs: (key, c) => customerLists(c).includes(key.at(-2) as string),
      message: (key, c) =>
        `List entry ${show(key)}: ${
          c === null ? "the customer does not exist" : `customer "${c.id}" is not in list "${String(key.at(-2))}"`
        }`,
    };
  }

  /**
   * Checks the last-name index both ways: every customer with a last name has its entry (made on repair, which
   * also fills the index of a store from before it), and every entry names a customer of that name.
   */
  async #nameEntries(): Promise<void> {
    const cid = this.#cid;
    const phase = show(nameKeys.all(cid));
    const customers = this.#kv.list<Customer>({ prefix: keys.customers(cid) }, { batchSize: 500 });
    for await (const chunk of chunks(customers, CHUNK)) {
      this.#progress(phase, chunk.length);
      const wanted = chunk.flatMap((e) => {
        const name = lastNameKey(e.value.lname);
        return name === null ? [] : [{ id: e.value.id, key: nameKeys.entry(cid, name, e.value.id) }];
      });
      const found = await getManyInBatches(this.#kv, wanted.map((w) => w.key));
      for (const [i, w] of wanted.entries()) {
        if (found[i]!.versionstamp !== null) continue;
        // Read again with the record in one consistent read: the customer may have been renamed meanwhile.
        const [entry, record] = await this.#kv.getMany<[unknown, Customer]>([w.key, keys.customer(cid, w.id)]);
        if (entry.versionstamp !== null || record.value === null) continue;
        if (lastNameKey(record.value.lname) !== w.key.at(-2)) continue;
        await this.#defect(
          "missing_name_entry",
          `Customer "${w.id}": name index entry ${show(w.key)} is missing`,
          (op) => {
            op.check(entry, record).set(w.key, null);
          },
        );
      }
    }
    await this.#entries<Customer>({
      prefix: nameKeys.all(cid),
      recordKey: (key) => typeof key.at(-1) === "number" ? keys.customer(cid, key.at(-1) as number) : null,
      belongs: (key, c) => lastNameKey(c.lname) === key.at(-2),
      message: (key, c) =>
        `Name index entry ${show(key)}: ${
          c === null ? "the customer does not exist" : `customer "${c.id}" has last name ${JSON.stringify(c.lname)}`
        }`,
    });
  }

  /** Compares the last-name index's count (in - out) with its entries, counted between two reads of the count. */
  async #nameTotal(): Promise<void> {
    const cid = this.#cid;
    const totalKeys: [Deno.KvKey, Deno.KvKey] = [nameKeys.total(cid, "in"), nameKeys.total(cid, "out")];
    this.#progress(show(nameKeys.total(cid, "in").slice(0, -1)), 1);
    for (let attempt = 0; attempt < STABLE_ATTEMPTS; attempt++) {
      await pause(attempt);
      const [inc, out] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(totalKeys);
      let entries = 0n;
      for await (const _ of this.#kv.list({ prefix: nameKeys.all(cid) }, { batchSize: 1000 })) entries++;
      const [inc2, out2] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(totalKeys);
      if (inc.versionstamp !== inc2.versionstamp || out.versionstamp !== out2.versionstamp) continue;
      const total = u64(inc) - u64(out);
      if (total === entries) return;
      await this.#defect(
        "name_count",
        `Last-name index: its count says ${total}, it holds ${entries} entries`,
        (op) => this.#grow(op, { in: inc, out, by: entries - total }),
      );
      return;
    }
    this.#busy("Last-name index count: changed on every read, not checked");
  }

  /** Checks owner entries ["cards_by_customer", customer, card]: the card exists and belongs to that customer. */
  async #ownerEntries(): Promise<void> {
    const cid = this.#cid;
    await this.#entries<Card>({
      prefix: [...cardKeys.ofCustomer(cid, 0).slice(0, -1)],
      recordKey: (key) => typeof key.at(-1) === "number" ? cardKeys.card(cid, key.at(-1) as number) : null,
      belongs: (key, card) => card.customer_id === key.at(-2),
      message: (key, card) =>
        `Owner entry ${show(key)}: ${
          card === null ? "the card does not exist" : `card "${card.id}" belongs to customer "${card.customer_id}"`
        }`,
    });
  }

  /** Checks each key of a non-unique index against the record its last part names; orphans are deleted on repair. */
  async #entries<T>(spec: EntrySpec<T>): Promise<void> {
    const phase = show(spec.prefix);
    for await (const chunk of chunks(this.#kv.list({ prefix: spec.prefix }, { batchSize: 500 }), CHUNK)) {
      this.#progress(phase, chunk.length);
      const recordKeys = chunk.map((e) => spec.recordKey(e.key) ?? [...spec.prefix, NO_RECORD]);
      const records = await getManyInBatches<T>(this.#kv, recordKeys);
      for (const [i, e] of chunk.entries()) {
        const record = records[i]!.value;
        if (record !== null && spec.belongs(e.key, record)) continue;
        await this.#confirmOrphan(spec, e.key);
      }
    }
  }

  /** Reads an index entry with its record in one consistent read; reports (and deletes on repair) an orphan. */
  async #confirmOrphan<T>(spec: EntrySpec<T>, key: Deno.KvKey): Promise<void> {
    const recordKey = spec.recordKey(key) ?? [...spec.prefix, NO_RECORD];
    const [entry, record] = await this.#kv.getMany<[unknown, T]>([key, recordKey]);
    if (entry.versionstamp === null) return;
    if (record.value !== null && spec.belongs(key, record.value)) return;
    await this.#defect("orphan_list_entry", spec.message(key, record.value), (op) => {
      op.check(entry, record).delete(key);
    });
  }

  // ---- per-chunk extras: counts and references ---------------------------------------------------------------

  /**
   * Counts list members per bucket, merges the list entries in (returning the customers with an entry missing),
   * and checks each customer's group exists.
   */
  async #customerExtras(chunk: Deno.KvEntry<Customer>[], cursors: ListCursor[]): Promise<Set<number>> {
    const suspects = new Set<number>();
    for (const { value: c } of chunk) {
      const bucket = Math.floor(c.id / BUCKET_SIZE);
      const lists = customerLists(c);
      for (const list of lists) {
        let counts = this.#buckets.get(list);
        if (!counts) this.#buckets.set(list, counts = new Map());
        counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
      }
      let found = 0;
      for (const cursor of cursors) {
        if (await this.#mergeList(cursor, c) && lists.includes(String(cursor.list))) found++;
      }
      if (found < lists.length) suspects.add(c.id);
    }
    await this.#references(chunk.map((e) => e.value), {
      ref: (c) => c.group_id,
      key: (id) => directoryKeys.entry(this.#cid, "groups", id),
      check: "missing_group",
      message: (c) => `Customer "${c.id}": group "${c.group_id}" does not exist`,
      recordKey: (c) => keys.customer(this.#cid, c.id),
      stillPoints: (stored, c) => (stored as Customer).group_id === c.group_id,
    });
    return suspects;
  }

  /** Checks each card's customer and type exist. */
  async #cardExtras(chunk: Deno.KvEntry<Card>[]): Promise<void> {
    const cards = chunk.map((e) => e.value);
    await this.#references(cards, {
      ref: (c) => c.customer_id,
      key: (id) => keys.customer(this.#cid, id),
      check: "card_owner_missing",
      message: (c) => `Card "${c.id}": customer "${c.customer_id}" does not exist`,
      recordKey: (c) => cardKeys.card(this.#cid, c.id),
      stillPoints: (stored, c) => (stored as Card).customer_id === c.customer_id,
    });
    await this.#references(cards, {
      ref: (c) => c.type_id,
      key: (id) => directoryKeys.entry(this.#cid, "card_types", id),
      check: "missing_card_type",
      message: (c) => `Card "${c.id}": card type "${c.type_id}" does not exist`,
      recordKey: (c) => cardKeys.card(this.#cid, c.id),
      stillPoints: (stored, c) => (stored as Card).type_id === c.type_id,
    });
  }

  /** Checks that what records point at exists; a dangling pointer is confirmed in one read and never repaired. */
  async #references<T>(records: T[], spec: {
    ref: (record: T) => number | null;
    key: (id: number) => Deno.KvKey;
    /** Where the record is stored, and whether the stored value still points where `ref` said. */
    recordKey: (record: T) => Deno.KvKey;
    stillPoints: (stored: unknown, record: T) => boolean;
    check: string;
    message: (record: T) => string;
  }): Promise<void> {
    const ids = [...new Set(records.map(spec.ref).filter((id): id is number => id !== null))];
    const targets = await getManyInBatches(this.#kv, ids.map(spec.key));
    const missing = new Set(ids.filter((_, i) => targets[i]!.versionstamp === null));
    for (const r of records) {
      const id = spec.ref(r);
      if (id === null || !missing.has(id)) continue;
      const [record, target] = await this.#kv.getMany<[unknown, unknown]>([spec.recordKey(r), spec.key(id)]);
      if (record.value === null || !spec.stillPoints(record.value, r) || target.versionstamp !== null) continue;
      await this.#defect(spec.check, spec.message(r));
    }
  }

  // ---- counters ----------------------------------------------------------------------------------------------

  /** Compares every bucket count (in - out) with the members counted from the records. */
  async #bucketCounts(): Promise<void> {
    const cid = this.#cid;
    const prefix = keys.customerBuckets(cid, "").slice(0, -1);
    let current = null as { list: string; bucket: number; n: bigint } | null;
    const settle = async () => {
      if (!current) return;
      const expected = this.#buckets.get(current.list)?.get(current.bucket) ?? 0;
      this.#buckets.get(current.list)?.delete(current.bucket);
      if (current.n !== BigInt(expected)) await this.#recheckBucket(current.list, current.bucket);
    };
    for await (const chunk of chunks(this.#kv.list<unknown>({ prefix }, { batchSize: 1000 }), CHUNK)) {
      this.#progress(show(prefix), chunk.length);
      for (const e of chunk) {
        const list = e.key.at(-3);
        const bucket = e.key.at(-2);
        if (typeof list !== "string" || typeof bucket !== "number") {
          this.#note("unknown_counter", `Counter ${show(e.key)} is not a bucket count: not checked`);
          continue;
        }
        if (current?.list !== list || current.bucket !== bucket) {
          await settle();
          current = { list, bucket, n: 0n };
        }
        current.n += e.key.at(-1) === "out" ? -u64(e) : u64(e);
      }
    }
    await settle();
    // Buckets with members but no counters at all.
    for (const [list, counts] of this.#buckets) {
      for (const [bucket, n] of counts) if (n !== 0) await this.#recheckBucket(list, bucket);
    }
    this.#buckets.clear();
  }

  /** Counts one bucket of one list from the records between two reads of its counters, and fixes the counters. */
  async #recheckBucket(list: string, bucket: number): Promise<void> {
    const cid = this.#cid;
    const counterKeys: [Deno.KvKey, Deno.KvKey] = [
      keys.customerBucket(cid, list, bucket, "in"),
      keys.customerBucket(cid, list, bucket, "out"),
    ];
    for (let attempt = 0; attempt < STABLE_ATTEMPTS; attempt++) {
      await pause(attempt);
      const [inc, out] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(counterKeys);
      let members = 0;
      const range = {
        start: keys.customer(cid, bucket * BUCKET_SIZE),
        end: keys.customer(cid, (bucket + 1) * BUCKET_SIZE),
      };
      for await (const e of this.#kv.list<Customer>(range)) if (customerLists(e.value).includes(list)) members++;
      const [inc2, out2] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(counterKeys);
      if (inc.versionstamp !== inc2.versionstamp || out.versionstamp !== out2.versionstamp) continue;
      const counted = u64(inc) - u64(out);
      if (counted === BigInt(members)) return;
      await this.#defect(
        "bucket_count",
        `List "${list}" bucket ${bucket} (ids ${bucket * BUCKET_SIZE}-${
          (bucket + 1) * BUCKET_SIZE - 1
        }): counters say ${counted}, records say ${members}`,
        (op) => this.#grow(op, { in: inc, out, by: BigInt(members) - counted }),
      );
      return;
    }
    this.#busy(`List "${list}" bucket ${bucket}: changed on every read, not checked`);
  }

  /** Moves a grow-only in/out pair by `by`: adds to "in" to raise it, to "out" to lower it, never writes less. */
  #grow(
    op: Write,
    pair: { in: Deno.KvEntryMaybe<Deno.KvU64>; out: Deno.KvEntryMaybe<Deno.KvU64>; by: bigint },
  ): void {
    op.check(pair.in, pair.out);
    if (pair.by > 0n) op.sum(pair.in.key, pair.by);
    else op.sum(pair.out.key, -pair.by);
  }

  /** Compares each list total (in - out) with the sum of its bucket counts, read between two reads of the total. */
  async #totals(): Promise<void> {
    const cid = this.#cid;
    const lists = new Set(LISTS);
    for await (const e of this.#kv.list({ prefix: keys.customerTotal(cid, "", "in").slice(0, -2) })) {
      if (typeof e.key.at(-2) === "string") lists.add(e.key.at(-2) as string);
    }
    this.#progress("customer_totals", lists.size);
    for (const list of lists) {
      const totalKeys: [Deno.KvKey, Deno.KvKey] = [
        keys.customerTotal(cid, list, "in"),
        keys.customerTotal(cid, list, "out"),
      ];
      let done = false;
      for (let attempt = 0; attempt < STABLE_ATTEMPTS && !done; attempt++) {
        await pause(attempt);
        const [inc, out] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(totalKeys);
        let sum = 0n;
        for await (
          const b of this.#kv.list<unknown>({ prefix: keys.customerBuckets(cid, list) }, { batchSize: 1000 })
        ) {
          sum += b.key.at(-1) === "out" ? -u64(b) : u64(b);
        }
        const [inc2, out2] = await this.#kv.getMany<[Deno.KvU64, Deno.KvU64]>(totalKeys);
        if (inc.versionstamp !== inc2.versionstamp || out.versionstamp !== out2.versionstamp) continue;
        done = true;
        const total = u64(inc) - u64(out);
        if (total === sum) continue;
        // A total left off its buckets would stay off (pages take a listing of the buckets as exact because the total
        // is their sum: storage/customers.ts, bucketSums), so a repair that a concurrent write made fail is retried
        // from a new reading rather than reported as a conflict.
        const retryable = attempt < STABLE_ATTEMPTS - 1;
        const outcome = await this.#defect(
          "total_count",
          `List "${list}": total says ${total}, its bucket counts say ${sum}`,
          (op) => this.#grow(op, { in: inc, out, by: sum - total }),
          { retryable },
        );
        // The last attempt's conflict is reported as one; only a retried one leaves the list to read again.
        if (outcome === "conflict" && retryable) done = false;
      }
      if (!done) this.#busy(`List "${list}" total: changed on every read, not checked`);
    }
  }

  // ---- sequences ---------------------------------------------------------------------------------------------

  /** Checks a sequence is at least the highest id in use: the id is read first, so a create in between is no defect. */
  async #sequence<T extends { id: number }>(entity: Entity<T>): Promise<void> {
    let highest = 0;
    for await (const e of this.#kv.list({ prefix: entity.prefix }, { reverse: true, limit: 1 })) {
      if (typeof e.key.at(-1) === "number") highest = e.key.at(-1) as number;
    }
    const seq = await this.#kv.get<number>(entity.sequence);
    const value = typeof seq.value === "number" ? seq.value : 0;
    if (value >= highest) return;
    await this.#defect(
      "sequence_behind",
      `Sequence ${
        show(entity.sequence)
      } is at ${value}, behind the highest ${entity.label.toLowerCase()} id ${highest}`,
      (op) => op.check(seq).set(entity.sequence, highest),
    );
  }

  // ---- the dashboard's aggregates ----------------------------------------------------------------------------

  /** Every aggregate key as read now: totals, hourly sums, pending hours after the current one, card totals. */
  async #aggregateEntries(hourNow: number): Promise<Map<string, Deno.KvEntryMaybe<unknown>>> {
    const cid = this.#cid;
    const out = new Map<string, Deno.KvEntryMaybe<unknown>>();
    const fixed = [
      ...POINTS_KINDS.map((k) => statKeys.pointsTotal(cid, k)),
      statKeys.cardTotal(cid, "in"),
      statKeys.cardTotal(cid, "out"),
    ];
    for (const e of await getManyInBatches<unknown>(this.#kv, fixed)) out.set(JSON.stringify(e.key), e);
    for await (const e of this.#kv.list({ prefix: statKeys.pointsHours(cid) }, { batchSize: 1000 })) {
      out.set(JSON.stringify(e.key), e);
    }
    const pending = statKeys.pendings(cid);
    for await (const e of this.#kv.list({ prefix: pending, start: [...pending, hourNow + 1] }, { batchSize: 1000 })) {
      out.set(JSON.stringify(e.key), e);
    }
    return out;
  }

  /**
   * Recounts the dashboard's aggregates (points per kind in total and per hour from the ledger, points not spendable
   * yet per hour from the balances' lots, cards) between two reads of the aggregates, and reports each that
   * disagrees; repair sets it to the recount (how a store made before the aggregates gets them).
   */
  async #aggregates(): Promise<void> {
    const cid = this.#cid;
    for (let attempt = 0; attempt < STABLE_ATTEMPTS; attempt++) {
      await pause(attempt);
      const now = (this.#options.now ?? Date.now)();
      const hourNow = hourOf(now);
      const first = await this.#aggregateEntries(hourNow);
      const totals: Record<PointsKind, bigint> = { credited: 0n, debited: 0n, expired: 0n };
      const hours = new Map<string, { key: Deno.KvKey; n: bigint }>();
      for await (const e of this.#kv.list<LedgerEntry>({ prefix: bonusKeys.ledgers(cid) }, { batchSize: 1000 })) {
        const kind = kindOf({ kind: e.value.kind ?? "adjust", amount: e.value.amount });
        if (kind === null) continue;
        const n = BigInt(Math.abs(e.value.amount));
        totals[kind] += n;
        const key = statKeys.pointsHour(cid, hourOf(e.value.created_date), kind);
        const id = JSON.stringify(key);
        const row = hours.get(id);
        if (row) row.n += n;
        else hours.set(id, { key, n });
      }
      this.#progress("points_hours", hours.size);
      const pending = new Map<number, bigint>();
      for await (const e of this.#kv.list<BalanceRecord>({ prefix: bonusKeys.balances(cid) }, { batchSize: 1000 })) {
        for (const lot of walletOf(e.value).lots) {
          const hour = hourOf(lot.available_at);
          if (hour > hourNow && lot.remaining !== 0) {
            pending.set(hour, (pending.get(hour) ?? 0n) + BigInt(lot.remaining));
          }
        }
      }
      let cards = 0n;
      for await (const _ of this.#kv.list({ prefix: cardKeys.cards(cid) }, { batchSize: 1000 })) cards++;
      const second = await this.#aggregateEntries(hourNow);
      const same = first.size === second.size &&
        [...first].every(([id, e]) => second.get(id)?.versionstamp === e.versionstamp);
      if (!same) continue;
      await this.#compareAggregates(first, { totals, hours, pending, cards, hourNow });
      return;
    }
    this.#busy("The dashboard's aggregates: changed on every read, not checked");
  }

  async #compareAggregates(
    read: Map<string, Deno.KvEntryMaybe<unknown>>,
    counted: {
      totals: Record<PointsKind, bigint>;
      hours: Map<string, { key: Deno.KvKey; n: bigint }>;
      pending: Map<number, bigint>;
      cards: bigint;
      hourNow: number;
    },
  ): Promise<void> {
    const cid = this.#cid;
    const entry = (key: Deno.KvKey): Deno.KvEntryMaybe<unknown> =>
      read.get(JSON.stringify(key)) ?? { key, value: null, versionstamp: null };
    const setTo = (op: Write, e: Deno.KvEntryMaybe<unknown>, n: bigint) =>
      op.check(e).set(e.key, new Deno.KvU64(n < 0n ? 0n : n));
    for (const kind of POINTS_KINDS) {
      const e = entry(statKeys.pointsTotal(cid, kind));
      if (u64(e) === counted.totals[kind]) continue;
      await this.#defect(
        "points_total",
        `Points ${kind}: the total says ${u64(e)}, the ledger sums to ${counted.totals[kind]}`,
        (op) => setTo(op, e, counted.totals[kind]),
      );
    }
    // Hourly sums: past hours get no more writes, so they are set without a check, many per write.
    const wrong: { key: Deno.KvKey; has: bigint; n: bigint }[] = [];
    const hourPrefix = JSON.stringify(statKeys.pointsHours(cid)).slice(0, -1);
    for (const [id, e] of read) {
      if (!id.startsWith(hourPrefix) || counted.hours.has(id)) continue;
      if (u64(e) !== 0n) wrong.push({ key: e.key, has: u64(e), n: 0n });
    }
    for (const { key, n } of counted.hours.values()) {
      const has = u64(entry(key));
      if (has !== n) wrong.push({ key, has, n });
    }
    for (let i = 0; i < wrong.length; i += 500) {
      const part = wrong.slice(i, i + 500);
      const current = part.filter((w) => (w.key.at(-2) as number) >= counted.hourNow);
      await this.#defect(
        "points_hours",
        `${part.length} hourly points sums disagree with the ledger, e.g. ${show(part[0]!.key)}: ${part[0]!.has}, ` +
          `the ledger says ${part[0]!.n}`,
        (op) => {
          for (const w of part) {
            if (current.includes(w)) setTo(op, entry(w.key), w.n);
            else op.set(w.key, new Deno.KvU64(w.n));
          }
        },
      );
    }
    const hoursAhead = new Set(counted.pending.keys());
    for (const e of read.values()) {
      if (e.key[2] === "points_pending") hoursAhead.add(e.key.at(-2) as number);
    }
    for (const hour of [...hoursAhead].sort((a, b) => a - b)) {
      const inc = entry(statKeys.pending(cid, hour, "in"));
      const out = entry(statKeys.pending(cid, hour, "out"));
      const n = counted.pending.get(hour) ?? 0n;
      if (u64(inc) - u64(out) === n) continue;
      await this.#defect(
        "points_pending",
        `Points pending until hour ${hour}: the sums say ${u64(inc) - u64(out)}, the lots hold ${n}`,
        (op) => {
          setTo(op, inc, n);
          setTo(op, out, 0n);
        },
      );
    }
    const inc = entry(statKeys.cardTotal(cid, "in"));
    const out = entry(statKeys.cardTotal(cid, "out"));
    if (u64(inc) - u64(out) !== counted.cards) {
      await this.#defect(
        "card_total",
        `Cards: the total says ${u64(inc) - u64(out)}, there are ${counted.cards}`,
        (op) => {
          setTo(op, inc, counted.cards);
          setTo(op, out, 0n);
        },
      );
    }
  }

  // ---- balances and the ledger -------------------------------------------------------------------------------

  /** Sums each ledger (one per customer and program) in key order and compares it with its balance. */
  async #ledger(): Promise<void> {
    const cid = this.#cid;
    const prefix = bonusKeys.ledger(cid, 0, 0).slice(0, -2);
    type Group = { customerId: number; bonusId: number; sum: number; last: number; broken: string | null };
    let group: Group | null = null;
    let pending: Group[] = [];
    const flush = async () => {
      const balances = await getManyInBatches<BalanceRecord>(
        this.#kv,
        pending.map((g) => bonusKeys.balance(cid, g.customerId, g.bonusId)),
      );
      for (const [i, g] of pending.entries()) {
        const b = balances[i]!.value;
        if (g.broken !== null) await this.#recheckLedger(g.customerId, g.bonusId);
        else if (!b || b.balance !== g.sum || b.last_transaction_id !== g.last) {
          await this.#recheckLedger(g.customerId, g.bonusId);
        }
      }
      pending = [];
    };
    for await (const chunk of chunks(this.#kv.list<LedgerEntry>({ prefix }, { batchSize: 1000 }), CHUNK * 5)) {
      this.#progress(show(prefix), chunk.length);
      for (const e of chunk) {
        const [customerId, bonusId, tid] = e.key.slice(-3) as number[];
        if (!group || group.customerId !== customerId || group.bonusId !== bonusId) {
          if (group) pending.push(group);
          if (pending.length >= MAX_GET_MANY * 10) await flush();
          group = { customerId: customerId!, bonusId: bonusId!, sum: 0, last: 0, broken: null };
        }
        group.sum += e.value.amount;
        if (tid !== group.last + 1 || e.value.transaction_id !== tid || e.value.balance !== group.sum) {
          group.broken ??= `entry ${tid}`;
        }
        group.last = tid!;
      }
    }
    if (group) pending.push(group);
    await flush();
  }

  /** Sums one ledger between two reads of its balance and reports what disagrees; never repaired. */
  async #recheckLedger(customerId: number, bonusId: number): Promise<void> {
    const cid = this.#cid;
    const balanceKey = bonusKeys.balance(cid, customerId, bonusId);
    const name = `Balance of customer "${customerId}" in program "${bonusId}"`;
    for (let attempt = 0; attempt < STABLE_ATTEMPTS; attempt++) {
      await pause(attempt);
      const before = await this.#kv.get<BalanceRecord>(balanceKey);
      let sum = 0;
      let last = 0;
      const problems: string[] = [];
      for await (const e of this.#kv.list<LedgerEntry>({ prefix: bonusKeys.ledger(cid, customerId, bonusId) })) {
        const tid = e.key.at(-1) as number;
        sum += e.value.amount;
        if (problems.length === 0) {
          if (tid !== last + 1) problems.push(`ledger jumps from transaction ${last} to ${tid}`);
          else if (e.value.transaction_id !== tid) {
            problems.push(`ledger entry ${tid} says transaction ${e.value.transaction_id}`);
          } else if (e.value.balance !== sum) {
            problems.push(`ledger entry ${tid} says balance ${e.value.balance}, its running sum is ${sum}`);
          }
        }
        last = tid;
      }
      const after = await this.#kv.get<BalanceRecord>(balanceKey);
      if (after.versionstamp !== before.versionstamp) continue;
      const b = before.value ?? { balance: 0, last_transaction_id: 0 };
      if (b.balance !== sum) problems.push(`balance is ${b.balance}, its ledger sums to ${sum}`);
      if (b.last_transaction_id !== last) {
        problems.push(`last_transaction_id is ${b.last_transaction_id}, the ledger's last id is ${last}`);
      }
      if (!before.value && last > 0) problems.push("the balance record is missing");
      for (const p of problems) await this.#defect("balance_ledger", `${name}: ${p} (balances are never repaired)`);
      return;
    }
    this.#busy(`${name}: changed on every read, not checked`);
  }

  /** Checks each balance's newest ledger entry exists, and that its customer and program exist. */
  /**
   * Orders and returns: an order never has more returned than its amount, nor more of a spend given back than was
   * spent; its customer exists; every return record belongs to an order. Reported only: these are money records.
   */
  async #orders(): Promise<void> {
    const cid = this.#cid;
    const prefix = orderKeys.orders(cid);
    for await (const chunk of chunks(this.#kv.list<OrderRecord>({ prefix }, { batchSize: 500 }), CHUNK)) {
      this.#progress(show(prefix), chunk.length);
      for (const { value: o } of chunk) {
        const problems = orderProblems(o);
        for (const problem of problems) {
          await this.#defect("order", `Order "${o.order_id}": ${problem} (orders are never repaired)`);
        }
      }
      await this.#references(chunk.map((e) => e.value), {
        ref: (o) => o.customer_id,
        key: (id) => keys.customer(cid, id),
        recordKey: (o) => orderKeys.order(cid, o.order_id),
        stillPoints: () => true,
        check: "order_customer_missing",
        message: (o) => `Order "${o.order_id}": the customer "${o.customer_id}" does not exist`,
      });
    }
    const returns = ["company", cid, "order_returns"];
    for await (const chunk of chunks(this.#kv.list({ prefix: returns }, { batchSize: 500 }), CHUNK)) {
      this.#progress(show(returns), chunk.length);
      const orderIds = chunk.map((e) => e.key.at(-2) as string);
      const found = await getManyInBatches<OrderRecord>(this.#kv, orderIds.map((id) => orderKeys.order(cid, id)));
      for (const [i, e] of found.entries()) {
        if (e.value === null) {
          await this.#defect(
            "order_return_orphan",
            `Return "${String(chunk[i]!.key.at(-1))}" of order "${orderIds[i]}": the order does not exist`,
          );
        }
      }
    }
  }

  async #balances(): Promise<void> {
    const cid = this.#cid;
    const prefix = bonusKeys.balances(cid);
    for await (const chunk of chunks(this.#kv.list<BalanceRecord>({ prefix }, { batchSize: 500 }), CHUNK)) {
      this.#progress(show(prefix), chunk.length);
      const parsed = chunk.map((e) => {
        const [customerId, bonusId] = e.key.slice(-2) as number[];
        return { customerId: customerId!, bonusId: bonusId!, record: e.value };
      });
      const lastEntries = await getManyInBatches<LedgerEntry>(
        this.#kv,
        parsed.map((p) =>
          bonusKeys.ledgerEntry(cid, p.customerId, p.bonusId, Math.max(1, p.record.last_transaction_id ?? 0))
        ),
      );
      for (const [i, p] of parsed.entries()) {
        // A record is written whole by one atomic write: its lots agree with its total in any one read of it.
        for (const problem of lotProblems(p.record)) {
          await this.#defect(
            "balance_lots",
            `Balance of customer "${p.customerId}" in program "${p.bonusId}": ${problem} (balances are never repaired)`,
          );
        }
        const hasLast = lastEntries[i]!.versionstamp !== null;
        const empty = (p.record.last_transaction_id ?? 0) === 0;
        // A balance with no ledger is not seen by the ledger pass: look at it here.
        if ((empty && p.record.balance !== 0) || (!empty && !hasLast)) {
          let entries = 0;
          const ledger = bonusKeys.ledger(cid, p.customerId, p.bonusId);
          for await (const _ of this.#kv.list({ prefix: ledger }, { limit: 1 })) entries++;
          // A ledger with entries was checked by the ledger pass; an empty one is seen only here.
          if (entries === 0) await this.#recheckLedger(p.customerId, p.bonusId);
        }
      }
      await this.#references(parsed, {
        ref: (p) => p.customerId,
        key: (id) => keys.customer(cid, id),
        recordKey: (p) => bonusKeys.balance(cid, p.customerId, p.bonusId),
        stillPoints: () => true,
        check: "balance_owner_missing",
        message: (p) => `Balance of customer "${p.customerId}" in program "${p.bonusId}": the customer does not exist`,
      });
      await this.#references(parsed, {
        ref: (p) => p.bonusId,
        key: (id) => directoryKeys.entry(cid, "bonus_programs", id),
        recordKey: (p) => bonusKeys.balance(cid, p.customerId, p.bonusId),
        stillPoints: () => true,
        check: "balance_program_missing",
        message: (p) => `Balance of customer "${p.customerId}" in program "${p.bonusId}": the program does not exist`,
      });
    }
  }
}
