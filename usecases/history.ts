/** History use cases: the audit trail of one customer or one card, newest first. */
import type { Actor, HistoryPosition } from "../domain/audit.ts";
import type { CustomerRef } from "../domain/bonus.ts";
import type { CardLookup } from "../domain/card.ts";
import { NotFoundError } from "../domain/errors.ts";
import { listHistory, type PositionedEntry } from "../storage/audit.ts";

export type { PositionedEntry };
import { findCard } from "../storage/cards.ts";
import type { Store } from "../storage/store.ts";
import { customerIdOf } from "./customers.ts";

/** Which page of a history: by page number, or after a cursor position. */
export interface HistoryPaging {
  page: number | null;
  before?: HistoryPosition;
  pageSize: number;
}

/** One page of a history. */
export interface HistoryPage {
  entityId: number;
  entries: PositionedEntry[];
  /** Where the next page starts, or null when this one is the last. */
  next: HistoryPosition | null;
}

async function page(
  store: Store,
  actor: Actor,
  options: { entity: "customer" | "card"; id: number; paging: HistoryPaging },
): Promise<HistoryPage> {
  const { paging } = options;
  // One more than asked tells whether a next page exists.
  const rows = await listHistory(store.kv, actor.companyId, {
    entity: options.entity,
    entityId: String(options.id),
    limit: paging.pageSize + 1,
    skip: paging.page === null ? 0 : (paging.page - 1) * paging.pageSize,
    before: paging.before,
  });
  const entries = rows.slice(0, paging.pageSize);
  return {
    entityId: options.id,
    entries,
    next: rows.length > paging.pageSize ? entries.at(-1)!.position : null,
  };
}

/**
 * The history of a customer: its own changes and its balance changes. The customer must exist (404 naming the
 * parameter otherwise); customers are never deleted today.
 */
export async function customerHistory(
  store: Store,
  actor: Actor,
  options: { customer: CustomerRef; paging: HistoryPaging },
): Promise<HistoryPage> {
  const id = await customerIdOf(store, actor, options.customer);
  return await page(store, actor, { entity: "customer", id, paging: options.paging });
}

/**
 * The history of a card, found by card_id (which works for deleted cards too) or by uid (a card that exists).
 */
export async function cardHistory(
  store: Store,
  actor: Actor,
  options: { lookup: Pick<CardLookup, "card_id" | "uid">; paging: HistoryPaging },
): Promise<HistoryPage> {
  let id = options.lookup.card_id ?? undefined;
  if (id === undefined) {
    const card = options.lookup.uid === undefined
      ? null
      : await findCard(store.kv, actor.companyId, { uid: options.lookup.uid });
    if (!card) throw new NotFoundError(`Card with uid "${options.lookup.uid}" not found`, "uid");
    id = card.id;
  } else {
    const rows = await listHistory(store.kv, actor.companyId, { entity: "card", entityId: String(id), limit: 1 });
    const card = await findCard(store.kv, actor.companyId, { card_id: id });
    if (!card && rows.length === 0) throw new NotFoundError(`Card "${id}" not found`, "card_id");
  }
  return await page(store, actor, { entity: "card", id, paging: options.paging });
}
