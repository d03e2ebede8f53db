import { checkBirthDate, computeAge, dateTimeField, formatDateTime } from "./dates.ts";
import { emailField, emailKey } from "./email.ts";
import { directoryNameField } from "./directory.ts";
import { ConflictError, ValidationError } from "./errors.ts";
import { AUDIT_FIELDS, bool, type Field, id, int, oneOf, type Parsed, refused, text } from "./fields.ts";
import { moneyField, moneyToNumber } from "./money.ts";
import { phoneField } from "./phone.ts";

/** A customer as stored: instants in epoch ms, money in minor units, phone as digits. */
export interface Customer {
  id: number;
  external_id: string | null;
  fname: string | null;
  lname: string | null;
  mname: string | null;
  email: string | null;
  phone: string | null;
  gender: "M" | "F" | null;
  custom_information: string | null;
  birth_day: number | null;
  birth_month: number | null;
  birth_year: number | null;
  register_date: number;
  accumulated_sales: number;
  send_push: boolean;
  send_email: boolean;
  send_sms: boolean;
  group_id: number | null;
  created_date: number;
  created_by: number;
  last_update_date: number;
  last_update_by: number;
}

/** Settings the customer rules depend on, taken from the service configuration. */
export interface CustomerSettings {
  /** Country code put before national phone numbers, e.g. "7". */
  defaultCountryCode: string;
  /** IANA time zone of every date on the wire. */
  timeZone: string;
}

/** Longest accepted external id, in characters. */
export const MAX_EXTERNAL_ID = 100;

/** Rules of the writable customer fields, keyed by parameter name. */
export function customerFieldParsers(settings: CustomerSettings) {
  return {
    external_id: text(MAX_EXTERNAL_ID).describe("The customer's id in an outside system (exact, case-sensitive)."),
    fname: text(100).describe("First name."),
    lname: text(100).describe("Last name."),
    mname: text(100).describe("Middle name."),
    email: emailField,
    phone: phoneField(settings.defaultCountryCode),
    gender: oneOf(["M", "F"] as const),
    custom_information: text(4000).describe("Free text about the customer."),
    birth_day: int(1, 31),
    birth_month: int(1, 12),
    birth_year: int(1900, 2200),
    register_date: dateTimeField(settings.timeZone),
    accumulated_sales: moneyField,
    send_push: bool,
    send_email: bool,
    send_sms: bool,
    group_id: id.describe("The customer group, by id (wins over group_name)."),
    group_name: directoryNameField.describe("The customer group, by name: made when it does not exist yet."),
  } satisfies Record<string, Field<unknown>>;
}

/** Fields a client may not set, with the reason told back. */
export const READ_ONLY_CUSTOMER_FIELDS = {
  age: refused("age is computed from birth_day, birth_month and birth_year"),
  ...AUDIT_FIELDS,
} satisfies Record<string, Field<never>>;

/** A parsed change to a customer: absent keys stay as they are, null clears. */
export type CustomerPatch = Parsed<ReturnType<typeof customerFieldParsers>>;

/** Who makes a change and when, plus today's date for birth date checks. */
export interface ChangeContext {
  now: number;
  userId: number;
  today: { year: number; month: number; day: number };
}

const TEXT_FIELDS = [
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
] as const;

const FLAG_FIELDS = ["send_push", "send_email", "send_sms"] as const;

/** A customer with every optional field empty: the starting point of a create. */
export function blankCustomer(id: number, context: { now: number; userId: number }): Customer {
  return {
    id,
    external_id: null,
    fname: null,
    lname: null,
    mname: null,
    email: null,
    phone: null,
    gender: null,
    custom_information: null,
    birth_day: null,
    birth_month: null,
    birth_year: null,
    register_date: context.now,
    accumulated_sales: 0,
    send_push: false,
    send_email: false,
    send_sms: false,
    group_id: null,
    created_date: context.now,
    created_by: context.userId,
    last_update_date: context.now,
    last_update_by: context.userId,
  };
}

/** Applies a patch to a customer (or to nothing, for a new one) and checks the result as a whole. */
export function applyCustomerPatch(
  existing: Customer | null,
  patch: CustomerPatch,
  context: ChangeContext & { id: number; groupId: number | null | undefined },
): Customer {
  const next: Customer = existing ? { ...existing } : blankCustomer(context.id, context);
  for (const field of TEXT_FIELDS) {
    const value = patch[field];
    if (value !== undefined) (next as unknown as Record<string, unknown>)[field] = value;
  }
  for (const field of FLAG_FIELDS) {
    const value = patch[field];
    if (value !== undefined) next[field] = value ?? false;
  }
  if (patch.register_date !== undefined) next.register_date = patch.register_date ?? next.created_date;
  if (patch.accumulated_sales !== undefined) next.accumulated_sales = patch.accumulated_sales ?? 0;
  if (context.groupId !== undefined) next.group_id = context.groupId;
  if (patch.register_date && patch.register_date > context.now) {
    throw new ValidationError("register_date", "Invalid register_date: it is in the future");
  }
  checkBirthDate({ day: next.birth_day, month: next.birth_month, year: next.birth_year }, context.today);
  next.last_update_date = context.now;
  next.last_update_by = context.userId;
  return next;
}

/** The unique keys of a customer, by field: each must belong to at most one customer of a company. */
export function customerUniqueKeys(
  c: Customer,
): { phone: string | null; email: string | null; external_id: string | null } {
  return { phone: c.phone, email: c.email === null ? null : emailKey(c.email), external_id: c.external_id };
}

/** The error for a unique value already held by another customer. */
export function uniqueClash(field: string, value: string, isNew: boolean): ConflictError {
  const verb = isNew ? "create" : "update";
  return new ConflictError(`Cannot ${verb} customer: ${field} "${value}" is already taken`, field);
}

/** Names of the ordered lists (indexes) a customer belongs to, by presence of phone and email. */
export function customerLists(c: Pick<Customer, "phone" | "email">): string[] {
  const p = c.phone === null ? "0" : "1";
  const e = c.email === null ? "0" : "1";
  return ["all", `phone${p}`, `email${e}`, `p${p}e${e}`];
}

/** The list that answers a with_phone/with_email filter. */
export function listForFilter(withPhone: boolean | null | undefined, withEmail: boolean | null | undefined): string {
  const p = withPhone === true ? "1" : withPhone === false ? "0" : null;
  const e = withEmail === true ? "1" : withEmail === false ? "0" : null;
  if (p !== null && e !== null) return `p${p}e${e}`;
  if (p !== null) return `phone${p}`;
  if (e !== null) return `email${e}`;
  return "all";
}

/** Whether a customer passes the with_phone/with_email filters. */
export function matchesPresence(
  c: Pick<Customer, "phone" | "email">,
  withPhone: boolean | null | undefined,
  withEmail: boolean | null | undefined,
): boolean {
  if (withPhone != null && withPhone !== (c.phone !== null)) return false;
  if (withEmail != null && withEmail !== (c.email !== null)) return false;
  return true;
}

/** A reply value: numbers, text, or empty. */
export type ViewValue = string | number | null;

/** A customer as shown on the wire, fields in the specification's order. */
export type CustomerView = Record<string, ViewValue | ViewValue[] | Record<string, ViewValue>[]>;

/** Renders a stored customer for a reply, computing age for the given day. */
export function customerView(
  c: Customer,
  options: { groupName: string | null; timeZone: string; today: { year: number; month: number; day: number } },
): CustomerView {
  const birth = { day: c.birth_day, month: c.birth_month, year: c.birth_year };
  return {
    id: c.id,
    external_id: c.external_id,
    fname: c.fname,
    lname: c.lname,
    mname: c.mname,
    age: computeAge(birth, options.today),
    email: c.email,
    phone: c.phone,
    gender: c.gender,
    custom_information: c.custom_information,
    birth_day: c.birth_day,
    birth_month: c.birth_month,
    birth_year: c.birth_year,
    register_date: formatDateTime(c.register_date, options.timeZone),
    accumulated_sales: moneyToNumber(c.accumulated_sales),
    send_push: c.send_push ? 1 : 0,
    send_email: c.send_email ? 1 : 0,
    send_sms: c.send_sms ? 1 : 0,
    group_id: c.group_id,
    group_name: c.group_id === null ? null : options.groupName,
    created_date: formatDateTime(c.created_date, options.timeZone),
    created_by: c.created_by,
    last_update_date: formatDateTime(c.last_update_date, options.timeZone),
    last_update_by: c.last_update_by,
  };
}
