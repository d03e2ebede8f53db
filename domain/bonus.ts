/**
 * Bonus ledger rules: how a balance changes, when a change is refused, what a ledger entry holds and when two
 * requests are "the same" for idempotency. Pure: every amount is an integer of minor units (1/100 of a point).
 */
import { z } from "zod";
import { type CalendarDate, formatDate, formatDateTime, isValidDate, localDate } from "./dates.ts";
import {
  addLot,
  dueLots,
  expireLot,
  lotDates,
  type PointsRules,
  spendable,
  takeSpendable,
  type Wallet,
  type WalletSummary,
} from "./points.ts";
import { ConflictError, quote, UnprocessableError, ValidationError } from "./errors.ts";
import { type Field, field, type FieldParser, invalid } from "./fields.ts";
import { formatPoints, MAX_MINOR, moneyToNumber, parseMoney } from "./money.ts";

/** Largest balance a customer may hold in one program, in minor units (100 billion points). */
export const MAX_BALANCE = MAX_MINOR;

/** Longest accepted `comment` of a change, in characters. */
export const MAX_COMMENT = 500;
/** Longest accepted `order_id` of a change, in characters. */
export const MAX_ORDER_ID = 100;
/** Longest accepted idempotency key, in characters. */
export const MAX_IDEMPOTENCY_KEY = 200;

/** A requested change of one balance: add `amount` (negative removes), or set the balance to it. */
export interface BonusChange {
  /** Minor units; negative removes points (refused with `overwrite`). */
  amount: number;
  /** Whether the balance is set to `amount` instead of moved by it. */
  overwrite: boolean;
  /** A credit's own expiry day (spendable at once, expiring at the end of that day), instead of the program's. */
  expireDate?: CalendarDate | null;
}

/** What made a ledger entry. */
export type EntryKind = "accrual" | "spend" | "return" | "expire" | "adjust" | "overwrite";

/**
 * Where a ledger entry came from (a closed set): `api` an API key's updateBonus (and tasks), `till` POST
 * /api/purchase and /api/purchase/return, `shopify` and `woocommerce` a shop's webhooks, `import` the importer,
 * `admin` the back office, `expiry` points expiring.
 */
export const ENTRY_SOURCES = ["api", "till", "shopify", "woocommerce", "import", "admin", "expiry"] as const;
/** One source of ledger entries. */
export type EntrySource = typeof ENTRY_SOURCES[number];

/** The outcome of a change: the new balance and the delta the ledger records. */
export interface BonusOutcome {
  balance: number;
  delta: number;
}

/** One immutable line of the ledger; the deltas of a balance's entries always add up to the balance. */
export interface LedgerEntry {
  /** 1, 2, 3... per (customer, program): the n-th change of that balance. */
  transaction_id: number;
  customer_id: number;
  bonus_id: number;
  /** Signed change, minor units (for an overwrite: new balance minus old). */
  amount: number;
  /** Balance after the change, minor units. */
  balance: number;
  overwrite: boolean;
  comment: string | null;
  order_id: string | null;
  /** Epoch ms. */
  created_date: number;
  /** User id of the API key that made the change. */
  created_by: number;
  idempotency_key: string | null;
  /** Random id of the write that made this entry: lets a writer tell whether a commit it lost track of landed. */
  request_id: string;
  /** What made it (entries from before kinds: adjust, or overwrite when `overwrite`). */
  kind?: EntryKind;
  /** Pending points after the change, minor units (the spendable balance is `balance - pending`). */
  pending?: number;
  /** The return of `order_id` it records. */
  return_id?: string | null;
  /** The lot an expiry removed, or the lots a spend took from ([lot id, amount]). */
  lots?: [number, number][];
  /** Points a return could not take back (the balance would have gone below zero). */
  shortfall?: number;
  /** Where it came from (entries from before sources: see sourceOf). */
  source?: EntrySource;
}

/** The reply to an accepted change, kept with its idempotency key so that a retry gets it back verbatim. */
export interface BonusReply {
  customer_id: number;
  bonus_id: number;
  /** Points not spendable yet after the change (absent in replies stored before lots). */
  pending?: number;
  /** Balance after the change, minor units. */
  balance: number;
  transaction_id: number;
}

/** How a request names its customer: by internal id, or by external id when no internal id is given. */
export type CustomerRef = { id: number } | { externalId: string };

/** The normalised parameters of an updateBonus request: what idempotency compares. */
export interface BonusRequest extends BonusChange {
  customer: CustomerRef;
  bonusId: number;
  comment: string | null;
  orderId: string | null;
}

/** Writes minor units with exactly two decimals ("50.00", "-0.10") for messages (defined in money.ts). */
export { formatPoints };

/** Refuses a change that is wrong whatever the balance: an overwrite with a negative amount (400). */
export function checkChange(change: BonusChange): void {
  const { amount, overwrite } = change;
  if (!Number.isSafeInteger(amount) || Math.abs(amount) > MAX_MINOR) throw new RangeError(`Not an amount: ${amount}`);
  if (overwrite && amount < 0) {
    throw new ValidationError(
      "amount",
      `Invalid amount "${formatPoints(amount)}": overwrite sets the balance, which cannot be negative`,
    );
  }
}

/**
 * Computes the balance after a change, refusing one that would take it below zero (409 naming the available
 * balance), above MAX_BALANCE (409), or set it to a negative amount (400).
 */
export function nextBalance(balance: number, change: BonusChange): BonusOutcome {
  const { amount, overwrite } = change;
  if (!Number.isSafeInteger(balance) || balance < 0) throw new RangeError(`Not a balance: ${balance}`);
  checkChange(change);
  if (overwrite) return { balance: amount, delta: amount - balance };
  const next = balance + amount;
  if (next < 0) {
    throw new ConflictError(
      `Cannot remove ${formatPoints(-amount)} bonus points: the balance is ${formatPoints(balance)}`,
      "amount",
    );
  }
  if (next > MAX_BALANCE) {
    throw new ConflictError(
      `Cannot add ${formatPoints(amount)} bonus points: the balance ${formatPoints(balance)} would go over ` +
        `the limit of ${formatPoints(MAX_BALANCE)}`,
      "amount",
    );
  }
  return { balance: next, delta: amount };
}

/** Builds the ledger entry of an accepted change. */
export function ledgerEntry(
  request: Pick<BonusRequest, "overwrite" | "comment" | "orderId">,
  context: {
    transactionId: number;
    customerId: number;
    bonusId: number;
    outcome: BonusOutcome;
    now: number;
    userId: number;
    idempotencyKey: string | null;
    requestId: string;
  },
): LedgerEntry {
  return {
    transaction_id: context.transactionId,
    customer_id: context.customerId,
    bonus_id: context.bonusId,
    amount: context.outcome.delta,
    balance: context.outcome.balance,
    overwrite: request.overwrite,
    comment: request.comment,
    order_id: request.orderId,
    created_date: context.now,
    created_by: context.userId,
    idempotency_key: context.idempotencyKey,
    request_id: context.requestId,
  };
}

/**
 * The canonical text of a request's normalised parameters: two requests with the same idempotency key are the
 * same request exactly when their fingerprints are equal. Amounts are compared as minor units ("10" = "10.00" =
 * "+10,0"), flags as booleans (absent = "0" = "false"), texts after trimming (empty = absent), and the customer
 * by the parameter that names it (customer_id when given, else customer_external_id).
 */
export function bonusFingerprint(request: BonusRequest): string {
  const customer = "id" in request.customer
    ? ["customer_id", request.customer.id]
    : ["customer_external_id", request.customer.externalId];
  return JSON.stringify([
    "updateBonus",
    1,
    ...customer,
    request.bonusId,
    request.amount,
    request.overwrite,
    request.comment,
    request.orderId,
    // Only when given, so that keys kept from before expire_date keep their fingerprints.
    ...(request.expireDate ? [formatDate(request.expireDate)] : []),
  ]);
}

/** `expire_date` of a credit: a calendar day, YYYY-MM-DD. */
export const expireDateField: Field<CalendarDate | null> = field((raw, name) => {
  const value = raw.trim();
  if (value === "") return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!m) throw invalid(name, raw, "must look like YYYY-MM-DD");
  const date = { year: +m[1]!, month: +m[2]!, day: +m[3]! };
  if (!isValidDate(date.year, date.month, date.day)) throw invalid(name, raw, "there is no such day");
  if (date.year > 2200) throw invalid(name, raw, "the year must be at most 2200");
  return date;
}, {
  wire: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  description:
    "A credit's own expiry: spendable at once and until the end of this day, instead of the program's dates.",
  example: "2030-12-31",
});

/** Parses a required signed amount ("-12.5", "10,00") into minor units; empty is refused. */
export const amountParser: FieldParser<number> = (raw, field) => {
  if (raw.trim() === "") throw invalid(field, raw, "must not be empty");
  return parseMoney(raw, field, { allowNegative: true });
};

/** The `amount` parameter: a signed decimal of points, required. */
export const amountField: Field<number> = field(amountParser, {
  wire: z.number().min(-MAX_MINOR / 100).max(MAX_MINOR / 100).multipleOf(0.01),
  description:
    'Points to add, negative to remove (or the new balance with overwrite=1); at most 2 decimal places, "-12,5" too.',
  example: "100",
});

/** Checks an idempotency key: 1 to MAX_IDEMPOTENCY_KEY printable characters, used as sent. */
export function checkIdempotencyKey(raw: string, field: string): string {
  if (raw.length === 0) throw invalid(field, raw, "must not be empty");
  if (raw.length > MAX_IDEMPOTENCY_KEY) throw invalid(field, raw, `at most ${MAX_IDEMPOTENCY_KEY} characters`);
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw invalid(field, raw, "control characters are not allowed");
  if (raw.trim() !== raw) throw invalid(field, raw, "must not start or end with white space");
  return raw;
}

// deno-lint-ignore no-control-regex
const PRINTABLE_KEY = /^[^\u0000-\u001f\u007f\s](?:[^\u0000-\u001f\u007f]*[^\u0000-\u001f\u007f\s])?$/;

/** The `idempotency_key` parameter (or `Idempotency-Key` header): a retry with the same key is answered once. */
export const idempotencyKeyField: Field<string> = field(checkIdempotencyKey, {
  wire: z.string().min(1).max(MAX_IDEMPOTENCY_KEY).regex(PRINTABLE_KEY),
  description: "Makes the change safe to retry: a retry with the same key and parameters gets the first reply back.",
  example: "R-1001",
});

/** Picks the idempotency key from the header and the parameter; two different ones are refused. */
export function pickIdempotencyKey(header: string | undefined, param: string | undefined): string | null {
  const fromHeader = header === undefined ? undefined : checkIdempotencyKey(header, "Idempotency-Key");
  if (fromHeader !== undefined && param !== undefined && fromHeader !== param) {
    throw new ValidationError(
      "idempotency_key",
      `Two different idempotency keys were sent: header "${quote(fromHeader)}" and idempotency_key ` +
        `"${quote(param)}"; send one`,
    );
  }
  return fromHeader ?? param ?? null;
}

/** The error for an idempotency key already used by a request with other parameters. */
export function idempotencyMisuse(key: string): UnprocessableError {
  return new UnprocessableError(
    `Cannot update bonus: idempotency key "${quote(key)}" was already used with different parameters`,
    "idempotency_key",
  );
}

/** A plain reply value, as the HTTP layer renders it in JSON or XML. */
export type BonusView = Record<string, string | number | null>;

/** Renders the reply of an accepted (or replayed) change. */
export function bonusReplyView(reply: BonusReply): BonusView {
  return {
    success: 1,
    customer_id: reply.customer_id,
    bonus_id: reply.bonus_id,
    balance: moneyToNumber(reply.balance),
    pending: moneyToNumber(reply.pending ?? 0),
    transaction_id: reply.transaction_id,
  };
}

/** The kind of an entry, also for entries written before kinds. */
export function kindOf(entry: LedgerEntry): EntryKind {
  return entry.kind ?? (entry.overwrite ? "overwrite" : "adjust");
}

/**
 * The source a write gives its entries when it names none: expiry for expiring points, else by the actor (the
 * importer, the back office), else `till` for purchases and returns and `api` for the rest.
 */
export function defaultSource(kind: EntryKind, actorName: string | undefined): EntrySource {
  if (kind === "expire") return "expiry";
  if (actorName?.startsWith("import:")) return "import";
  if (actorName?.startsWith("admin:")) return "admin";
  return kind === "accrual" || kind === "spend" || kind === "return" ? "till" : "api";
}

/** The source of an entry, also for entries written before sources (derived from their kind). */
export function sourceOf(entry: LedgerEntry): EntrySource {
  return entry.source ?? defaultSource(kindOf(entry), undefined);
}

/** Renders one ledger entry for bonusHistory. */
export function transactionView(entry: LedgerEntry, timeZone: string): BonusView {
  return {
    transaction_id: entry.transaction_id,
    customer_id: entry.customer_id,
    bonus_id: entry.bonus_id,
    kind: kindOf(entry),
    source: sourceOf(entry),
    amount: moneyToNumber(entry.amount),
    balance: moneyToNumber(entry.balance - (entry.pending ?? 0)),
    pending: moneyToNumber(entry.pending ?? 0),
    overwrite: entry.overwrite ? 1 : 0,
    comment: entry.comment,
    order_id: entry.order_id,
    return_id: entry.return_id ?? null,
    created_date: formatDateTime(entry.created_date, timeZone),
    created_by: entry.created_by,
  };
}

/** Renders one program's balance of a customer for `GET /api/customer?bonuses=1` and `/api/card`. */
export function balanceView(program: { id: number; name: string }, balance: WalletSummary): BonusView {
  return {
    bonus_id: program.id,
    bonus_name: program.name,
    balance: moneyToNumber(balance.balance),
    pending: moneyToNumber(balance.pending),
    next_expire_date: balance.nextExpireDate,
    next_expire_amount: moneyToNumber(balance.nextExpireAmount),
  };
}

/** One movement of points the ledger records as one entry. */
export interface Movement {
  kind: EntryKind;
  /** Signed change of the total, minor units. */
  amount: number;
  lots?: [number, number][];
  shortfall?: number;
}

/** One movement with the wallet right after it: what a ledger entry records. */
export interface Step {
  movement: Movement;
  wallet: Wallet;
}

/**
 * An `expire` step for each lot that has expired at `now` (oldest expiry first, at most `limit` of them), removing
 * those lots; `more` tells whether due lots were left for another write.
 */
export function expireDue(
  wallet: Wallet,
  now: number,
  options: { limit?: number } = {},
): { wallet: Wallet; steps: Step[]; more: boolean } {
  let w = wallet;
  const steps: Step[] = [];
  const due = dueLots(wallet, now);
  for (const lot of due.slice(0, options.limit ?? due.length)) {
    const out = expireLot(w, lot.id);
    w = out.wallet;
    steps.push({ movement: { kind: "expire", amount: -out.amount, lots: [[lot.id, out.amount]] }, wallet: w });
  }
  return { wallet: w, steps, more: steps.length < due.length };
}

/**
 * Applies an updateBonus change to a wallet: a credit becomes a lot (the program's dates, or spendable at once until
 * the end of `expireDate`), a debit spends the soonest-expiring spendable points, an overwrite sets the spendable
 * balance (raising it with a lot spendable at once, lowering it by spending). Refused 409 when a debit is larger
 * than the spendable balance or a credit would pass the limit.
 */
export function applyAdjust(
  wallet: Wallet,
  change: BonusChange,
  options: { rules: PointsRules; now: number; timeZone: string },
): { wallet: Wallet; movement: Movement | null } {
  checkChange(change);
  const { rules, now, timeZone } = options;
  if (change.expireDate) {
    if (change.overwrite || change.amount <= 0) {
      throw new ValidationError(
        "expire_date",
        "Invalid expire_date: it is for credits (a positive amount, no overwrite)",
      );
    }
    if (formatDate(change.expireDate) < formatDate(localDate(now, timeZone))) {
      throw new ValidationError(
        "expire_date",
        `Invalid expire_date "${formatDate(change.expireDate)}": it is in the past`,
      );
    }
  }
  const have = spendable(wallet, now);
  const delta = change.overwrite ? change.amount - have : change.amount;
  const kind: EntryKind = change.overwrite ? "overwrite" : "adjust";
  if (delta > 0) {
    if (wallet.total + delta > MAX_BALANCE) {
      throw new ConflictError(
        `Cannot add ${formatPoints(delta)} bonus points: the balance ${formatPoints(wallet.total)} would go over ` +
          `the limit of ${formatPoints(MAX_BALANCE)}`,
        "amount",
      );
    }
    const dates = lotDates(rules, { now, timeZone, expireDate: change.expireDate, atOnce: change.overwrite });
    const added = addLot(wallet, { amount: delta, ...dates, now });
    return { wallet: added.wallet, movement: { kind, amount: delta, lots: [[added.lot, delta]] } };
  }
  if (delta < 0) {
    const taken = takeSpendable(wallet, -delta, now);
    if (!taken) {
      throw new ConflictError(
        `Cannot remove ${formatPoints(-delta)} bonus points: the balance is ${formatPoints(have)}`,
        "amount",
      );
    }
    return {
      wallet: taken.wallet,
      movement: { kind, amount: delta, lots: taken.taken.map((a) => [a.lot, a.amount]) },
    };
  }
  // An overwrite to the balance it already has, or a zero credit: recorded, as before lots.
  return { wallet, movement: { kind, amount: 0 } };
}
