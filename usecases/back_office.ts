/**
 * What the back office reads beyond the API's use cases: the one-box search (phone in any writing, email, card
 * uid or barcode, external id, customer id, or the start of a last name) and everything the customer page shows.
 */
import type { Actor } from "../domain/audit.ts";
import type { LedgerEntry } from "../domain/bonus.ts";
import { parseBarcode, parseUid } from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { emailKey, normalizeEmail } from "../domain/email.ts";
import { normalizePhone } from "../domain/phone.ts";
import type { ProgramBalance } from "../storage/bonuses.ts";
import { findByLastNamePrefix } from "../storage/customers.ts";
import type { Store } from "../storage/store.ts";
import { bonusHistory } from "./bonuses.ts";
import { balancesOf, cardsOf, findCustomers, groupNames, type NamedCard } from "./customers.ts";
import { listDirectory } from "./directories.ts";
import { cardHistory, customerHistory, type PositionedEntry } from "./history.ts";

/** Settings of the search. */
export interface SearchSettings {
  /** Country code put before national phone numbers. */
  defaultCountryCode: string;
  /** Most customers returned. */
  limit: number;
}

function attempt<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch {
    return undefined;
  }
}

/**
 * Finds customers by whatever one box holds: each reading of the text that parses is tried (phone, email, card
 * uid, card barcode, external id, customer id, last-name prefix) and the customers found are merged, exact
 * matches first.
 */
export async function searchCustomers(
  store: Store,
  actor: Actor,
  q: string,
  settings: SearchSettings,
): Promise<Customer[]> {
  const text = q.trim().slice(0, 200);
  if (text === "") return [];
  const lookups: Promise<Customer[]>[] = [];
  const one = (query: Parameters<typeof findCustomers>[2]) =>
    findCustomers(store, actor, query).then((found) => found.kind === "lookup" ? found.customers : []);
  const pageSize = settings.limit;
  if (text.includes("@")) {
    const email = attempt(() => emailKey(normalizeEmail(text, "q")));
    if (email) lookups.push(one({ email, pageSize }));
  }
  const digits = text.replace(/\D/g, "");
  if (/^[\d\s()+\-.]+$/.test(text) && digits.length >= 5) {
    const phone = attempt(() => normalizePhone(text, "q", settings.defaultCountryCode));
    if (phone) lookups.push(one({ phone, pageSize }));
  }
  if (/^\d{1,15}$/.test(text)) lookups.push(one({ id: Number(text), pageSize }));
  const uid = attempt(() => parseUid(text, "q"));
  if (uid) lookups.push(one({ uid, pageSize }));
  const barcode = attempt(() => parseBarcode(text, "q"));
  if (barcode) lookups.push(one({ cardBarcode: barcode, pageSize }));
  lookups.push(one({ externalId: text, pageSize }));
  if (/\p{L}/u.test(text)) {
    lookups.push(findByLastNamePrefix(store.kv, actor.companyId, { prefix: text, limit: settings.limit }));
  }
  const seen = new Set<number>();
  const out: Customer[] = [];
  for (const found of await Promise.all(lookups)) {
    for (const c of found) {
      if (seen.has(c.id) || out.length >= settings.limit) continue;
      seen.add(c.id);
      out.push(c);
    }
  }
  return out;
}

/** One program's balance with the newest entries of its ledger. */
export interface ProgramLedger {
  balance: ProgramBalance;
  entries: LedgerEntry[];
  total: number;
}

/** Everything the customer page shows. */
export interface CustomerPage {
  customer: Customer;
  groupName: string | null;
  cards: NamedCard[];
  programs: ProgramLedger[];
  /** The newest changes of the customer, its balances and its cards, newest first. */
  history: PositionedEntry[];
  groups: DirectoryEntry[];
  cardTypes: DirectoryEntry[];
}

/** Reads a customer with cards, balances, ledgers and history; null when there is no such customer. */
export async function customerPage(
  store: Store,
  actor: Actor,
  options: { id: number; timeZone: string; maxAgeMs: number; ledgerSize: number; historySize: number },
): Promise<CustomerPage | null> {
  const found = await findCustomers(store, actor, { id: options.id, pageSize: 1 });
  const customer = found.kind === "lookup" ? found.customers[0] : undefined;
  if (!customer) return null;
  const ids = [customer.id];
  const [groups, cards, balances, history, groupList, cardTypes] = await Promise.all([
    groupNames(store, actor, { customers: [customer], maxAgeMs: options.maxAgeMs }),
    cardsOf(store, actor, { customerIds: ids, maxAgeMs: options.maxAgeMs }),
    balancesOf(store, actor, { customerIds: ids, timeZone: options.timeZone }),
    customerHistory(store, actor, {
      customer: { id: customer.id },
      paging: { page: 1, pageSize: options.historySize },
    }),
    listDirectory(store, actor, "groups"),
    listDirectory(store, actor, "card_types"),
  ]);
  // Card changes are filed under each card: the newest of every card of the customer join its own history.
  const cardList = cards.get(customer.id) ?? [];
  const cardHistories = await Promise.all(
    cardList.map(({ card }) =>
      cardHistory(store, actor, { lookup: { card_id: card.id }, paging: { page: 1, pageSize: options.historySize } })
    ),
  );
  const merged = [history.entries, ...cardHistories.map((h) => h.entries)].flat()
    .sort((a, b) => b.entry.at - a.entry.at || (b.position.order < a.position.order ? -1 : 1))
    .slice(0, options.historySize);
  const programs = await Promise.all((balances.get(customer.id) ?? []).map(async (balance) => {
    const page = await bonusHistory(store, actor, {
      customer: { id: customer.id },
      bonusId: balance.program.id,
      page: 1,
      pageSize: options.ledgerSize,
      timeZone: options.timeZone,
    });
    return { balance, entries: page.entries, total: page.total };
  }));
  return {
    customer,
    groupName: customer.group_id === null ? null : groups.get(customer.group_id)?.name ?? null,
    cards: cardList,
    programs,
    history: merged,
    groups: groupList,
    cardTypes,
  };
}
