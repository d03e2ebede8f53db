/**
 * Which field each column of an import file fills: the API's own names, common Russian and English header names,
 * the Shopify and WooCommerce presets and a user's map. A column that maps to nothing stops the import before the
 * first row, unless it is ignored on purpose.
 */
import { ValidationError } from "../errors.ts";

/** What a file holds. */
export type ImportType = "customers" | "cards" | "bonuses";

/** The presets of shops' own exports. */
export type ImportPreset = "shopify" | "woocommerce";

/** A column's target: a field name, or IGNORE for a column read and dropped. */
export const IGNORE = "-";

/** Writable fields of a customers file: the customer's own, the group, one card and one opening balance. */
export const CUSTOMER_COLUMNS = [
  "external_id",
  "fname",
  "lname",
  "mname",
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
  "group_name",
  "card_uid",
  "card_barcode",
  "bonus",
  /** A whole birth date in one column (DD.MM.YYYY, YYYY-MM-DD or DD/MM/YYYY). */
  "birth_date",
  /** A whole name in one column: first word the first name, the rest the last name. */
  "full_name",
  /** A whole name in Russian order (ФИО): last name, first name, middle name. */
  "fio",
] as const;

/** Writable fields of a cards file (type and owner by name / external id, or by id). */
export const CARD_COLUMNS = [
  "uid",
  "external_id",
  "barcode",
  "uid_ean13",
  "medium",
  "status",
  "block_date",
  "activate_date",
  "type_name",
  "type_id",
  "customer_external_id",
  "customer_id",
] as const;

/** Fields of a balances file. */
export const BONUS_COLUMNS = ["customer_external_id", "customer_id", "bonus_id", "amount", "overwrite"] as const;

/**
 * Columns the service writes in its own exports and replies that are read-only or derived: accepted in canonical
 * files and ignored, so export | import round-trips. Ids of another store's records (group_id, type_id next to
 * type_name, customer_id next to customer_external_id) are replaced by the names beside them; see IDS_BY_NAME.
 */
const READ_ONLY: Record<ImportType, string[]> = {
  customers: [
    "id",
    "age",
    "created_date",
    "created_by",
    "last_update_date",
    "last_update_by",
    "group_id",
    "cards",
    "bonuses",
  ],
  cards: ["id", "card_id", "created_date", "created_by", "last_update_date", "last_update_by", "customer", "type"],
  bonuses: [
    "id",
    "bonus_name",
    "balance",
    "pending",
    "next_expire_date",
    "next_expire_amount",
    "created_date",
    "created_by",
    "last_update_date",
    "last_update_by",
  ],
};

/** An id column dropped when the name column beside it is in the file too (names travel between stores, ids not). */
export const IDS_BY_NAME: Record<ImportType, Record<string, string>> = {
  customers: {},
  // customer_id stays: a row whose customer_external_id is empty names its owner by it (a customer of this company).
  cards: { type_id: "type_name" },
  bonuses: {},
};

/** Header names understood without a map, lower-cased, by the field they fill. */
const SYNONYMS: Record<ImportType, Record<string, string[]>> = {
  customers: {
    external_id: ["внешний id", "внешний код", "код клиента", "customer id", "external id"],
    fname: ["имя", "first name", "firstname", "given name"],
    lname: ["фамилия", "last name", "lastname", "surname", "family name"],
    mname: ["отчество", "middle name", "patronymic"],
    phone: ["телефон", "мобильный телефон", "тел.", "phone", "phone number", "mobile"],
    email: ["e-mail", "email", "эл. почта", "электронная почта", "почта", "email address"],
    birth_date: ["дата рождения", "birthday", "birth date", "date of birth", "birthdate", "dob"],
    gender: ["пол", "gender", "sex"],
    card_uid: ["номер карты", "card number", "card"],
    card_barcode: ["штрихкод", "штрих-код", "barcode", "card barcode"],
    bonus: ["бонусы", "баллы", "бонус", "баланс", "points", "bonus", "balance"],
    group_name: ["группа", "group"],
    custom_information: ["комментарий", "примечание", "note", "notes", "comment"],
    register_date: ["дата регистрации", "registered", "sign up", "signup date"],
    accumulated_sales: ["сумма покупок", "total spent", "total spend"],
    full_name: ["name", "full name"],
    fio: ["фио", "клиент", "ф.и.о.", "ф. и. о."],
  },
  cards: {
    uid: ["номер карты", "card number"],
    barcode: ["штрихкод", "штрих-код"],
    type_name: ["тип карты", "card type"],
    status: ["статус"],
    customer_external_id: ["внешний id клиента", "код клиента"],
  },
  bonuses: {
    amount: ["бонусы", "баллы", "баланс", "сумма", "points", "balance"],
    customer_external_id: ["код клиента", "внешний id"],
    bonus_id: ["программа", "bonus program"],
  },
};

/** The presets: header name (as the shop writes it) to field; everything else in the shop's export is ignored. */
const PRESETS: Record<ImportPreset, Record<string, string>> = {
  shopify: {
    "Customer ID": "external_id",
    "First Name": "fname",
    "Last Name": "lname",
    "Email": "email",
    "Accepts Email Marketing": "send_email",
    "Phone": "phone",
    "Accepts SMS Marketing": "send_sms",
    "Total Spent": "accumulated_sales",
    "Note": "custom_information",
    "Default Address Company": IGNORE,
    "Default Address Address1": IGNORE,
    "Default Address Address2": IGNORE,
    "Default Address City": IGNORE,
    "Default Address Province Code": IGNORE,
    "Default Address Country Code": IGNORE,
    "Default Address Zip": IGNORE,
    "Default Address Phone": IGNORE,
    "Total Orders": IGNORE,
    "Tax Exempt": IGNORE,
    "Tags": IGNORE,
  },
  woocommerce: {
    "Name": "full_name",
    "Username": IGNORE,
    "Email": "email",
    "Sign Up": "register_date",
    "Total Spend": "accumulated_sales",
    "Billing Phone": "phone",
    "Last Active": IGNORE,
    "Orders": IGNORE,
    "AOV": IGNORE,
    "Country / Region": IGNORE,
    "City": IGNORE,
    "Region": IGNORE,
    "Postal Code": IGNORE,
    "Shipping Phone": IGNORE,
    "Role": IGNORE,
  },
};

/** The columns of every type, for checking a map's targets. */
export const COLUMNS: Record<ImportType, readonly string[]> = {
  customers: CUSTOMER_COLUMNS,
  cards: CARD_COLUMNS,
  bonuses: BONUS_COLUMNS,
};

function norm(header: string): string {
  return header.replace(/^\uFEFF/, "").trim().toLowerCase().replace(/\s+/g, " ");
}

/** How the columns of a file are read. */
export interface ColumnOptions {
  type: ImportType;
  preset?: ImportPreset;
  /** Column name to field (or "" / "-" to ignore it), from --map. */
  map?: Record<string, string>;
  /** Drop columns that map to nothing instead of stopping. */
  ignoreUnknown?: boolean;
}

/**
 * The field of each column (IGNORE for dropped ones), in column order. Throws a ValidationError naming the first
 * column that maps to nothing, a map target that is not a field, or two columns filling one field.
 */
export function resolveColumns(headers: string[], options: ColumnOptions): string[] {
  const { type } = options;
  const fields = new Set(COLUMNS[type]);
  const byName = new Map<string, string>();
  for (const f of fields) byName.set(f, f);
  for (const f of READ_ONLY[type]) byName.set(f, IGNORE);
  for (const [f, names] of Object.entries(SYNONYMS[type])) for (const n of names) byName.set(n, f);
  if (options.preset) {
    for (const [n, f] of Object.entries(PRESETS[options.preset])) byName.set(norm(n), f);
  }
  const map = new Map<string, string>();
  for (const [column, target] of Object.entries(options.map ?? {})) {
    const t = target.trim() === "" ? IGNORE : target.trim();
    if (t !== IGNORE && !fields.has(t)) {
      throw new ValidationError(
        "map",
        `Invalid map: column "${column}" maps to "${t}", which is not a field of ${type} (${[...fields].join(", ")})`,
      );
    }
    map.set(norm(column), t);
  }
  const out = headers.map((h) => {
    const n = norm(h);
    const target = map.get(n) ?? byName.get(n);
    if (target !== undefined) return target;
    if (options.ignoreUnknown || n === "") return IGNORE;
    throw new ValidationError(
      h,
      `Unknown column "${h.trim()}": map it with --map, or pass --ignore-unknown to skip it`,
    );
  });
  const seen = new Map<string, number>();
  out.forEach((f, i) => {
    if (f === IGNORE) return;
    const earlier = seen.get(f);
    if (earlier !== undefined && norm(headers[earlier]!) === f && norm(headers[i]!) === f) {
      throw new ValidationError(
        headers[i]!,
        `Columns ${earlier + 1} and ${i + 1} are both "${headers[i]!.trim()}": only one column may fill ${f}`,
      );
    }
    // A column named as the field wins over another that fills it by a synonym (`amount` beside `balance`).
    if (earlier !== undefined && norm(headers[earlier]!) === f) {
      out[i] = IGNORE;
      return;
    }
    if (earlier !== undefined && norm(headers[i]!) === f) {
      out[earlier] = IGNORE;
      seen.set(f, i);
      return;
    }
    if (earlier !== undefined) {
      throw new ValidationError(
        headers[i]!,
        `Columns "${headers[earlier]!.trim()}" and "${headers[i]!.trim()}" both fill ${f}`,
      );
    }
    seen.set(f, i);
  });
  for (const [idField, nameField] of Object.entries(IDS_BY_NAME[type])) {
    if (seen.has(idField) && seen.has(nameField)) out[seen.get(idField)!] = IGNORE;
  }
  return out;
}

/** A record's values by field, from its fields and the resolved columns (missing trailing fields are empty). */
export function recordValues(columns: string[], fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  columns.forEach((f, i) => {
    if (f !== IGNORE) out[f] = fields[i] ?? "";
  });
  return out;
}
