/**
 * Reply shapes as zod schemas: what every endpoint answers, field by field, for the OpenAPI document and for tests
 * that check real replies against it. The same tree is written as JSON or as XML (under `<root>`, list items named
 * by `xml.name`); replies are not validated on the way out.
 */
import { z } from "zod";
import { ENTRY_SOURCES } from "./bonus.ts";
import { CARD_MEDIA, CARD_STATUSES } from "./card.ts";
import { settingsReplySchema } from "./program_settings.ts";

const dateTime = z.string().regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/).meta({
  description: "YYYY-MM-DD HH:MM:SS in the service's TIME_ZONE.",
  examples: ["2016-07-18 13:54:37"],
});
const flag = z.literal([0, 1]);
const count = z.int().min(0);
const itemId = z.int().min(1);
const optionalText = z.string().nullable();
const cursor = z.string().nullable().meta({ description: "Continues after this page; empty (null) on the last page." });

/** A list element: an array in JSON, `<list><item>...</item></list>` in XML. */
function list<T extends z.ZodType>(item: T, itemName: string) {
  return z.array(item.meta({ xml: { name: itemName } })).meta({ xml: { wrapped: true } });
}

/** Names a reply for the document and gives its XML root element. */
function replyMeta(title: string) {
  return { title, xml: { name: "root" } };
}

/** The error envelope of every refused request. */
export const errorReply = z.strictObject({
  success: z.literal(0),
  info: z.string().meta({ description: "A human-readable reason.", examples: ['Unknown parameter "fnmae"'] }),
  field: z.string().optional().meta({ description: "The parameter at fault, when there is one." }),
}).meta(replyMeta("Error"));

/** A discount card as shown in replies. */
export const cardView = z.strictObject({
  card_id: itemId,
  external_id: optionalText,
  uid: z.string(),
  uid_ean13: optionalText,
  barcode: optionalText,
  medium: z.enum(CARD_MEDIA).nullable(),
  status: z.enum(CARD_STATUSES),
  block_date: dateTime.nullable(),
  activate_date: dateTime.nullable(),
  type_id: itemId.nullable(),
  type_name: optionalText,
  customer_id: itemId.nullable(),
  customer_external_id: optionalText,
  created_date: dateTime,
  created_by: z.int(),
  last_update_date: dateTime,
  last_update_by: z.int(),
}).meta({ title: "Card" });

/** One bonus program's balance of a customer (`bonuses=1`). */
export const balanceView = z.strictObject({
  bonus_id: itemId,
  bonus_name: z.string(),
  balance: z.number().meta({ description: "Spendable points, up to 2 decimal places." }),
  pending: z.number().meta({ description: "Points not spendable yet." }),
  next_expire_date: z.string().nullable().meta({ description: "YYYY-MM-DD the next points expire; empty: none." }),
  next_expire_amount: z.number().meta({ description: "Points expiring on next_expire_date." }),
}).meta({ title: "Balance" });

/** A customer as shown in replies; `cards` and `bonuses` only when asked for. */
export const customerView = z.strictObject({
  id: itemId,
  external_id: optionalText,
  fname: optionalText,
  lname: optionalText,
  mname: optionalText,
  age: z.int().min(0).nullable().meta({ description: "Computed from the birth date; empty when it is partial." }),
  email: optionalText,
  phone: optionalText.meta({ description: "International digits, e.g. 79001234567." }),
  gender: z.enum(["M", "F"]).nullable(),
  custom_information: optionalText,
  birth_day: z.int().min(1).max(31).nullable(),
  birth_month: z.int().min(1).max(12).nullable(),
  birth_year: z.int().nullable(),
  register_date: dateTime,
  accumulated_sales: z.number(),
  send_push: flag,
  send_email: flag,
  send_sms: flag,
  group_id: itemId.nullable(),
  group_name: optionalText,
  created_date: dateTime,
  created_by: z.int(),
  last_update_date: dateTime,
  last_update_by: z.int(),
  cards: list(cardView, "card").optional(),
  bonuses: list(balanceView, "bonus").optional(),
}).meta({ title: "Customer" });

/** `GET /api/customer`: the customers found, with paging fields when paged. */
export const customerListReply = z.strictObject({
  success: z.literal(1),
  type: z.literal("customer"),
  count: count,
  customers: list(customerView, "customer"),
  page: z.int().min(1).optional(),
  page_size: z.int().min(1).optional(),
  total_count: count.optional(),
  next_cursor: cursor.optional(),
}).meta(replyMeta("CustomerList"));

/** `/api/customer/update`: the customer's id and whether it was made now. */
export const customerWriteReply = z.strictObject({ success: z.literal(1), id: itemId, isnew: flag })
  .meta(replyMeta("CustomerWrite"));

/** `updateCard` and `insertCard`: the card's id and whether it was made now. */
export const cardWriteReply = z.strictObject({ success: z.literal(1), card_id: itemId, isnew: flag })
  .meta(replyMeta("CardWrite"));

/** `deleteCard`: the id of the card deleted. */
export const cardDeleteReply = z.strictObject({ success: z.literal(1), card_id: itemId }).meta(
  replyMeta("CardDelete"),
);

/** `updateBonus`: the balance after the change and the change's transaction id. */
export const bonusChangeReply = z.strictObject({
  success: z.literal(1),
  customer_id: itemId,
  bonus_id: itemId,
  balance: z.number().meta({ description: "Spendable points after the change." }),
  pending: z.number().meta({ description: "Points not spendable yet." }),
  transaction_id: itemId,
}).meta(replyMeta("BonusChange"));

/** One ledger entry. */
export const transactionView = z.strictObject({
  transaction_id: itemId,
  customer_id: itemId,
  bonus_id: itemId,
  kind: z.enum(["accrual", "spend", "return", "expire", "adjust", "overwrite"]),
  source: z.enum(ENTRY_SOURCES).meta({
    description: "Where it came from: api (updateBonus), till (purchase, return), shopify, woocommerce, import, " +
      "admin (back office), expiry.",
  }),
  amount: z.number().meta({ description: "The signed change." }),
  balance: z.number().meta({ description: "The spendable balance after it." }),
  pending: z.number().meta({ description: "The pending points after it." }),
  overwrite: flag,
  comment: optionalText,
  order_id: optionalText,
  return_id: optionalText,
  created_date: dateTime,
  created_by: z.int(),
}).meta({ title: "Transaction" });

/** `bonusHistory`: a page of the ledger, newest first. */
export const bonusHistoryReply = z.strictObject({
  success: z.literal(1),
  type: z.literal("transaction"),
  customer_id: itemId,
  bonus_id: itemId,
  balance: z.number(),
  pending: z.number(),
  next_expire_date: z.string().nullable(),
  next_expire_amount: z.number(),
  count: count,
  transactions: list(transactionView, "transaction"),
  page: z.int().min(1).optional(),
  page_size: z.int().min(1),
  total_count: count,
  next_cursor: cursor,
}).meta(replyMeta("BonusHistory"));

/** How one directory names things on the wire (see routes/directory.ts). */
export interface DirectoryNames {
  /** `type` of list replies and the XML name of an item, e.g. "card_type". */
  type: string;
  /** Name of the id field, e.g. "type_id". */
  idField: string;
  /** Name of the name field, e.g. "type_name". */
  nameField: string;
  /** Settings fields the entries show (program rules, tier settings). */
  settings?: Record<string, unknown>;
}

function pascal(snake: string): string {
  return snake.split("_").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("");
}

/** An entry of a directory (customer group, card type, bonus program). */
export function directoryEntryView(names: DirectoryNames) {
  return z.strictObject({
    [names.idField]: itemId,
    [names.nameField]: z.string(),
    description: optionalText,
    ...settingsReplySchema(Object.keys(names.settings ?? {})),
    created_date: dateTime,
    last_update_date: dateTime,
  }).meta({ title: pascal(names.type) });
}

/** A directory's list reply: every entry. */
export function directoryListReply(names: DirectoryNames) {
  return z.strictObject({
    success: z.literal(1),
    type: z.literal(names.type),
    count: count,
    [`${names.type}s`]: list(directoryEntryView(names), names.type),
  }).meta(replyMeta(`${pascal(names.type)}List`));
}

/** A directory's write reply: the entry's id and whether it was made now. */
export function directoryWriteReply(names: DirectoryNames) {
  return z.strictObject({ success: z.literal(1), [names.idField]: itemId, isnew: flag })
    .meta(replyMeta(`${pascal(names.type)}Write`));
}

/** `GET /health`: up, with the version and the store's round trip (503 with `status` "unavailable" when down). */
export const healthReply = z.object({
  status: z.string(),
  version: z.string(),
  store_ms: z.number().min(0),
}).meta({ title: "Health" });

/** One audit entry: when, who, what, and each changed field with its old and new value. */
export const historyEntryView = z.strictObject({
  date: dateTime,
  actor: z.string().meta({
    description: "Who made the change: key:<key id>, task:<name>, import:<file>, webhook:<connection>, admin:<login>.",
    examples: ["key:3f9a1c2b7d10"],
  }),
  user_id: z.int(),
  entity: z.enum(["customer", "card", "group", "card_type", "bonus_program", "api_key", "balance"]),
  entity_id: z.string(),
  action: z.enum(["create", "update", "delete"]),
  changes: list(
    z.strictObject({
      field: z.string(),
      old: z.union([z.string(), z.number()]).nullable(),
      new: z.union([z.string(), z.number()]).nullable(),
    }).meta({ title: "Change" }),
    "change",
  ),
}).meta({ title: "HistoryEntry" });

/** `customer/history` and `card/history`: a page of the audit trail, newest first. */
export function historyReply(idField: "customer_id" | "card_id") {
  return z.strictObject({
    success: z.literal(1),
    type: z.literal("history"),
    [idField]: itemId,
    count: count,
    history: list(historyEntryView, "entry"),
    page: z.int().min(1).optional(),
    page_size: z.int().min(1),
    next_cursor: cursor,
  }).meta(replyMeta(idField === "card_id" ? "CardHistory" : "CustomerHistory"));
}

/** `POST /api/purchase`: what the order accrued and spent, and the balance and tier after it. */
export const purchaseReply = z.strictObject({
  success: z.literal(1),
  order_id: z.string(),
  customer_id: itemId,
  bonus_id: itemId,
  accrued: z.number(),
  spent: z.number(),
  balance: z.number().meta({ description: "Spendable points after the purchase." }),
  pending: z.number(),
  next_expire_date: z.string().nullable(),
  next_expire_amount: z.number(),
  tier: optionalText.meta({ description: "The customer's group after the purchase." }),
}).meta(replyMeta("Purchase"));

/** `POST /api/purchase/return`: what the return took back and gave back, and the balance and tier after it. */
export const returnReply = z.strictObject({
  success: z.literal(1),
  order_id: z.string(),
  return_id: z.string(),
  customer_id: itemId,
  bonus_id: itemId,
  taken_back: z.number(),
  given_back: z.number(),
  shortfall: z.number().meta({ description: "Accrued points that could not be taken back (already spent)." }),
  balance: z.number(),
  pending: z.number(),
  next_expire_date: z.string().nullable(),
  next_expire_amount: z.number(),
  tier: optionalText,
}).meta(replyMeta("Return"));
/** A card's owner as `GET /api/card` shows it: who the customer is and their group. */
export const cardOwnerView = z.strictObject({
  id: itemId,
  external_id: optionalText,
  fname: optionalText,
  lname: optionalText,
  mname: optionalText,
  phone: optionalText.meta({ description: "International digits, e.g. 79001234567." }),
  email: optionalText,
  group_id: itemId.nullable(),
  group_name: optionalText,
}).meta({ title: "CardOwner" });

/** `GET /api/card`: the card, its owner (empty for a card without one) and, with `bonuses=1`, the owner's balances. */
export const cardLookupReply = z.strictObject({
  success: z.literal(1),
  type: z.literal("card"),
  card: cardView,
  customer: cardOwnerView.nullable(),
  bonuses: list(balanceView, "bonus").optional().meta({
    description: "Every bonus program with the owner's balance (empty for a card without an owner).",
  }),
}).meta(replyMeta("CardLookup"));
