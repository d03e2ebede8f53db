/**
 * Discount cards: the stored shape, the parsers of card parameters, and the pure rules of a change (status
 * stamping, generated numbers, lookup order). No store and no HTTP here.
 */
import { z } from "zod";
import { dateTimeField, formatDateTime } from "./dates.ts";
import { directoryNameField } from "./directory.ts";
import { ean13CheckDigit, inStoreEan13, isValidEan13, uidToEan13 } from "./ean13.ts";
import { ConflictError, NotFoundError, quote, ValidationError } from "./errors.ts";
import {
  AUDIT_FIELDS,
  bool,
  type Field,
  field,
  id,
  invalid,
  nonEmpty,
  oneOf,
  type Parsed,
  parsersOf,
  text,
} from "./fields.ts";

/** Card media (what the card is physically). */
export const CARD_MEDIA = ["PLASTIC", "MAGNET", "APP"] as const;
/** A card medium. */
export type CardMedium = typeof CARD_MEDIA[number];

/** Card statuses. */
export const CARD_STATUSES = ["NEW", "ACTIVE", "BLOCKED"] as const;
/** A card status. */
export type CardStatus = typeof CARD_STATUSES[number];

/** Longest accepted uid (card number), in characters. */
export const MAX_UID = 64;
/** Longest accepted barcode, in digits (the data capacity of a GS1-128 symbol). */
export const MAX_BARCODE = 48;
/** Longest accepted card external id, in characters. */
export const MAX_CARD_EXTERNAL_ID = 100;

/** A card as stored: instants in epoch ms; uid is always set (given or generated). */
export interface Card {
  id: number;
  external_id: string | null;
  uid: string;
  uid_ean13: string | null;
  barcode: string | null;
  medium: CardMedium | null;
  status: CardStatus;
  block_date: number | null;
  activate_date: number | null;
  type_id: number | null;
  customer_id: number | null;
  created_date: number;
  created_by: number;
  last_update_date: number;
  last_update_by: number;
}

/** Letters, marks, digits, punctuation and symbols: printable, with no white space or control characters. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]+$/u;
const DIGITS = /^[0-9]+$/;

/** Parses a card number (uid): trimmed, printable, no spaces, at most MAX_UID characters; empty means null. */
export function parseUid(raw: string, field: string): string | null {
  const value = raw.trim();
  if (value === "") return null;
  if ([...value].length > MAX_UID) throw invalid(field, raw, `at most ${MAX_UID} characters`);
  if (!PRINTABLE.test(value)) throw invalid(field, raw, "only printable characters, no spaces");
  return value;
}

/** Parses a barcode: 1 to MAX_BARCODE ASCII digits (no check digit rule: not every barcode is an EAN); empty means null. */
export function parseBarcode(raw: string, field: string): string | null {
  const value = raw.trim();
  if (value === "") return null;
  if (!DIGITS.test(value)) throw invalid(field, raw, "only digits 0-9");
  if (value.length > MAX_BARCODE) throw invalid(field, raw, `at most ${MAX_BARCODE} digits`);
  return value;
}

/** Parses a uid_ean13: 13 digits with a valid GS1 check digit; empty means null. */
export function parseEan13(raw: string, field: string): string | null {
  const value = raw.trim();
  if (value === "") return null;
  if (!/^[0-9]{13}$/.test(value)) throw invalid(field, raw, "must be 13 digits");
  if (!isValidEan13(value)) {
    throw invalid(field, raw, `wrong check digit ${value[12]}: expected ${ean13CheckDigit(value.slice(0, 12))}`);
  }
  return value;
}

/** Parses a status; it cannot be cleared, so empty is refused. */
function parseStatus(raw: string, field: string): CardStatus {
  const value = raw.trim().toUpperCase();
  if (!(CARD_STATUSES as readonly string[]).includes(value)) {
    throw invalid(field, raw, `must be one of ${CARD_STATUSES.join(", ")}`);
  }
  return value as CardStatus;
}

const UID_WIRE = z.string().min(1).max(MAX_UID).regex(PRINTABLE);
const BARCODE_WIRE = z.string().max(MAX_BARCODE).regex(/^[0-9]*$/);

/** A card number: printable, no spaces; empty means null. */
export const uidField: Field<string | null> = field(parseUid, {
  wire: UID_WIRE,
  description: "The card number: printable characters, no spaces.",
  example: "1000001",
});

/** A barcode: digits only; empty means null (none). */
export const barcodeField: Field<string | null> = field(parseBarcode, {
  wire: BARCODE_WIRE,
  description: "Digits only (no check digit rule).",
  example: "4600682003144",
});

/** Rules of the lookup keys of updateCard and deleteCard, all read from the query string alone. */
export const CARD_LOOKUP_PARSERS = {
  card_id: nonEmpty(id).describe("The card with this id (tried first)."),
  uid: nonEmpty(uidField).describe("The card with this number (tried second)."),
  external_id: nonEmpty(text(MAX_CARD_EXTERNAL_ID)).describe("The card with this external id (tried third)."),
  card_barcode: nonEmpty(barcodeField).describe("The card with this barcode (tried last)."),
} satisfies Record<string, Field<unknown>>;

/** The `create_if_not_exist` switch of updateCard. */
export const CREATE_SWITCH = {
  create_if_not_exist: bool.describe("1: create the card when no lookup key finds one."),
} satisfies Record<string, Field<unknown>>;

/** Rules of the writable card fields (query or body), keyed by parameter name. */
export function cardFields(settings: { timeZone: string }) {
  const date = dateTimeField(settings.timeZone);
  return {
    uid_ean13: field(parseEan13, {
      wire: z.string().regex(/^[0-9]{13}$/),
      description: "An EAN-13 with a valid check digit; derived from the uid when not given.",
      example: "4600682003144",
    }),
    barcode: barcodeField,
    medium: oneOf(CARD_MEDIA),
    status: field(parseStatus, { wire: z.enum(CARD_STATUSES), description: "Any case.", example: "ACTIVE" }),
    block_date: date,
    activate_date: date,
    type_id: id.describe("The card type, by id (wins over type_name)."),
    type_name: directoryNameField.describe("The card type, by name: made when it does not exist yet."),
    customer_id: id.describe("The owner, by id (wins over customer_external_id)."),
    customer_external_id: text(MAX_CARD_EXTERNAL_ID).describe("The owner, by external id."),
  } satisfies Record<string, Field<unknown>>;
}

/** The writable card fields as plain parsers, for callers that parse one value at a time. */
export function cardFieldParsers(settings: { timeZone: string }) {
  return parsersOf(cardFields(settings));
}

/** Card fields a client may not set, with the reason told back. */
export const READ_ONLY_CARD_FIELDS = AUDIT_FIELDS;

/** Parsed writable fields of a request: absent keys stay as they are, null clears. */
export type CardFields = Parsed<ReturnType<typeof cardFields>>;

/** The part of a request that changes the card itself (type and customer are resolved by storage first). */
export type CardChange = Omit<CardFields, "type_id" | "type_name" | "customer_id" | "customer_external_id">;

/** The type and customer a request points at: an id wins over a name; undefined leaves it as it is, null clears. */
export interface CardRefs {
  typeId?: number | null;
  typeName?: string | null;
  customerId?: number | null;
  customerExternalId?: string | null;
}

/** Splits parsed fields into the card change and its references, applying "type_name / customer_external_id only without the id". */
export function splitCardFields(fields: CardFields): { change: CardChange; refs: CardRefs } {
  const { type_id, type_name, customer_id, customer_external_id, ...change } = fields;
  const refs: CardRefs = {};
  if (type_id !== undefined) refs.typeId = type_id;
  else if (type_name !== undefined) refs.typeName = type_name;
  if (customer_id !== undefined) refs.customerId = customer_id;
  else if (customer_external_id !== undefined) refs.customerExternalId = customer_external_id;
  return { change, refs };
}

/** The keys a card can be found by, in the order they are tried. */
export const CARD_LOOKUP_ORDER = ["card_id", "uid", "external_id", "card_barcode"] as const;

/** The lookup keys of a request; null or absent means not given. */
export interface CardLookup {
  card_id?: number | null;
  uid?: string | null;
  external_id?: string | null;
  card_barcode?: string | null;
}

/** One given lookup key with its value. */
export type LookupStep = { key: "card_id"; value: number } | {
  key: "uid" | "external_id" | "card_barcode";
  value: string;
};

/** The given lookup keys in search order (card_id, uid, external_id, card_barcode): the first that finds a card wins. */
export function lookupSteps(lookup: CardLookup): LookupStep[] {
  const steps: LookupStep[] = [];
  for (const key of CARD_LOOKUP_ORDER) {
    const value = lookup[key];
    if (value === null || value === undefined) continue;
    if (key === "card_id") steps.push({ key, value: value as number });
    else steps.push({ key, value: value as string });
  }
  return steps;
}

/** Picks the card of the earliest step that found one; `found[i]` is what step i found. */
export function firstFound<T>(steps: LookupStep[], found: (T | null)[]): { step: LookupStep; card: T } | null {
  for (let i = 0; i < steps.length; i++) {
    const card = found[i];
    if (card !== null && card !== undefined) return { step: steps[i]!, card };
  }
  return null;
}

/** The 404 for a lookup that found nothing, naming the first key given. */
export function cardNotFound(steps: LookupStep[]): NotFoundError {
  const first = steps[0];
  if (!first) return new NotFoundError("Card not found", "card_id");
  if (steps.length === 1) {
    const message = first.key === "card_id"
      ? `Card "${first.value}" not found`
      : `Card with ${first.key} "${quote(first.value)}" not found`;
    return new NotFoundError(message, first.key);
  }
  const parts = steps.map((s) => `${s.key} "${quote(String(s.value))}"`);
  const list = `${parts.slice(0, -1).join(", ")} or ${parts.at(-1)}`;
  return new NotFoundError(`Card not found by ${list}`, first.key);
}

/** The 400 for a request that names no card: updateCard without create_if_not_exist=1, or deleteCard. */
export function cardNotIdentified(verb: "update" | "delete"): ValidationError {
  const also = verb === "update" ? ", or create_if_not_exist=1" : "";
  return new ValidationError("card_id", `Cannot ${verb} card: pass card_id, uid, external_id or card_barcode${also}`);
}

/** Who makes a change and when, what the card is called and what it points at after the change. */
export interface CardContext {
  /** Id of a new card (ignored for an existing one). */
  id: number;
  /** Uid of a new card, given or generated (ignored for an existing one: a uid never changes). */
  uid: string;
  /** External id of a new card (ignored for an existing one). */
  externalId: string | null;
  /** Card type after the change; undefined keeps it. */
  typeId?: number | null;
  /** Owner after the change; undefined keeps it. */
  customerId?: number | null;
  now: number;
  userId: number;
}

/**
 * Applies a change to a card (or to nothing, for a new one). A new card starts as NEW with uid_ean13 derived from
 * its uid (unless given) and no barcode (storage fills one in unless given: see `wantsGeneratedBarcode`).
 * Status rules: entering BLOCKED without a block_date stamps now; entering ACTIVE with no activate_date and none
 * given stamps now (first activation only); leaving BLOCKED without a block_date given clears the block date.
 */
export function applyCardChange(existing: Card | null, change: CardChange, context: CardContext): Card {
  const { now, userId } = context;
  const next: Card = existing ? { ...existing } : {
    id: context.id,
    external_id: context.externalId,
    uid: context.uid,
    uid_ean13: uidToEan13(context.uid),
    barcode: null,
    medium: null,
    status: "NEW",
    block_date: null,
    activate_date: null,
    type_id: null,
    customer_id: null,
    created_date: now,
    created_by: userId,
    last_update_date: now,
    last_update_by: userId,
  };
  if (change.uid_ean13 !== undefined) next.uid_ean13 = change.uid_ean13;
  if (change.barcode !== undefined) next.barcode = change.barcode;
  if (change.medium !== undefined) next.medium = change.medium;
  if (change.block_date !== undefined) next.block_date = change.block_date;
  if (change.activate_date !== undefined) next.activate_date = change.activate_date;
  if (context.typeId !== undefined) next.type_id = context.typeId;
  if (context.customerId !== undefined) next.customer_id = context.customerId;

  const before = existing?.status ?? null;
  if (change.status !== undefined) next.status = change.status;
  if (next.status !== before && change.block_date === undefined) {
    if (next.status === "BLOCKED") next.block_date = now;
    else if (before === "BLOCKED") next.block_date = null;
  }
  if (
    next.status === "ACTIVE" && before !== "ACTIVE" && next.activate_date === null &&
    change.activate_date === undefined
  ) {
    next.activate_date = now;
  }
  next.last_update_date = now;
  next.last_update_by = userId;
  return next;
}

/** Whether a new card gets a generated barcode: only when the request does not send one (empty means "none"). */
export function wantsGeneratedBarcode(change: CardChange): boolean {
  return change.barcode === undefined;
}

/**
 * The barcodes to try for a new card without one, best first: its uid_ean13 (when it has one), then in-store
 * (prefix 2) EAN-13s from the position after `lastInStore` of the company's in-store sequence, without end.
 */
export function* barcodeCandidates(
  uidEan13: string | null,
  lastInStore: number,
): Generator<{ value: string; position: number | null }> {
  if (uidEan13 !== null) yield { value: uidEan13, position: null };
  for (let n = lastInStore + 1;; n++) yield { value: inStoreEan13(n), position: n };
}

/** The uids to try for a new card without one: the card numbers after `lastNumber` of the company's sequence. */
export function* uidCandidates(lastNumber: number): Generator<{ value: string; position: number }> {
  for (let n = lastNumber + 1;; n++) yield { value: String(n), position: n };
}

/** The unique keys of a card, by field: each belongs to at most one card of a company. */
export function cardUniqueKeys(card: Card): { uid: string; barcode: string | null; external_id: string | null } {
  return { uid: card.uid, barcode: card.barcode, external_id: card.external_id };
}

/** The 409 for a unique value already held by another card. */
export function cardClash(field: string, value: string, isNew: boolean): ConflictError {
  return new ConflictError(
    `Cannot ${isNew ? "create" : "update"} card: ${field} "${quote(value)}" is already taken`,
    field,
  );
}

/** A card as shown on the wire, fields in the documented order; empty values are null. */
export function cardView(
  card: Card,
  options: { typeName: string | null; customerExternalId: string | null; timeZone: string },
): Record<string, string | number | null> {
  const { timeZone } = options;
  return {
    card_id: card.id,
    external_id: card.external_id,
    uid: card.uid,
    uid_ean13: card.uid_ean13,
    barcode: card.barcode,
    medium: card.medium,
    status: card.status,
    block_date: card.block_date === null ? null : formatDateTime(card.block_date, timeZone),
    activate_date: card.activate_date === null ? null : formatDateTime(card.activate_date, timeZone),
    type_id: card.type_id,
    type_name: card.type_id === null ? null : options.typeName,
    customer_id: card.customer_id,
    customer_external_id: card.customer_id === null ? null : options.customerExternalId,
    created_date: formatDateTime(card.created_date, timeZone),
    created_by: card.created_by,
    last_update_date: formatDateTime(card.last_update_date, timeZone),
    last_update_by: card.last_update_by,
  };
}
