/**
 * Export use cases: a company's customers, cards, balances, ledger and directories as flat records with the API's
 * field names, read batch by batch so that memory stays flat, and encoded as CSV, JSON, NDJSON or XML as they come.
 */
import type { Actor } from "../domain/audit.ts";
import { localDate } from "../domain/dates.ts";
import { type DocumentShape, exportEncoder, type ExportFormat, type ExportRecord } from "../domain/export_format.ts";
import {
  bonusRecord,
  cardRecord,
  customerRecord,
  directoryKindOf,
  directoryRecord,
  exportShape,
  type ExportType,
  ledgerRecord,
} from "../domain/export_records.ts";
import { customerBalances } from "../storage/bonuses.ts";
import { cardsOfCustomers } from "../storage/cards.ts";
import { getCustomers } from "../storage/customers.ts";
import { getEntries, listEntries } from "../storage/directories.ts";
import { companyExists, streamCards, streamCustomers, streamLedger } from "../storage/export.ts";
import type { Store } from "../storage/store.ts";

/** What to export. */
export interface ExportRequest {
  type: ExportType;
  /** IANA time zone of the dates written (the service's TIME_ZONE). */
  timeZone: string;
  /** Records read per store batch (default 500). */
  batch?: number;
}

/** An export: its document shape (columns) and its records, a batch at a time. */
export interface ExportRecords {
  shape: DocumentShape;
  batches: AsyncGenerator<ExportRecord[]>;
}

/** Whether the store knows the actor's company (a record or any data): exports of an unknown one are refused. */
export async function exportableCompany(store: Store, actor: Actor): Promise<boolean> {
  return await companyExists(store.kv, actor.companyId);
}

/** The records of one export of the actor's company, read lazily in batches. */
export async function exportRecords(store: Store, actor: Actor, request: ExportRequest): Promise<ExportRecords> {
  const { kv } = store;
  const cid = actor.companyId;
  const { type, timeZone } = request;
  const batch = request.batch;
  switch (type) {
    case "customers": {
      const programs = await listEntries(kv, cid, "bonus_programs");
      const only = programs.length === 1 ? programs[0]! : null;
      const shape = exportShape(type, { withBonus: only !== null });
      const batches = async function* (): AsyncGenerator<ExportRecord[]> {
        for await (const customers of streamCustomers(kv, cid, { batch })) {
          const ids = customers.map((c) => c.id);
          const [groups, cards, balances] = await Promise.all([
            getEntries(kv, cid, "groups", customers.flatMap((c) => c.group_id === null ? [] : [c.group_id])),
            cardsOfCustomers(kv, cid, ids),
            only === null ? null : customerBalances(kv, cid, { customerIds: ids, now: store.clock(), timeZone }),
          ]);
          const today = localDate(store.clock(), timeZone);
          yield customers.map((c) =>
            customerRecord(c, {
              groupName: c.group_id === null ? null : groups.get(c.group_id)?.name ?? null,
              timeZone,
              today,
              card: cards.get(c.id)?.[0] ?? null,
              bonus: balances === null ? undefined : balances.get(c.id)?.[0]?.balance.balance ?? 0,
            })
          );
        }
      };
      return { shape, batches: batches() };
    }
    case "cards": {
      const batches = async function* (): AsyncGenerator<ExportRecord[]> {
        for await (const cards of streamCards(kv, cid, { batch })) {
          const typeIds = cards.flatMap((c) => c.type_id === null ? [] : [c.type_id]);
          const ownerIds = [...new Set(cards.flatMap((c) => c.customer_id === null ? [] : [c.customer_id]))];
          const [types, owners] = await Promise.all([
            getEntries(kv, cid, "card_types", typeIds),
            getCustomers(kv, cid, ownerIds),
          ]);
          const externalIds = new Map(owners.map((o) => [o.id, o.external_id]));
          yield cards.map((card) =>
            cardRecord(card, {
              typeName: card.type_id === null ? null : types.get(card.type_id)?.name ?? null,
              customerExternalId: card.customer_id === null ? null : externalIds.get(card.customer_id) ?? null,
              timeZone,
            })
          );
        }
      };
      return { shape: exportShape(type), batches: batches() };
    }
    case "bonuses": {
      const programs = await listEntries(kv, cid, "bonus_programs");
      const batches = async function* (): AsyncGenerator<ExportRecord[]> {
        if (programs.length === 0) return;
        for await (const customers of streamCustomers(kv, cid, { batch })) {
          const balances = await customerBalances(kv, cid, {
            customerIds: customers.map((c) => c.id),
            now: store.clock(),
            timeZone,
          });
          const rows: ExportRecord[] = [];
          for (const c of customers) {
            for (const { program, balance } of balances.get(c.id) ?? []) {
              // A customer with nothing in a program has no row: importing it would set nothing.
              if (balance.balance === 0 && balance.pending === 0) continue;
              rows.push(bonusRecord(c, { bonusId: program.id, balance: balance.balance }));
            }
          }
          if (rows.length > 0) yield rows;
        }
      };
      return { shape: exportShape(type), batches: batches() };
    }
    case "ledger": {
      const batches = async function* (): AsyncGenerator<ExportRecord[]> {
        for await (const entries of streamLedger(kv, cid, { batch })) {
          // Entries come grouped by customer, so a batch names few customers.
          const owners = await getCustomers(kv, cid, [...new Set(entries.map((e) => e.customer_id))]);
          const externalIds = new Map(owners.map((o) => [o.id, o.external_id]));
          yield entries.map((e) =>
            ledgerRecord(e, { customerExternalId: externalIds.get(e.customer_id) ?? null, timeZone })
          );
        }
      };
      return { shape: exportShape(type), batches: batches() };
    }
    default: {
      const directory = type;
      const entries = await listEntries(kv, cid, directoryKindOf(directory));
      const batches = async function* (): AsyncGenerator<ExportRecord[]> {
        if (entries.length > 0) yield entries.map((e) => directoryRecord(directory, e, { timeZone }));
      };
      return { shape: exportShape(type), batches: batches() };
    }
  }
}

/** Asks for the next batch before the current one is handed on, so store reads overlap encoding and writing. */
async function* readAhead<T>(source: AsyncGenerator<T>): AsyncGenerator<T> {
  let next = source.next();
  try {
    for (;;) {
      const current = await next;
      if (current.done) return;
      next = source.next();
      yield current.value;
    }
  } finally {
    // Stopped early (a failed write): let the source finish its read in flight, then close it.
    await next.catch(() => {});
    await source.return(undefined);
  }
}

/**
 * One export as a stream of text chunks in a format: the head, a chunk per batch, then the tail (JSON and XML
 * carry the count after the list, as only then is it known).
 */
export async function* exportText(
  store: Store,
  actor: Actor,
  request: ExportRequest & { format: ExportFormat; onBatch?: (count: number) => void },
): AsyncGenerator<string> {
  const { shape, batches } = await exportRecords(store, actor, request);
  const encoder = exportEncoder(request.format, shape);
  yield encoder.head();
  let count = 0;
  for await (const records of readAhead(batches)) {
    count += records.length;
    request.onBatch?.(count);
    yield encoder.rows(records);
  }
  yield encoder.tail(count);
}
