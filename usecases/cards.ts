/** Card use cases: save (update or create), insert, delete and find a card by the specification's lookup order. */
import type { Actor } from "../domain/audit.ts";
import type { Card, CardLookup } from "../domain/card.ts";
import {
  deleteCard as deleteStoredCard,
  findCard as findStoredCard,
  type SaveCard,
  saveCard as saveStoredCard,
  type SaveCardResult,
} from "../storage/cards.ts";
import type { Store } from "../storage/store.ts";

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
