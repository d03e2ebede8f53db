/**
 * Discount cards in KV. A card record sits at ["company", cid, "cards", id]; its uid, barcode and external id each
 * have a unique index holding the card id with its owner's customer id (`cardIndexValue`), and its owner a
 * non-unique index ending with the card id. Every create,
 * update and delete is one atomic operation that checks the versionstamps of the record, of each unique index it
 * claims, of the sequences it advances and of the customer it attaches to; a lost race is re-read and retried.
 */
import {
  applyCardChange,
  barcodeCandidates,
  type Card,
  type CardChange,
  cardClash,
  type CardLookup,
  cardNotFound,
  cardNotIdentified,
  type CardRefs,
  cardUniqueKeys,
  firstFound,
  type LookupStep,
  lookupSteps,
  uidCandidates,
  wantsGeneratedBarcode,
} from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import { ConflictError, NotFoundError } from "../domain/errors.ts";
import type { Actor } from "../domain/audit.ts";
import { addPendingEntry, type NameResolution, requireEntry, resolveName } from "./directories.ts";
import { cardKeys, keys } from "./keys.ts";
import { addCardCount } from "./points_stats.ts";
import { getByIds } from "./batch.ts";
import {
  addIndexDiff,
  diffIndexes,
  explainFailure,
  indexedId,
  type IndexKeys,
  readClaims,
  RETRY,
  withRetry,
  Write,
} from "./commit.ts";
import { MAX_CHECKS, MAX_CREATE_RETRIES, MAX_GET_MANY, MAX_RETRIES } from "./limits.ts";
import { uidToEan13 } from "../domain/ean13.ts";
import type { Store } from "./store.ts";
import { type Left, type Queued, togetherQueue } from "./together.ts";

/** Range lists of the owner index in flight at once when the cards of many customers are read. */
const PARALLEL_LISTS = 256;
/** Largest id gap between two customers whose cards are read with one range list (the gap's cards are skipped). */
const MAX_RUN_GAP = 4;

/** Key builders of the card collections (defined with every other key in keys.ts). */
export { cardKeys };

/** The unique card fields and the index each one lives in. */
const UNIQUE = {
  uid: cardKeys.byUid,
  barcode: cardKeys.byBarcode,
  external_id: cardKeys.byExternalId,
} as const;
type UniqueField = keyof typeof UNIQUE;

/** The index a lookup key is answered from. */
function lookupKey(cid: string, step: LookupStep): Deno.KvKey {
  switch (step.key) {
    case "card_id":
      return cardKeys.card(cid, step.value);
    case "uid":
      return cardKeys.byUid(cid, step.value);
    case "external_id":
      return cardKeys.byExternalId(cid, step.value);
    case "card_barcode":
      return cardKeys.byBarcode(cid, step.value);
  }
}

/**
 * What each unique index entry of a card (uid, barcode, external id) holds: the card id and its owner's customer id
 * (null: no owner), so the owner of a card is found in one read and a till's "customer by card" takes two reads
 * (index, customer) instead of three. Every write of a card rewrites its entries when the owner changes; entries
 * written before this format hold the bare card id, which every reader still accepts (`cardIdOf`, `findCardOwner`)
 * and `deno task verify --repair` rewrites.
 */
export type CardIndexValue = [cardId: number, ownerId: number | null];

/** The value of a card's unique index entries (see CardIndexValue). */
export function cardIndexValue(card: Card): CardIndexValue {
  return [card.id, card.customer_id];
}

/** The card id a card index entry names, in either format (a bare id or CardIndexValue); null when absent. */
export function cardIdOf(value: unknown): number | null {
  return indexedId(value);
}

/** Whether a card index entry holds exactly `card`'s current value (not an old bare id, not another owner). */
export function holdsCardIndexValue(value: unknown, card: Card): boolean {
  return Array.isArray(value) && value.length === 2 && value[0] === card.id && value[1] === card.customer_id;
}

/** The owner a card index entry names: a customer id or null when it says, undefined for a bare card id. */
function ownerIn(value: unknown): number | null | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const owner = value[1];
  return typeof owner === "number" || owner === null ? owner : undefined;
}

/**
 * The id of the owner of the card a lookup finds; null for no card or a card without an owner. A lookup by one
 * uid, external id or barcode reads only that index entry, which names the owner; an entry in the old format (a
 * bare card id) and any other lookup read the card as well. The entry changes in the same atomic write as the card's
 * owner, so the id returned is the owner at the moment of the read.
 */
export async function findCardOwner(kv: Deno.Kv, cid: string, lookup: CardLookup): Promise<number | null> {
  const steps = lookupSteps(lookup);
  const only = steps.length === 1 ? steps[0]! : null;
  if (only === null || only.key === "card_id") return (await findCard(kv, cid, lookup))?.customer_id ?? null;
  const entry = await kv.get<unknown>(lookupKey(cid, only));
  if (entry.value === null) return null;
  const owner = ownerIn(entry.value);
  if (owner !== undefined) return owner;
  const id = cardIdOf(entry.value);
  return id === null ? null : (await getCard(kv, cid, id))?.customer_id ?? null;
}

/** Finds a card by the lookup order (card_id, uid, external_id, card_barcode) in at most two reads. */
async function locate(kv: Deno.Kv, cid: string, steps: LookupStep[]): Promise<Deno.KvEntry<Card> | null> {
  if (steps.length === 0) return null;
  const first = await kv.getMany<unknown[]>(steps.map((s) => lookupKey(cid, s)));
  // card_id reads the record itself; the other keys read an index naming the card id.
  const ids = first.map((e, i) => (steps[i]!.key === "card_id" ? null : cardIdOf(e.value)));
  const pointed = [...new Set(ids.filter((v): v is number => v !== null))];
  const records = new Map<number, Deno.KvEntry<Card>>();
  if (pointed.length > 0) {
    const read = await kv.getMany<Card[]>(pointed.map((id) => cardKeys.card(cid, id)));
    for (const e of read) if (e.value !== null) records.set(e.value.id, e as Deno.KvEntry<Card>);
  }
  const found = first.map((e, i) => {
    if (steps[i]!.key === "card_id") return e.value === null ? null : e as Deno.KvEntry<Card>;
    return ids[i] === null ? null : records.get(ids[i]!) ?? null;
  });
  return firstFound(steps, found)?.card ?? null;
}

/** Finds a card by a lookup (card_id, uid, external_id, card_barcode in that order); null when none is found. */
export async function findCard(kv: Deno.Kv, cid: string, lookup: CardLookup): Promise<Card | null> {
  return (await locate(kv, cid, lookupSteps(lookup)))?.value ?? null;
}

/** Reads one card by id. */
export async function getCard(kv: Deno.Kv, cid: string, id: number): Promise<Card | null> {
  return (await kv.get<Card>(cardKeys.card(cid, id))).value;
}

/** What to save: how to find the card and what to change. */
export interface SaveCard {
  /** "update" finds the card by `lookup` (creating it when allowed); "insert" always creates from `lookup`'s uid and external_id. */
  mode: "update" | "insert";
  /** Lookup keys (update), or the uid and external id of the new card (insert and create_if_not_exist). */
  lookup: CardLookup;
  /** Update only: create the card when no lookup key finds it. */
  create?: boolean;
  /** The change to the card's own fields. */
  change: CardChange;
  /** The card type and customer to point at. */
  refs: CardRefs;
}

/** Result of a save: the stored card and whether it was created. */
export interface SaveCardResult {
  card: Card;
  isNew: boolean;
}

/** The index keys of one version of a card: its unique values and its owner's list. */
function cardIndexKeys(cid: string, card: Card): IndexKeys {
  const unique = cardUniqueKeys(card);
  return {
    unique: {
      uid: UNIQUE.uid(cid, unique.uid),
      barcode: unique.barcode === null ? null : UNIQUE.barcode(cid, unique.barcode),
      external_id: unique.external_id === null ? null : UNIQUE.external_id(cid, unique.external_id),
    },
    lists: card.customer_id === null ? [] : [cardKeys.ofCustomerEntry(cid, card.customer_id, card.id)],
  };
}

/**
 * Creates or updates a card with its indexes and audit entry in one atomic operation; lost races are re-read and
 * retried. Creates hold this process's per-company queue only around taking sequence numbers and committing.
 */
export async function saveCard(store: Store, actor: Actor, request: SaveCard): Promise<SaveCardResult> {
  const steps = lookupSteps(request.lookup);
  const cid = actor.companyId;
  return await withRetry(async (attempt) => {
    if (request.mode === "insert") return await tryCreate(store, actor, request);
    if (steps.length === 0 && !request.create) throw cardNotIdentified("update");
    const entry = await locate(store.kv, cid, steps);
    if (entry) return await tryUpdate(store, actor, request, { entry, optimistic: attempt === 1 });
    if (!request.create) throw cardNotFound(steps);
    return await tryCreate(store, actor, request);
  }, {
    message: "Cannot save card: it was changed concurrently, try again",
    attempts: request.mode === "insert" || request.create ? MAX_CREATE_RETRIES : MAX_RETRIES,
  });
}

/** Deletes the card a lookup finds, with all its index keys, in one atomic operation; sequences are kept. */
export async function deleteCard(store: Store, actor: Actor, lookup: CardLookup): Promise<Card> {
  const steps = lookupSteps(lookup);
  if (steps.length === 0) throw cardNotIdentified("delete");
  const cid = actor.companyId;
  return await withRetry(async () => {
    const entry = await locate(store.kv, cid, steps);
    if (!entry) throw cardNotFound(steps);
    const card = entry.value;
    const write = new Write(store, actor).check(entry).delete(cardKeys.card(cid, card.id));
    addCardCount(write, cid, -1);
    addIndexDiff(write, diffIndexes(cardIndexKeys(cid, card), null), {
      claims: { entries: [], optimistic: false },
      id: card.id,
    });
    write.audit({ entity: "card", entityId: card.id, before: card, after: null });
    return await write.commit("delete card") ? card : RETRY;
  }, { message: "Cannot delete card: it was changed concurrently, try again" });
}

/** The card type and customer a request points at, read and checked. */
interface Resolved {
  typeId?: number | null;
  pendingType: NameResolution["pending"];
  customerId?: number | null;
  /** The customer record read, checked unchanged at commit so a card never points to a missing customer. */
  customer: Deno.KvEntry<Customer> | null;
}

async function resolveType(
  kv: Deno.Kv,
  cid: string,
  refs: CardRefs,
  now: number,
): Promise<Pick<Resolved, "typeId" | "pendingType">> {
  if (refs.typeId !== undefined) {
    if (refs.typeId !== null) await requireEntry(kv, cid, { kind: "card_types", id: refs.typeId, field: "type_id" });
    return { typeId: refs.typeId, pendingType: null };
  }
  if (refs.typeName === undefined) return { pendingType: null };
  if (refs.typeName === null) return { typeId: null, pendingType: null };
  const resolution = await resolveName(kv, cid, { kind: "card_types", name: refs.typeName, now });
  return { typeId: resolution.id, pendingType: resolution.pending };
}

async function resolveCustomer(
  kv: Deno.Kv,
  cid: string,
  refs: CardRefs,
): Promise<Pick<Resolved, "customerId" | "customer">> {
  if (refs.customerId !== undefined) {
    if (refs.customerId === null) return { customerId: null, customer: null };
    const entry = await kv.get<Customer>(keys.customer(cid, refs.customerId));
    if (entry.value === null) throw new NotFoundError(`Customer "${refs.customerId}" not found`, "customer_id");
    return { customerId: refs.customerId, customer: entry as Deno.KvEntry<Customer> };
  }
  if (refs.customerExternalId === undefined) return { customer: null };
  if (refs.customerExternalId === null) return { customerId: null, customer: null };
  const index = await kv.get<number>(keys.customerByExternalId(cid, refs.customerExternalId));
  const entry = index.value === null ? null : await kv.get<Customer>(keys.customer(cid, index.value));
  if (!entry || entry.value === null) {
    throw new NotFoundError(
      `Customer with external_id "${refs.customerExternalId}" not found`,
      "customer_external_id",
    );
  }
  return { customerId: entry.value.id, customer: entry as Deno.KvEntry<Customer> };
}

/** Reads the type and customer in parallel; an unknown customer is reported before an unknown type. */
async function resolveRefs(kv: Deno.Kv, cid: string, refs: CardRefs, now: number): Promise<Resolved> {
  const [customer, type] = await Promise.allSettled([
    resolveCustomer(kv, cid, refs),
    resolveType(kv, cid, refs, now),
  ]);
  if (customer.status === "rejected") throw customer.reason;
  if (type.status === "rejected") throw type.reason;
  return { ...customer.value, ...type.value };
}

/** Adds what the refs need at commit: the new owner checked unchanged (so it exists), a new card type created. */
function addRefs(write: Write, cid: string, card: Card, resolved: Resolved): void {
  if (resolved.customer && card.customer_id !== null) write.check(resolved.customer);
  if (resolved.pendingType) addPendingEntry(write, cid, "card_types", resolved.pendingType);
}

async function tryUpdate(
  store: Store,
  actor: Actor,
  request: SaveCard,
  options: { entry: Deno.KvEntry<Card>; optimistic: boolean },
): Promise<SaveCardResult | typeof RETRY> {
  const cid = actor.companyId;
  const { entry } = options;
  const existing = entry.value;
  const now = store.clock();
  const resolved = await resolveRefs(store.kv, cid, request.refs, now);
  const next = applyCardChange(existing, request.change, {
    id: existing.id,
    uid: existing.uid,
    externalId: existing.external_id,
    typeId: resolved.typeId,
    customerId: resolved.customerId,
    now,
    userId: actor.userId,
  });
  const diff = diffIndexes(cardIndexKeys(cid, existing), cardIndexKeys(cid, next));
  const after = cardUniqueKeys(next);
  const clash = (field: string): never => {
    throw cardClash(field, after[field as UniqueField]!, false);
  };
  const claims = await readClaims(store.kv, diff, { id: existing.id, clash, optimistic: options.optimistic });
  if (claims === RETRY) return RETRY;
  const write = new Write(store, actor).check(entry);
  addIndexDiff(write, diff, { claims, id: existing.id, value: cardIndexValue(next) });
  if (next.customer_id !== existing.customer_id) {
    // The entries the card keeps name its owner too: each is rewritten, checked as read, when it names this card
    // (one that does not is a defect for verify to report, left alone).
    const claimed = new Set(diff.claim.map((c) => JSON.stringify(c.key)));
    const kept = Object.values(cardIndexKeys(cid, next).unique)
      .filter((k): k is Deno.KvKey => k !== null && !claimed.has(JSON.stringify(k)));
    for (const e of kept.length === 0 ? [] : await store.kv.getMany<unknown[]>(kept)) {
      if (cardIdOf(e.value) === next.id) write.check(e).set(e.key, cardIndexValue(next));
    }
  }
  addRefs(write, cid, next, resolved);
  write.set(cardKeys.card(cid, next.id), next);
  write.audit({ entity: "card", entityId: next.id, before: existing, after: next });
  if (await write.commit("save card")) return { card: next, isNew: false };
  return await explainFailure(store.kv, diff, { claims, id: existing.id, clash });
}

/** The next (at most) MAX_GET_MANY candidates. */
function nextBatch<T>(candidates: Iterator<T>): T[] {
  const batch: T[] = [];
  while (batch.length < MAX_GET_MANY) {
    const next = candidates.next();
    if (next.done) break;
    batch.push(next.value);
  }
  return batch;
}

/** The first of these candidates whose unique index key is free (one getMany), or null when all are taken. */
async function freeAmong<T extends { value: string }>(
  kv: Deno.Kv,
  batch: T[],
  indexKey: (value: string) => Deno.KvKey,
): Promise<{ candidate: T; index: Deno.KvEntryMaybe<number> } | null> {
  const read = await kv.getMany<number[]>(batch.map((c) => indexKey(c.value)));
  const i = read.findIndex((e) => e.value === null);
  return i >= 0 ? { candidate: batch[i]!, index: read[i]! } : null;
}

/**
 * Finds the first candidate whose unique index key is free, reading the keys in getMany batches; returns it with
 * the empty index entry read, to be checked at commit.
 */
async function firstFree<T extends { value: string }>(
  kv: Deno.Kv,
  candidates: Iterator<T>,
  indexKey: (value: string) => Deno.KvKey,
): Promise<{ candidate: T; index: Deno.KvEntryMaybe<number> }> {
  while (true) {
    const batch = nextBatch(candidates);
    if (batch.length === 0) throw new ConflictError("Cannot create card: no free number left");
    const free = await freeAmong(kv, batch, indexKey);
    if (free) return free;
  }
}

/**
 * The first number after `lastNumber` that no card holds as its uid, with its empty index entry to check at commit.
 * A run of taken numbers (cards imported or seeded with sequential numbers) is walked by listing the uid index, a
 * thousand keys per call, rather than probing ten numbers per call: a million taken numbers cost a thousand calls
 * once, after which the sequence stands past them.
 */
async function firstFreeUid(
  kv: Deno.Kv,
  cid: string,
  lastNumber: number,
): Promise<{ candidate: { value: string; position: number }; index: Deno.KvEntryMaybe<number> }> {
  // Most often the next number is free: one getMany answers.
  const first = await firstFreeWithin(kv, cid, uidCandidates(lastNumber));
  if (first) return first;
  let expected = lastNumber + MAX_GET_MANY + 1;
  while (true) {
    const text = String(expected);
    let passed = false;
    // Keys come in string order: longer numbers sharing a prefix sit between consecutive ones and are stepped over;
    // the first key above the expected number shows that number is free.
    for await (
      const e of kv.list<number>({ start: cardKeys.byUid(cid, text), prefix: cardKeys.uids(cid) }, { batchSize: 1000 })
    ) {
      const uid = e.key.at(-1) as string;
      const wanted = String(expected);
      if (uid === wanted) {
        expected++;
        if (String(expected).length !== wanted.length) break; // 999 -> 1000 sorts earlier: list again from there
        continue;
      }
      if (uid < wanted) continue;
      passed = true;
      break;
    }
    if (passed || String(expected).length === text.length) {
      const value = String(expected);
      const key = cardKeys.byUid(cid, value);
      return { candidate: { value, position: expected }, index: { key, value: null, versionstamp: null } };
    }
  }
}

/** The first of the next MAX_GET_MANY candidates whose index key (uid by default) is free, or null when none is. */
async function firstFreeWithin<T extends { value: string }>(
  kv: Deno.Kv,
  cid: string,
  candidates: Iterator<T>,
  indexKey: (value: string) => Deno.KvKey = (v) => cardKeys.byUid(cid, v),
): Promise<{ candidate: T; index: Deno.KvEntryMaybe<number> } | null> {
  const batch = nextBatch(candidates);
  return batch.length === 0 ? null : await freeAmong(kv, batch, indexKey);
}

/**
 * Creates a card. What does not depend on sequences (the customer, the type, the given unique values) is read
 * first, outside any queue; only taking the id, number and barcode from their sequences and the commit run in this
 * process's per-company queue, so card creates do not hold each other up for their reads.
 */
async function tryCreate(store: Store, actor: Actor, request: SaveCard): Promise<SaveCardResult | typeof RETRY> {
  const { kv } = store;
  const cid = actor.companyId;
  const { change, lookup } = request;
  const uid = lookup.uid ?? null;
  const externalId = lookup.external_id ?? null;
  const barcode = change.barcode ?? null;

  const givenFields: [UniqueField, string][] = [];
  if (uid !== null) givenFields.push(["uid", uid]);
  if (externalId !== null) givenFields.push(["external_id", externalId]);
  if (barcode !== null) givenFields.push(["barcode", barcode]);
  const [resolved, given] = await Promise.all([
    resolveRefs(kv, cid, request.refs, store.clock()),
    kv.getMany<(number | null)[]>(givenFields.map(([field, value]) => UNIQUE[field](cid, value))),
  ]);
  for (const [i, [field, value]] of givenFields.entries()) {
    // A clash on a lookup key while updateCard creates means the card was created concurrently: find it again.
    if (given[i]!.value !== null) {
      if (request.mode === "update" && field !== "barcode") return RETRY;
      throw cardClash(field, value, true);
    }
  }
  const create: CardCreate = { request, resolved, givenFields, given };
  // A card whose number, uid_ean13 and barcode are all generated, of a known type, can go together with others that
  // queue (a given uid_ean13 would be its barcode, which another card of the write may hold: tests/blackbox_9_test.ts).
  if (
    givenFields.length === 0 && change.uid_ean13 === undefined && wantsGeneratedBarcode(change) &&
    !resolved.pendingType && !actor.commits
  ) {
    return await cardCreates.add(store, actor, create);
  }
  return await store.mutex.run(`cards:${cid}`, () => createAlone(store, actor, create));
}

/** A card create with what was read for it outside the queue: its refs and the given unique values (free). */
interface CardCreate {
  request: SaveCard;
  resolved: Resolved;
  givenFields: [UniqueField, string][];
  given: Deno.KvEntryMaybe<number | null>[];
}

/** Commits one card create in its company's queue (held by the caller): takes its sequence numbers and commits. */
async function createAlone(
  store: Store,
  actor: Actor,
  create: CardCreate,
): Promise<SaveCardResult | typeof RETRY> {
  const { kv } = store;
  const cid = actor.companyId;
  const { request, resolved, givenFields, given } = create;
  const { change, lookup } = request;
  const uid = lookup.uid ?? null;
  const externalId = lookup.external_id ?? null;
  // The queue is held for a few store round trips per card; under load each await also waits its turn in the
  // event loop, so the candidates the sequences most likely point at (where this process left them) are read in
  // the same round as the sequences, and used only when the sequences read as guessed.
  const guess = sequenceGuesses(store).get(cid);
  const guessedEan13 = guess ? uidToEan13(String(guess.number + 1)) : null;
  // When this process's last create left the sequences with the versionstamps it knows (no other writer since,
  // as far as it knows), nothing is read: the sequences are taken as left and the first candidates as free, all
  // checked at commit; a commit that finds otherwise is retried with the reads.
  const known = guess?.stamps;
  const [[idSeq, numberSeq, barcodeSeq], uidGuess, barcodeGuess] = known
    ? [
      [known.id, known.number, known.barcode],
      uid === null ? assumeFree(uidCandidates(guess!.number), (v) => cardKeys.byUid(cid, v)) : null,
      uid === null && wantsGeneratedBarcode(change)
        ? assumeFree(barcodeCandidates(guessedEan13, guess!.barcode), (v) => cardKeys.byBarcode(cid, v))
        : null,
    ] as const
    : await Promise.all([
      kv.getMany<[number, number, number]>([
        cardKeys.idSequence(cid),
        cardKeys.numberSequence(cid),
        cardKeys.barcodeSequence(cid),
      ]),
      guess && uid === null ? firstFreeWithin(kv, cid, uidCandidates(guess.number)) : null,
      guess && uid === null && wantsGeneratedBarcode(change)
        ? firstFreeWithin(
          kv,
          cid,
          barcodeCandidates(guessedEan13, guess.barcode),
          (v) => cardKeys.byBarcode(cid, v),
        )
        : null,
    ]);
  const write = new Write(store, actor);
  const id = (idSeq.value ?? 0) + 1;
  write.check(idSeq, { key: cardKeys.card(cid, id), versionstamp: null }).set(cardKeys.idSequence(cid), id);
  // The card's unique index keys, set (to cardIndexValue) once the card is built.
  const indexKeys: Deno.KvKey[] = [];
  for (const [i, [field, value]] of givenFields.entries()) {
    write.check(given[i]!);
    indexKeys.push(UNIQUE[field](cid, value));
  }

  // No uid given: the next free number of the sequence, skipping numbers some card holds as its uid.
  let cardUid = uid;
  let nextNumber = numberSeq.value ?? 0;
  let nextBarcode = barcodeSeq.value ?? 0;
  if (cardUid === null) {
    const lastNumber = numberSeq.value ?? 0;
    const free = (guess?.number === lastNumber ? uidGuess : null) ?? await firstFreeUid(kv, cid, lastNumber);
    cardUid = free.candidate.value;
    nextNumber = free.candidate.position;
    write.check(numberSeq, free.index).set(cardKeys.numberSequence(cid), free.candidate.position);
    indexKeys.push(cardKeys.byUid(cid, cardUid));
  }

  const now = store.clock();
  const card = applyCardChange(null, change, {
    id,
    uid: cardUid,
    externalId,
    typeId: resolved.typeId,
    customerId: resolved.customerId,
    now,
    userId: actor.userId,
  });

  // No barcode given: the uid_ean13 when free, else the next free in-store EAN-13.
  if (wantsGeneratedBarcode(change)) {
    const lastInStore = barcodeSeq.value ?? 0;
    // The guessed batch holds the same candidates when the uid_ean13 and the sequence are the guessed ones.
    const guessed = guess?.barcode === lastInStore && card.uid_ean13 === guessedEan13 ? barcodeGuess : null;
    const candidates = barcodeCandidates(card.uid_ean13, lastInStore);
    const free = guessed ?? await firstFree(kv, candidates, (v) => cardKeys.byBarcode(cid, v));
    card.barcode = free.candidate.value;
    write.check(free.index);
    indexKeys.push(cardKeys.byBarcode(cid, card.barcode));
    const position = free.candidate.position;
    if (position !== null) {
      write.check(barcodeSeq).set(cardKeys.barcodeSequence(cid), position);
      nextBarcode = position;
    }
  }

  for (const key of indexKeys) write.set(key, cardIndexValue(card));
  if (card.customer_id !== null) write.set(cardKeys.ofCustomerEntry(cid, card.customer_id, id), null);
  addRefs(write, cid, card, resolved);
  write.set(cardKeys.card(cid, id), card);
  addCardCount(write, cid, 1);
  write.audit({ entity: "card", entityId: id, before: null, after: card });
  const committed = await write.commit("create card");
  // Where the sequences stand now, if this commit went in (else a guess all the same: it only picks what to read),
  // with their versionstamps when it did: the commit's for those it set, the ones it checked for the others.
  const stamped = (key: Deno.KvKey, value: number, before: Deno.KvEntryMaybe<number>, set: boolean) =>
    ({
      key,
      value: set ? value : before.value,
      versionstamp: set ? committed! : before.versionstamp,
    }) as Deno.KvEntryMaybe<number>;
  sequenceGuesses(store).set(cid, {
    number: nextNumber,
    barcode: nextBarcode,
    stamps: committed
      ? {
        id: stamped(cardKeys.idSequence(cid), id, idSeq, true),
        number: stamped(cardKeys.numberSequence(cid), nextNumber, numberSeq, nextNumber !== (numberSeq.value ?? 0)),
        barcode: stamped(
          cardKeys.barcodeSequence(cid),
          nextBarcode,
          barcodeSeq,
          nextBarcode !== (barcodeSeq.value ?? 0),
        ),
      }
      : undefined,
  });
  return committed ? { card, isNew: true } : RETRY;
}

/** A card create waiting for its company's queue. */
type QueuedCard = Queued<CardCreate, SaveCardResult | typeof RETRY>;

/** Card creates, committed together when they queue (storage/together.ts). */
const cardCreates = togetherQueue<CardCreate, SaveCardResult | typeof RETRY>({
  queueKey: (cid) => `cards:${cid}`,
  perCommit: 8,
  together: (store, cid, queued) => createCardsTogether(store, cid, queued),
  alone: (store, q) => createAlone(store, q.actor, q),
});

/**
 * Commits several card creates of one actor, each with a generated number and its uid_ean13 as barcode, in one
 * atomic operation, as optimistic as a create alone that knows the sequences: nothing is read (the id and number
 * sequences as this process's last card create left them, checked), each card takes the next id and number, its
 * uid and barcode are checked absent and its owner unchanged. Card ids and numbers above the sequences are never
 * written by a create (a given uid may be any number, which is why each uid is checked), so the records need no
 * check of their own. MAX_CHECKS allows two cards of different owners a write (more of one owner). Returns those it
 * did not commit: `alone`, in order, for the one-at-a-time path, which reads the sequences (all those it tried when
 * a check failed, or the first in line when the sequences are not known or it cannot go with another), and `unfit`,
 * past the limits, for the queue's next turn. A write that fails otherwise (a store error) gives its own creates that
 * error and none other.
 */
async function createCardsTogether(store: Store, cid: string, queued: QueuedCard[]): Promise<Left<QueuedCard>> {
  const guesses = sequenceGuesses(store);
  const guess = guesses.get(cid);
  const known = guess?.stamps;
  if (!guess || !known) return { alone: queued, unfit: [] };
  const lastId = known.id.value ?? 0;
  const lastNumber = known.number.value ?? 0;
  const write = new Write(store, queued[0]!.actor);
  write.check(known.id, known.number);
  let checks = 2;
  const owners = new Set<string>();
  const made: { q: QueuedCard; card: Card }[] = [];
  const now = store.clock();
  for (const q of queued) {
    const id = lastId + made.length + 1;
    const number = lastNumber + made.length + 1;
    const { resolved } = q;
    const card = applyCardChange(null, q.request.change, {
      id,
      uid: String(number),
      externalId: null,
      typeId: resolved.typeId,
      customerId: resolved.customerId,
      now,
      userId: q.actor.userId,
    });
    // Generated numbers are distinct, and so their uid_ean13s; a card whose barcode is not its own number's goes alone.
    if (card.uid_ean13 === null || card.uid_ean13 !== uidToEan13(card.uid)) break;
    card.barcode = card.uid_ean13;
    const owner = resolved.customer && card.customer_id !== null ? resolved.customer : null;
    const ownerCheck = owner ? `${JSON.stringify(owner.key)}@${owner.versionstamp}` : null;
    const newOwner = ownerCheck !== null && !owners.has(ownerCheck);
    if (checks + 2 + (newOwner ? 1 : 0) > MAX_CHECKS) break;
    const uidKey = cardKeys.byUid(cid, card.uid);
    const barcodeKey = cardKeys.byBarcode(cid, card.barcode);
    write.check({ key: uidKey, versionstamp: null }, { key: barcodeKey, versionstamp: null });
    checks += 2;
    if (newOwner) {
      write.check(owner!);
      owners.add(ownerCheck!);
      checks++;
    }
    const value = cardIndexValue(card);
    write.set(uidKey, value).set(barcodeKey, value);
    if (card.customer_id !== null) write.set(cardKeys.ofCustomerEntry(cid, card.customer_id, id), null);
    write.set(cardKeys.card(cid, id), card);
    addCardCount(write, cid, 1);
    write.audit({ entity: "card", entityId: id, before: null, after: card });
    made.push({ q, card });
  }
  const fitted = made.length;
  if (fitted < 2) return { alone: queued.slice(0, Math.max(fitted, 1)), unfit: queued.slice(Math.max(fitted, 1)) };
  const unfit = queued.slice(fitted);
  const id = lastId + fitted;
  const number = lastNumber + fitted;
  write.set(cardKeys.idSequence(cid), id).set(cardKeys.numberSequence(cid), number);
  // Until a commit says where the sequences stand, the next create reads them.
  const unknown = () => guesses.set(cid, { number: guess.number, barcode: guess.barcode });
  let versionstamp: string | null;
  try {
    versionstamp = await write.commit("create cards");
  } catch (error) {
    unknown();
    for (const { q } of made) q.settle(Promise.reject(error));
    return { alone: [], unfit };
  }
  if (!versionstamp) {
    unknown();
    return { alone: queued.slice(0, fitted), unfit };
  }
  guesses.set(cid, {
    number,
    barcode: guess.barcode,
    stamps: {
      id: { key: cardKeys.idSequence(cid), value: id, versionstamp },
      number: { key: cardKeys.numberSequence(cid), value: number, versionstamp },
      barcode: known.barcode,
    },
  });
  for (const { q, card } of made) q.settle(Promise.resolve({ card, isNew: true }));
  return { alone: [], unfit };
}

/**
 * Where each company's card number and in-store barcode sequences were left by this process's last card create,
 * with the three sequence entries as that create left them when it committed.
 */
interface SequenceGuess {
  number: number;
  barcode: number;
  stamps?: { id: Deno.KvEntryMaybe<number>; number: Deno.KvEntryMaybe<number>; barcode: Deno.KvEntryMaybe<number> };
}

const GUESSES = new WeakMap<Store, Map<string, SequenceGuess>>();

/** The first candidate, taken as free without a read: its index entry is checked absent at commit. */
function assumeFree<T extends { value: string }>(
  candidates: Iterator<T>,
  indexKey: (value: string) => Deno.KvKey,
): { candidate: T; index: Deno.KvEntryMaybe<number> } | null {
  const first = candidates.next();
  if (first.done) return null;
  return { candidate: first.value, index: { key: indexKey(first.value.value), value: null, versionstamp: null } };
}

function sequenceGuesses(store: Store): Map<string, SequenceGuess> {
  let guesses = GUESSES.get(store);
  if (!guesses) GUESSES.set(store, guesses = new Map());
  return guesses;
}

/**
 * Groups ascending customer ids into runs whose neighbours are at most MAX_RUN_GAP apart, so the owner index of a
 * run is read with one range list: a page of consecutive customers costs one list, scattered ones one list each.
 */
function runsOf(ids: number[]): { from: number; to: number }[] {
  const runs: { from: number; to: number }[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    const last = runs.at(-1);
    if (last && id - last.to <= MAX_RUN_GAP) last.to = id;
    else runs.push({ from: id, to: id });
  }
  return runs;
}

/**
 * Reads the cards of many customers without a round trip per customer: the owner index is read as parallel range
 * lists (one per run of nearby ids), then the records in parallel getMany batches. Cards come in card id order.
 */
export async function cardsOfCustomers(
  kv: Deno.Kv,
  cid: string,
  customerIds: number[],
): Promise<Map<number, Card[]>> {
  const out = new Map<number, Card[]>(customerIds.map((id) => [id, []]));
  const runs = runsOf([...out.keys()]);
  const cardIds: number[] = [];
  for (let i = 0; i < runs.length; i += PARALLEL_LISTS) {
    const lists = await Promise.all(
      runs.slice(i, i + PARALLEL_LISTS).map(async ({ from, to }) => {
        const found: number[] = [];
        const selector = { start: cardKeys.ofCustomer(cid, from), end: cardKeys.ofCustomer(cid, to + 1) };
        for await (const e of kv.list(selector, { batchSize: 1000 })) {
          // Inside a run, customers between the wanted ones are skipped.
          if (out.has(e.key.at(-2) as number)) found.push(e.key.at(-1) as number);
        }
        return found;
      }),
    );
    for (const list of lists) cardIds.push(...list);
  }
  // Card records by id runs: cards made in customer order (an import, a batch of new members) read in one list.
  const cards = [...(await getByIds<Card>(kv, cardKeys.cards(cid), cardIds)).values()];
  cards.sort((a, b) => a.id - b.id);
  for (const card of cards) if (card.customer_id !== null) out.get(card.customer_id)?.push(card);
  return out;
}
