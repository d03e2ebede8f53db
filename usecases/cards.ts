/** Card use cases: save (update or create), insert, delete and find a card by the specification's lookup order. */
import type { Actor } from "../domain/audit.ts";
import { type Card, type CardLookup, cardNotFound, lookupSteps } from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { ValidationError } from "../domain/errors.ts";
import {
  deleteCard as deleteStoredCard,
  findCard as findStoredCard,
  type SaveCard,
  saveCard as saveStoredCard,
  type SaveCardResult,
} from "../storage/cards.ts";
import { getCustomer } from "../storage/customers.ts";
import { getEntriesCached } from "../storage/directories.ts";
import type { Store } from "../storage/store.ts";
import { balancesOf, groupNames } from "./customers.ts";

export type { SaveCard, SaveCardResult };

/** Creates or changes a card (its indexes, owner, type and audit entry in one atomic write). */
export async function saveCard(store: Store, actor: Actor, input: SaveCard): Promise<SaveCardResult> {
  return await saveStoredCard(store, actor, input);
}

/** Deletes the card a lookup finds; the deleted card is returned. */
export async function deleteCard(store: Store, actor: Actor, lookup: CardLookup): Promise<Card> {
  return await deleteStoredCard(store, actor, lookup);
}

/** The card a lookup finds (card_id, uid, external_id, card_barcode, in that order), or null. */
export async function findCard(store: Store, actor: Actor, lookup: CardLookup): Promise<Card | null> {
  return await findStoredCard(store.kv, actor.companyId, lookup);
}

/** One program's balance of a customer, as `balancesOf` gives it (and `GET /api/customer?bonuses=1` shows it). */
export type OwnerBalance = Awaited<ReturnType<typeof balancesOf>> extends Map<number, (infer T)[]> ? T : never;

/** What a till asks about a card: how to find it and whether the owner's balances are wanted. */
export interface CardAtTillQuery {
  /** Lookup keys, tried card_id, uid, external_id, card_barcode: the first that finds a card wins. */
  lookup: CardLookup;
  /** Whether to read the owner's balances (every program, 0 when never changed). */
  bonuses: boolean;
  /** How long directory names (card type, customer group) are reused from memory, ms. */
  maxAgeMs: number;
  /** Time zone of balance expiry days (default UTC). */
  timeZone?: string;
}

/** A card as a till sees it: the card, its type's name, its owner with the group's name, and balances when asked. */
export interface CardAtTill {
  card: Card;
  typeName: string | null;
  /** The owner; null for a card without one. */
  owner: Customer | null;
  groupName: string | null;
  /** The owner's balances in program id order; null when not asked for, empty for a card without an owner. */
  balances: OwnerBalance[] | null;
}

/**
 * Finds a card by the lookup order and reads what a till shows beside it (type name, owner, group name and, when
 * asked, the owner's balances); 400 when no key is given, 404 like updateCard when no card is found.
 */
export async function cardAtTill(store: Store, actor: Actor, query: CardAtTillQuery): Promise<CardAtTill> {
  const steps = lookupSteps(query.lookup);
  if (steps.length === 0) {
    throw new ValidationError(
      "card_id",
      `Parameter "card_id", "uid", "external_id" or "card_barcode" is required`,
    );
  }
  const cid = actor.companyId;
  const card = await findStoredCard(store.kv, cid, query.lookup);
  if (card === null) throw cardNotFound(steps);
  const ownerId = card.customer_id;
  const [owner, types, balances] = await Promise.all([
    ownerId === null ? null : getCustomer(store.kv, cid, ownerId),
    getEntriesCached(store, cid, {
      kind: "card_types",
      ids: card.type_id === null ? [] : [card.type_id],
      maxAgeMs: query.maxAgeMs,
    }),
    query.bonuses && ownerId !== null
      ? balancesOf(store, actor, { customerIds: [ownerId], timeZone: query.timeZone })
      : null,
  ]);
  const groups = owner === null
    ? new Map<number, DirectoryEntry>()
    : await groupNames(store, actor, { customers: [owner], maxAgeMs: query.maxAgeMs });
  return {
    card,
    typeName: card.type_id === null ? null : types.get(card.type_id)?.name ?? null,
    owner,
    groupName: owner?.group_id == null ? null : groups.get(owner.group_id)?.name ?? null,
    balances: !query.bonuses ? null : owner === null ? [] : balances?.get(owner.id) ?? [],
  };
}
