/**
 * The records of exports, one flat object per row with the API's field names: what `deno task export` writes and
 * what the importer reads back. Pure: every value comes in from the use case.
 */
import { type LedgerEntry, transactionView } from "./bonus.ts";
import { type Card, cardView } from "./card.ts";
import { type Customer, customerView } from "./customer.ts";
import { formatDateTime } from "./dates.ts";
import type { DirectoryEntry } from "./directory.ts";
import type { DocumentShape, ExportRecord } from "./export_format.ts";
import { moneyToNumber } from "./money.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS, settingsView } from "./program_settings.ts";

/** What can be exported. */
export const EXPORT_TYPES = [
  "customers",
  "cards",
  "bonuses",
  "ledger",
  "groups",
  "cardtypes",
  "bonusprograms",
] as const;

/** One kind of export. */
export type ExportType = typeof EXPORT_TYPES[number];

/** The fields of a customer in `GET /api/customer`, in its order. */
const CUSTOMER_FIELDS = [
  "id",
  "external_id",
  "fname",
  "lname",
  "mname",
  "age",
  "email",
  "phone",
  "gender",
  "custom_information",
  "birth_day",
  "birth_month",
  "birth_year",
  "register_date",
  "accumulated_sales",
  "send_push",
  "send_email",
  "send_sms",
  "group_id",
  "group_name",
  "created_date",
  "created_by",
  "last_update_date",
  "last_update_by",
] as const;

/** The fields of a card in the API's replies, in their order. */
const CARD_FIELDS = [
  "card_id",
  "external_id",
  "uid",
  "uid_ean13",
  "barcode",
  "medium",
  "status",
  "block_date",
  "activate_date",
  "type_id",
  "type_name",
  "customer_id",
  "customer_external_id",
  "created_date",
  "created_by",
  "last_update_date",
  "last_update_by",
] as const;

/** The columns of a ledger export: bonusHistory's transaction fields plus the customer's external id. */
const LEDGER_FIELDS = [
  "transaction_id",
  "customer_id",
  "customer_external_id",
  "bonus_id",
  "kind",
  "source",
  "amount",
  "balance",
  "pending",
  "overwrite",
  "comment",
  "order_id",
  "return_id",
  "created_date",
  "created_by",
] as const;

/** How each directory is named on the wire (as `GET /api/customergroup`, `/api/cardtype`, `/api/bonusprogram`). */
const DIRECTORIES = {
  groups: { kind: "groups", type: "group", idField: "group_id", nameField: "group_name", settings: GROUP_SETTINGS },
  cardtypes: { kind: "card_types", type: "card_type", idField: "type_id", nameField: "type_name", settings: {} },
  bonusprograms: {
    kind: "bonus_programs",
    type: "bonus_program",
    idField: "id",
    nameField: "name",
    settings: PROGRAM_SETTINGS,
  },
} as const;

/** The directory export types. */
export type DirectoryExportType = keyof typeof DIRECTORIES;

/** The store's directory kind of a directory export. */
export function directoryKindOf(type: DirectoryExportType): "groups" | "card_types" | "bonus_programs" {
  return DIRECTORIES[type].kind;
}

/**
 * The document shape of an export. Customers carry `bonus` only when the company has exactly one bonus program
 * (`withBonus`); with several, balances are in the bonuses export.
 */
export function exportShape(type: ExportType, options: { withBonus?: boolean } = {}): DocumentShape {
  switch (type) {
    case "customers":
      return {
        type: "customer",
        list: "customers",
        columns: [...CUSTOMER_FIELDS, "card_uid", "card_barcode", ...(options.withBonus ? ["bonus"] : [])],
      };
    case "cards":
      return { type: "card", list: "cards", columns: CARD_FIELDS };
    case "bonuses":
      return {
        type: "bonus",
        list: "bonuses",
        columns: ["customer_id", "customer_external_id", "bonus_id", "amount", "overwrite"],
      };
    case "ledger":
      return { type: "transaction", list: "transactions", columns: LEDGER_FIELDS };
    default: {
      const d = DIRECTORIES[type];
      return {
        type: d.type,
        list: `${d.type}s`,
        columns: [
          d.idField,
          d.nameField,
          "description",
          ...Object.keys(d.settings),
          "created_date",
          "last_update_date",
        ],
      };
    }
  }
}

/** A customer row: the API's customer fields, its first card, and (one program only) its balance. */
export function customerRecord(
  c: Customer,
  options: {
    groupName: string | null;
    timeZone: string;
    today: { year: number; month: number; day: number };
    /** The customer's first card (lowest card id), if any. */
    card: Card | null;
    /** Spendable balance in the company's only program, minor units; undefined when the column is left out. */
    bonus?: number;
  },
): ExportRecord {
  const view = customerView(c, options) as ExportRecord;
  const out: ExportRecord = {
    ...view,
    card_uid: options.card?.uid ?? null,
    card_barcode: options.card?.barcode ?? null,
  };
  if (options.bonus !== undefined) out.bonus = moneyToNumber(options.bonus);
  return out;
}

/** A card row: the API's card fields, with its type named and its owner's external id. */
export function cardRecord(
  card: Card,
  options: { typeName: string | null; customerExternalId: string | null; timeZone: string },
): ExportRecord {
  return cardView(card, options);
}

/** A balance row: re-imported, it sets the balance (overwrite = 1), never adds to it. */
export function bonusRecord(
  customer: Pick<Customer, "id" | "external_id">,
  options: { bonusId: number; balance: number },
): ExportRecord {
  return {
    customer_id: customer.id,
    customer_external_id: customer.external_id,
    bonus_id: options.bonusId,
    amount: moneyToNumber(options.balance),
    overwrite: 1,
  };
}

/** A ledger row: the bonusHistory transaction with the customer's external id beside its id. */
export function ledgerRecord(
  entry: LedgerEntry,
  options: { customerExternalId: string | null; timeZone: string },
): ExportRecord {
  const view = transactionView(entry, options.timeZone);
  const out: ExportRecord = {};
  for (const field of LEDGER_FIELDS) {
    out[field] = field === "customer_external_id" ? options.customerExternalId : view[field] ?? null;
  }
  return out;
}

/** A directory row, as the directory's `GET` list shows an entry. */
export function directoryRecord(
  type: DirectoryExportType,
  entry: DirectoryEntry,
  options: { timeZone: string },
): ExportRecord {
  const d = DIRECTORIES[type];
  return {
    [d.idField]: entry.id,
    [d.nameField]: entry.name,
    description: entry.description,
    ...settingsView(Object.keys(d.settings), entry.settings),
    created_date: formatDateTime(entry.created_date, options.timeZone),
    last_update_date: formatDateTime(entry.last_update_date, options.timeZone),
  };
}
