/**
 * Customer use cases: saving one, finding them by unique values or paging through lists, and the details shown
 * beside them (group names, cards, balances). Routes, tasks, the importer, webhooks and the back office call these.
 */
import type { Actor } from "../domain/audit.ts";
import type { CustomerRef } from "../domain/bonus.ts";
import type { Card, CardLookup } from "../domain/card.ts";
import {
  applyCustomerPatch,
  type Customer,
  type CustomerPatch,
  listForFilter,
  matchesPresence,
} from "../domain/customer.ts";
import { localDate } from "../domain/dates.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { NotFoundError } from "../domain/errors.ts";
import { customerBalances, type ProgramBalance } from "../storage/bonuses.ts";
import { cardsOfCustomers, findCardOwner } from "../storage/cards.ts";
import {
  countList,
  findCustomerId,
  getCustomer,
  pageAfter,
  pageList,
  streamList,
  upsertCustomer,
  type UpsertResult,
} from "../storage/customers.ts";
import { cachedEntries, getEntriesCached } from "../storage/directories.ts";
import type { Store } from "../storage/store.ts";

/** Settings the customer use cases depend on. */
export interface CustomerSettings {
  /** IANA time zone of "today" (birth date checks). */
  timeZone: string;
  /** How long directory names are reused from memory, ms. */
  directoryCacheMs: number;
}

/** A change to one customer: how to find it and what to set. */
export interface SaveCustomerInput {
  /** Find by internal id (a missing customer is a 404). */
  id?: number;
  /** Find by external id when no id is given (created when missing and `create`). */
  externalId?: string;
  /** Whether a customer not found (or not identified) is created. */
  create: boolean;
  /** Without id and external id: another system's link to the customer, claimed by a create (see UpsertCustomer). */
  link?: Deno.KvKey;
  /** The fields to change; absent keys stay, null clears. */
  patch: Omit<CustomerPatch, "group_id" | "group_name">;
  /** Put the customer in this group (null: none); wins over groupName. */
  groupId?: number | null;
  /** Put the customer in the group of this name, created when new. */
  groupName?: string | null;
}

/** Creates or updates a customer, with its indexes, counters and audit entry, in one atomic write. */
export async function saveCustomer(
  store: Store,
  actor: Actor,
  input: SaveCustomerInput & { timeZone: string },
): Promise<UpsertResult> {
  return await upsertCustomer(store, actor, {
    id: input.id,
    externalId: input.externalId,
    create: input.create,
    ...(input.link ? { link: input.link } : {}),
    groupId: input.groupId,
    groupName: input.groupId !== undefined ? undefined : input.groupName,
    decide: (existing, context) =>
      applyCustomerPatch(existing, input.patch, {
        ...context,
        userId: actor.userId,
        today: localDate(context.now, input.timeZone),
      }),
  });
}

/** The id of the customer a reference names; 404 naming the parameter when there is none. */
export async function customerIdOf(store: Store, actor: Actor, ref: CustomerRef): Promise<number> {
  const cid = actor.companyId;
  if ("id" in ref) {
    if (await getCustomer(store.kv, cid, ref.id)) return ref.id;
    throw new NotFoundError(`Customer "${ref.id}" not found`, "customer_id");
  }
  const found = await findCustomerId(store.kv, cid, "external_id", ref.externalId);
  if (found !== null && await getCustomer(store.kv, cid, found)) return found;
  throw new NotFoundError(`Customer with external_id "${ref.externalId}" not found`, "customer_external_id");
}

/** What a customer search asks for. */
export interface CustomerQuery {
  /** Unique lookups: every one given must name the same customer. Phone as digits, email as its key. */
  id?: number;
  externalId?: string;
  phone?: string;
  email?: string;
  /** The owner of the card with this barcode, or with this uid (card number); a card without owner finds none. */
  cardBarcode?: string;
  uid?: string;
  /** Presence filters. */
  withPhone?: boolean | null;
  withEmail?: boolean | null;
  /** Paging: a page (1-based) of pageSize, or the page after a cursor id; neither: the whole list. */
  page?: number;
  pageSize: number;
  afterId?: number;
}

/** The customers a query found. */
export type FoundCustomers =
  | { kind: "lookup"; customers: Customer[] }
  | { kind: "page"; customers: Customer[]; total: number; more: boolean }
  | { kind: "stream"; total: number; batches: AsyncIterable<Customer[]> };

/** Lists up to this long are read in one piece; longer unpaged lists are streamed. */
const STREAM_THRESHOLD = 1000;

/**
 * Finds customers: by unique values (at most one), or a page or cursor page of a list filtered by presence, or
 * the whole list (streamed when long). Counts come from counters, never from a scan.
 */
export async function findCustomers(store: Store, actor: Actor, q: CustomerQuery): Promise<FoundCustomers> {
  const { kv } = store;
  const cid = actor.companyId;
  if (
    q.id !== undefined || q.externalId !== undefined || q.phone !== undefined || q.email !== undefined ||
    q.cardBarcode !== undefined || q.uid !== undefined
  ) {
    const lookups: (number | Promise<number | null>)[] = [];
    if (q.id !== undefined) lookups.push(q.id);
    if (q.externalId !== undefined) lookups.push(findCustomerId(kv, cid, "external_id", q.externalId));
    if (q.phone !== undefined) lookups.push(findCustomerId(kv, cid, "phone", q.phone));
    if (q.email !== undefined) lookups.push(findCustomerId(kv, cid, "email", q.email));
    if (q.cardBarcode !== undefined) lookups.push(ownerOf(kv, cid, { card_barcode: q.cardBarcode }));
    if (q.uid !== undefined) lookups.push(ownerOf(kv, cid, { uid: q.uid }));
    // One lookup (the till's usual request) is awaited alone; several must all find the same customer.
    const ids = lookups.length === 1 ? null : new Set(await Promise.all(lookups));
    const onlyId = ids === null ? await lookups[0] : ids.size === 1 ? [...ids][0] : null;
    const found = onlyId != null ? await getCustomer(kv, cid, onlyId) : null;
    return { kind: "lookup", customers: found && matchesPresence(found, q.withPhone, q.withEmail) ? [found] : [] };
  }
  const list = listForFilter(q.withPhone, q.withEmail);
  const total = await countList(kv, cid, list);
  const keep = (cs: Customer[]) => list === "all" ? cs : cs.filter((c) => matchesPresence(c, q.withPhone, q.withEmail));
  if (q.afterId !== undefined) {
    const rows = keep(await pageAfter(kv, cid, { list, afterId: q.afterId, limit: q.pageSize }));
    return { kind: "page", customers: rows, total, more: rows.length === q.pageSize };
  }
  if (q.page !== undefined) {
    const offset = (q.page - 1) * q.pageSize;
    const rows = offset >= total ? [] : keep(await pageList(kv, cid, { list, offset, limit: q.pageSize }));
    return { kind: "page", customers: rows, total, more: rows.length === q.pageSize && offset + q.pageSize < total };
  }
  if (total <= STREAM_THRESHOLD) {
    return { kind: "lookup", customers: keep(await pageList(kv, cid, { list, offset: 0, limit: total })) };
  }
  const batches = async function* () {
    for await (const rows of streamList(kv, cid, { list, limit: total })) yield keep(rows);
  };
  return { kind: "stream", total, batches: batches() };
}

/** The unique values one customer can be found by (the till's point lookups). */
export type CustomerLookup =
  | { field: "id"; value: number }
  | { field: "external_id" | "phone" | "email" | "card_barcode" | "uid"; value: string };

/**
 * The customer one unique value names, or null: what findCustomers answers for a query of that lookup alone, in
 * the fewest awaits (the index entry, then the record; by id the record alone).
 */
export function findCustomerBy(store: Store, actor: Actor, lookup: CustomerLookup): Promise<Customer | null> {
  // By id, the record's read is the answer (no async step of its own: this is the till's lookup).
  if (lookup.field === "id") return getCustomer(store.kv, actor.companyId, lookup.value);
  return findCustomerByIndex(store, actor, lookup);
}

/** findCustomerBy through an index: the owner's id, then the record. */
async function findCustomerByIndex(
  store: Store,
  actor: Actor,
  lookup: Exclude<CustomerLookup, { field: "id" }>,
): Promise<Customer | null> {
  const { kv } = store;
  const cid = actor.companyId;
  let id: number | null;
  switch (lookup.field) {
    case "card_barcode":
      id = await findCardOwner(kv, cid, { card_barcode: lookup.value });
      break;
    case "uid":
      id = await findCardOwner(kv, cid, { uid: lookup.value });
      break;
    default:
      id = await findCustomerId(kv, cid, lookup.field, lookup.value);
  }
  return id === null ? null : await getCustomer(kv, cid, id);
}

/** The id of the owner of the card a lookup finds; null for no card or a card without an owner. */
function ownerOf(kv: Deno.Kv, cid: string, lookup: CardLookup): Promise<number | null> {
  return findCardOwner(kv, cid, lookup);
}

/** The ids of these customers' groups. */
function groupIds(customers: Customer[]): number[] {
  return customers.flatMap((c) => c.group_id === null ? [] : [c.group_id]);
}

/** groupNames' answer when the directory cache holds every name it needs (nothing read), else undefined. */
export function cachedGroupNames(
  store: Store,
  actor: Actor,
  customers: Customer[],
): Map<number, DirectoryEntry> | undefined {
  return cachedEntries(store, actor.companyId, { kind: "groups", ids: groupIds(customers) });
}

/** Names of the groups of these customers, from the store's directory cache. */
export async function groupNames(
  store: Store,
  actor: Actor,
  options: { customers: Customer[]; maxAgeMs: number },
): Promise<Map<number, DirectoryEntry>> {
  const ids = groupIds(options.customers);
  return await getEntriesCached(store, actor.companyId, { kind: "groups", ids, maxAgeMs: options.maxAgeMs });
}

/** A card with the name of its type. */
export interface NamedCard {
  card: Card;
  typeName: string | null;
}

/** Every card of each customer, with type names, in card id order; a fixed number of store rounds per page. */
export async function cardsOf(
  store: Store,
  actor: Actor,
  options: { customerIds: number[]; maxAgeMs: number },
): Promise<Map<number, NamedCard[]>> {
  const byCustomer = await cardsOfCustomers(store.kv, actor.companyId, options.customerIds);
  const typeIds = new Set<number>();
  for (const cards of byCustomer.values()) {
    for (const card of cards) if (card.type_id !== null) typeIds.add(card.type_id);
  }
  const types = await getEntriesCached(store, actor.companyId, {
    kind: "card_types",
    ids: typeIds,
    maxAgeMs: options.maxAgeMs,
  });
  const out = new Map<number, NamedCard[]>();
  for (const [customerId, cards] of byCustomer) {
    out.set(
      customerId,
      cards.map((card) => ({ card, typeName: card.type_id === null ? null : types.get(card.type_id)?.name ?? null })),
    );
  }
  return out;
}

/**
 * Every program's balance of each customer (0 when never changed), in program id order: spendable, pending and the
 * next expiry, as of the store's clock, days in `timeZone` (default UTC).
 */
export async function balancesOf(
  store: Store,
  actor: Actor,
  options: { customerIds: number[]; timeZone?: string },
): Promise<Map<number, ProgramBalance[]>> {
  return await customerBalances(store.kv, actor.companyId, {
    customerIds: options.customerIds,
    now: store.clock(),
    timeZone: options.timeZone ?? "UTC",
  });
}
