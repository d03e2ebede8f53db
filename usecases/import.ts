/**
 * Importing rows of customers, cards or balances: each row goes through the same use cases, field rules, messages,
 * audit entries and KV limits as an API call; a row that cannot go in is reported with its line, field and the
 * API's words, and the others go in. The CLI task (reading a local file) and the bulk endpoint (remote mode) both
 * call `importRows`; neither knows how the other gets its rows.
 */
import type { Actor } from "../domain/audit.ts";
import {
  applyCardChange,
  type Card,
  CARD_LOOKUP_PARSERS,
  cardFieldParsers,
  type CardLookup,
  splitCardFields,
} from "../domain/card.ts";
import { type PointsRules, summarize, walletOf } from "../domain/points.ts";
import { rulesOf } from "../domain/program_settings.ts";
import { createFresh, type FreshCustomer, readClaimsEpoch } from "../storage/import_batch.ts";
import { applyCustomerPatch, type Customer, customerFieldParsers, type CustomerPatch } from "../domain/customer.ts";
import { localDate } from "../domain/dates.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { emailKey } from "../domain/email.ts";
import { AppError, ValidationError } from "../domain/errors.ts";
import { type FieldParser, parserOf, parsersOf } from "../domain/fields.ts";
import {
  ClaimedLines,
  type Duplicate,
  duplicateMessage,
  DuplicateTracker,
  IdLines,
  IdSet,
} from "../domain/import/dupes.ts";
import type { ImportType } from "../domain/import/columns.ts";
import { parseMoney } from "../domain/money.ts";
import { type BalanceRecord, getBalanceRecord } from "../storage/bonuses.ts";
import { getManyInBatches } from "../storage/batch.ts";
import { cardIdOf, findCard } from "../storage/cards.ts";
import { getCustomer } from "../storage/customers.ts";
import { getEntries, listEntries } from "../storage/directories.ts";
import { bonusKeys, cardKeys, keys } from "../storage/keys.ts";
import {
  clearCheckpoint,
  getCheckpoint,
  type ImportCheckpoint,
  type ImportCounts,
  type ImportReject,
  type ImportRun,
  listImportRuns,
  newRunId,
  readChangeCount,
  RUN_ID,
  saveImportRun,
  setCheckpoint,
  setImportDone,
} from "../storage/imports.ts";
import type { Store } from "../storage/store.ts";
import { changeBonus } from "./bonuses.ts";
import { saveCard } from "./cards.ts";
import { saveCustomer } from "./customers.ts";

export type { ImportRun };
export { newRunId, RUN_ID };

/** The card lookup parsers, built once (building one derives its JSON schema for the messages). */
const LOOKUP = {
  uid: parserOf(CARD_LOOKUP_PARSERS.uid) as FieldParser<unknown>,
  card_barcode: parserOf(CARD_LOOKUP_PARSERS.card_barcode) as FieldParser<unknown>,
  external_id: parserOf(CARD_LOOKUP_PARSERS.external_id) as FieldParser<unknown>,
  card_id: parserOf(CARD_LOOKUP_PARSERS.card_id) as FieldParser<unknown>,
};

/** The unique customer fields a row can be matched by, in the default order. */
export const MATCH_FIELDS = ["external_id", "phone", "email"] as const;
/** A field a row can be matched by. */
export type MatchField = typeof MATCH_FIELDS[number];

/** One row of a file: its line and its values by canonical field, spreadsheet conventions already undone. */
export interface ImportRow {
  line: number;
  values: Record<string, string>;
  /** A value the reader could not bring to the API's writing: the row is rejected with it. */
  error?: { field: string; info: string };
}

/** What happened to one row. */
export type RowStatus = "created" | "updated" | "unchanged" | "rejected" | "skipped";

/** The outcome of one row: the bulk endpoint's reply line, and what the report counts. */
export interface RowResult {
  line: number;
  status: RowStatus;
  /** The field a rejected row is rejected for. */
  field?: string;
  /** Why, in the API's words. */
  info?: string;
}

/** The counts of an import and its rejects (the first `MAX_REJECTS_KEPT` of them). */
export type ImportReport = ImportCounts;
export type { ImportReject };

/**
 * Rows one request to the bulk endpoint may carry (413 above it): a request is written whole before its reply, so
 * a larger one would outlast the server's body timeout. `deno task import --url` sends batches under it.
 */
export const IMPORT_MAX_ROWS_PER_REQUEST = 5_000;

/** Rejects kept in a report; the count goes on. */
export const MAX_REJECTS_KEPT = 10_000;

/** How rows are read and written. */
export interface ImportOptions {
  type: ImportType;
  /** The program balances go to (bonus column, balances files without bonus_id); see `importProgram`. */
  bonusId?: number | null;
  /** Order of the unique fields a customer row is matched by (default external_id, phone, email). */
  match?: readonly MatchField[];
  /** Validate and match, write nothing. */
  dryRun?: boolean;
  /** Phone country code and time zone, as the API reads them. */
  settings: { defaultCountryCode: string; timeZone: string };
  /** Makes the idempotency key of a credit (overwrite 0) of a balances file, so a re-run grants it once. */
  fileKey?: string;
  /** Rows written at once by the one-at-a-time path. */
  concurrency?: number;
  /** New customers go in several per atomic operation (default true); false writes every row on its own. */
  batched?: boolean;
}

/** A fresh report. */
export function emptyReport(): ImportReport {
  return { created: 0, updated: 0, unchanged: 0, rejected: 0, skipped: 0, rejects: [] };
}

/** Counts a row's result in a report. */
export function countResult(report: ImportReport, r: RowResult): void {
  report[r.status]++;
  if (r.status === "rejected" && report.rejects.length < MAX_REJECTS_KEPT) {
    report.rejects.push({ line: r.line, field: r.field ?? "", info: r.info ?? "" });
  }
}

/** An import that cannot start (a usage error: nothing is written). */
export class ImportSetupError extends ValidationError {
  override name = "ImportSetupError";
}

/**
 * The program balances go to: `bonusId` when given (it must exist), else the company's only program. Several
 * programs and no `bonusId`, or none at all, stop the import before its first row.
 */
export async function importProgram(store: Store, actor: Actor, bonusId: number | null | undefined): Promise<number> {
  const programs = await listEntries(store.kv, actor.companyId, "bonus_programs");
  if (bonusId != null) {
    if (!programs.some((p) => p.id === bonusId)) {
      throw new ImportSetupError("bonus_id", `Bonus program "${bonusId}" not found`);
    }
    return bonusId;
  }
  if (programs.length === 1) return programs[0]!.id;
  if (programs.length === 0) {
    throw new ImportSetupError("bonus_id", "Cannot import balances: the company has no bonus program");
  }
  throw new ImportSetupError(
    "bonus_id",
    `Cannot import balances: the company has ${programs.length} bonus programs (${
      programs.map((p) => p.id).join(", ")
    }), choose one with --bonus-id`,
  );
}

/**
 * Parses rows and decides in-file duplicates, with no store: the part of an import the remote client runs too, so
 * duplicates across its batches are found as a local import finds them.
 */
export class RowChecker {
  /** The unique values claimed so far (by this batch only, when the store finds the earlier ones). */
  dupes = new DuplicateTracker();
  readonly customerParsers: Record<string, FieldParser<unknown>>;
  readonly cardParsers: Record<string, FieldParser<unknown>>;
  readonly match: readonly MatchField[];
  /** The program of balances, once known (see importProgram). */
  programId: number | null = null;

  constructor(readonly options: ImportOptions) {
    this.customerParsers = parsersOf(customerFieldParsers(options.settings));
    this.cardParsers = cardFieldParsers(options.settings) as Record<string, FieldParser<unknown>>;
    this.match = options.match ?? MATCH_FIELDS;
  }

  /** Parses and checks a row against the file so far: a result when it is done with (rejected, skipped). */
  plan(row: ImportRow): RowResult | Planned {
    const parsed = this.parse(row);
    return "status" in parsed ? parsed : this.claim(parsed);
  }

  /** Parses a row (no duplicate check): a result when it is done with (rejected, skipped). */
  parse(row: ImportRow): RowResult | Planned {
    const { line } = row;
    if (row.error) return { line, status: "rejected", field: row.error.field, info: row.error.info };
    if (Object.values(row.values).every((v) => v.trim() === "")) return { line, status: "skipped" };
    try {
      return this.options.type === "customers"
        ? this.#parseCustomer(row)
        : this.options.type === "cards"
        ? this.#parseCard(row)
        : this.#parseBonus(row);
    } catch (e) {
      return rejectOf(line, e);
    }
  }

  /** Claims a parsed row's unique values: the row, or its reject when an earlier line claimed one. */
  claim(parsed: Planned): RowResult | Planned {
    const dup = this.dupes.claim(parsed.line, parsed.unique);
    return dup ? duplicateReject(parsed.line, dup) : parsed;
  }

  #parseCustomer(row: ImportRow): PlannedCustomer {
    const patch: Record<string, unknown> = {};
    let groupName: string | null | undefined;
    let cardUid: string | null = null;
    let cardBarcode: string | null = null;
    let bonus: number | null = null;
    for (const [field, raw] of Object.entries(row.values)) {
      // An empty cell leaves the stored value as it is: a spreadsheet's gap never clears what a till recorded.
      if (raw.trim() === "") continue;
      if (field === "card_uid") cardUid = LOOKUP.uid(raw, field) as string;
      else if (field === "card_barcode") cardBarcode = LOOKUP.card_barcode(raw, field) as string;
      else if (field === "bonus") bonus = parseMoney(raw, field);
      else if (field === "group_name") groupName = this.customerParsers.group_name!(raw, field) as string;
      else if (field === "group_id") continue;
      else {
        const parse = this.customerParsers[field];
        if (!parse) throw new ValidationError(field, `Unknown field "${field}"`);
        patch[field] = parse(raw, field);
      }
    }
    if (cardBarcode !== null && cardUid === null) {
      throw new ValidationError("card_uid", "Invalid card_uid: a card needs its number (card_uid) beside card_barcode");
    }
    const p = patch as CustomerPatch;
    if (!MATCH_FIELDS.some((f) => p[f] != null) && cardUid === null) {
      throw new ValidationError(
        this.match[0]!,
        "Cannot import customer: the row has no external_id, phone, email or card_uid to find it by on a re-run",
      );
    }
    return {
      kind: "customer",
      line: row.line,
      patch: p,
      groupName,
      cardUid,
      cardBarcode,
      bonus,
      unique: {
        external_id: p.external_id ?? null,
        phone: p.phone ?? null,
        email: p.email ? emailKey(p.email) : null,
        card_uid: cardUid,
        card_barcode: cardBarcode,
      },
    };
  }

  #parseCard(row: ImportRow): PlannedCard {
    const fields: Record<string, unknown> = {};
    const lookupParsers: Record<string, FieldParser<unknown>> = {
      uid: LOOKUP.uid,
      external_id: LOOKUP.external_id,
    };
    for (const [field, raw] of Object.entries(row.values)) {
      if (raw.trim() === "") continue;
      const parse = this.cardParsers[field] ?? lookupParsers[field];
      if (!parse) throw new ValidationError(field, `Unknown field "${field}"`);
      fields[field] = parse(raw, field);
    }
    const { change, refs } = splitCardFields(fields);
    // The owner by external id when the row has one, else by customer_id (a customer of this company).
    if (fields.customer_external_id !== undefined && refs.customerId !== undefined) {
      delete refs.customerId;
      refs.customerExternalId = fields.customer_external_id as string;
    }
    const lookup: CardLookup = {
      uid: (fields.uid as string | undefined) ?? null,
      external_id: (fields.external_id as string | undefined) ?? null,
      card_barcode: (fields.barcode as string | undefined) ?? null,
    };
    if (lookup.uid === null) throw new ValidationError("uid", `Parameter "uid" is required`);
    const { uid: _u, external_id: _e, ...rest } = change as Record<string, unknown>;
    return {
      kind: "card",
      line: row.line,
      lookup,
      change: rest as PlannedCard["change"],
      refs,
      unique: {
        uid: lookup.uid ?? null,
        external_id: lookup.external_id ?? null,
        barcode: lookup.card_barcode ?? null,
      },
    };
  }

  #parseBonus(row: ImportRow): PlannedBonus {
    const v = row.values;
    const text = (f: string) => (v[f] ?? "").trim();
    let customer: PlannedBonus["customer"];
    if (text("customer_external_id") !== "") customer = { externalId: text("customer_external_id") };
    else if (text("customer_id") !== "") {
      const id = LOOKUP.card_id(text("customer_id"), "customer_id") as number;
      customer = { id };
    } else {
      throw new ValidationError(
        "customer_external_id",
        `Parameter "customer_external_id" or "customer_id" is required`,
      );
    }
    const bonusId = text("bonus_id") !== "" ? LOOKUP.card_id(text("bonus_id"), "bonus_id") as number : this.programId;
    if (bonusId === null) throw new ValidationError("bonus_id", `Parameter "bonus_id" is required`);
    if (text("amount") === "") throw new ValidationError("amount", `Parameter "amount" is required`);
    const overwrite = text("overwrite") === "" ? true : this.customerParsers.send_sms!(text("overwrite"), "overwrite");
    const amount = parseMoney(text("amount"), "amount", { allowNegative: !overwrite });
    const who = "id" in customer ? `id:${customer.id}` : `ext:${customer.externalId}`;
    return {
      kind: "bonus",
      line: row.line,
      customer,
      bonusId,
      amount,
      overwrite: overwrite === true,
      unique: overwrite ? { balance: `${who}/${bonusId}` } : {},
    };
  }
}

/** What one import keeps between its batches (in-file duplicates, the parsers, the program) and writes with. */
export class ImportSession extends RowChecker {
  /** Groups and card types by id as this run read them (entryOf). */
  readonly directoryNames = new Map<string, DirectoryEntry | null>();
  /**
   * Whether a re-run of the file would find every row that went in unchanged and reject the same rows: false once a
   * row is rejected for a reason outside itself and the file (the store, the clock), or two rows touch one record
   * (a later row may then undo what an earlier one did). Only such a run may leave a finished-run record.
   */
  fixedPoint = true;
  /** Until when the outcome holds at the latest: the first instant a compared or written balance's lots change. */
  validUntil = Number.POSITIVE_INFINITY;
  #touchedCustomers = new IdSet();
  #touchedBalances = new Map<number, IdSet>();
  /** The line of each balance an overwrite row set, by program and customer id. */
  #overwrites = new Map<number, IdLines>();

  /** Notes the record a row went into; a record touched by two rows ends the fixed point. */
  #touch(set: IdSet, id: number | null): void {
    if (id !== null && !set.add(id)) this.fixedPoint = false;
  }

  #touchBalance(bonusId: number, customerId: number): void {
    let set = this.#touchedBalances.get(bonusId);
    if (!set) this.#touchedBalances.set(bonusId, set = new IdSet());
    this.#touch(set, customerId);
  }

  /** Notes when a balance's summary changes by itself (a lot becomes spendable or expires). */
  #watch(record: BalanceRecord | null, now: number): void {
    for (const lot of walletOf(record).lots) {
      if (lot.remaining <= 0) continue;
      if (lot.available_at > now) this.validUntil = Math.min(this.validUntil, lot.available_at);
      if (lot.expires_at !== null && lot.expires_at >= now) {
        this.validUntil = Math.min(this.validUntil, lot.expires_at + 1);
      }
    }
  }

  /**
   * A balance written now under `rules` (null: not known): its new lots' instants are not read back, so a timed rule,
   * or an unknown one, ends the hold.
   */
  #wrote(rules: PointsRules | null, now: number): void {
    if (rules === null || rules.pendingDays > 0 || rules.lifetimeDays !== null) {
      this.validUntil = Math.min(this.validUntil, now);
    }
  }

  /** Records the customer and card a row went into. */
  #setIds(line: number, ids: { customer: number | null; card: number | null }): void {
    this.#ids.set(line, ids);
    this.#touch(this.#touchedCustomers, ids.customer);
  }

  constructor(readonly store: Store, readonly actor: Actor, options: ImportOptions) {
    super(options);
  }

  /** Resolves what the rows need before the first one (the bonus program); throws ImportSetupError. */
  async prepare(needsProgram: boolean): Promise<void> {
    if (!needsProgram) return;
    this.programId = await importProgram(this.store, this.actor, this.options.bonusId);
    const programs = await listEntries(this.store.kv, this.actor.companyId, "bonus_programs");
    this.#rules = rulesOf(programs.find((p) => p.id === this.programId)?.settings);
  }

  /** The rules of the program of balances (for the batched create). */
  #rules: PointsRules | null = null;

  /**
   * Whether in-file duplicates of customer rows are found through the store (see ClaimedLines): a value an earlier
   * batch claimed is in the store by now, held by the record that batch's line went into. Not in a dry run (nothing
   * is written), nor for cards and balances files (their values are tracked as hashes).
   */
  get #storeDupes(): boolean {
    return this.options.type === "customers" && !this.options.dryRun;
  }
  #customerLines = new ClaimedLines(["external_id", "phone", "email"]);
  #cardLines = new ClaimedLines(["card_uid", "card_barcode"]);
  /** The customer and card each row of the batch went into (or was found unchanged in), by line. */
  #ids = new Map<number, { customer: number | null; card: number | null }>();

  /** Imports a batch of rows, several at once; results in row order. */
  async run(rows: ImportRow[]): Promise<RowResult[]> {
    // The program of balances is resolved when the first bonus value appears (ImportSetupError when ambiguous).
    if (this.programId === null && this.options.type === "customers") {
      if (rows.some((r) => !r.error && (r.values.bonus ?? "").trim() !== "")) await this.prepare(true);
    }
    const storeDupes = this.#storeDupes;
    // Duplicates are decided in file order before any row of the batch is written.
    const planned = storeDupes ? rows.map((row) => this.parse(row)) : rows.map((row) => this.plan(row));
    let customers = planned.filter((p): p is PlannedCustomer => !("status" in p) && p.kind === "customer");
    const batched = !this.options.dryRun && this.options.batched !== false && customers.length > 0;
    // Read before the rows' index entries, so the batched create need not read them again (storage/import_batch.ts).
    const epoch = batched ? await readClaimsEpoch(this.store, this.actor.companyId) : undefined;
    const pre = await this.#prefetch(customers);
    if (storeDupes) {
      // Earlier batches through the store, this batch in memory; a rejected row claims nothing.
      this.dupes = new DuplicateTracker();
      for (const [i, p] of planned.entries()) {
        if ("status" in p) continue;
        const earlier = this.#earlierLine(p as PlannedCustomer, pre.get(p as PlannedCustomer)!);
        planned[i] = earlier ? duplicateReject(p.line, earlier) : this.claim(p);
      }
      customers = planned.filter((p): p is PlannedCustomer => !("status" in p) && p.kind === "customer");
    }
    const results: RowResult[] = new Array(rows.length);
    const parsed = [...planned];
    this.#ids.clear();
    // New customers (nothing of theirs in the store yet) go in several per atomic operation.
    const fresh = batched ? this.#freshOf(customers, pre) : [];
    if (fresh.length > 0) {
      const at = new Map(planned.map((p, i) => [p, i]));
      if (fresh.some((f) => f.row.balance !== null)) this.#wrote(this.#rules, this.store.clock());
      await createFresh(this.store, this.actor, fresh.map((f) => f.row), {
        epoch,
        onWritten: (i, ids) => {
          const { plan } = fresh[i]!;
          planned[at.get(plan)!] = { line: plan.line, status: "created" };
          this.#setIds(plan.line, { customer: ids.customerId, card: ids.cardId });
        },
      });
    }
    for (const [i, plan] of planned.entries()) if ("status" in plan) results[i] = plan;
    // The values a row that went in claimed, by the records holding them now (for later rounds and batches).
    const remember = (indices: number[]) => {
      for (const i of indices) {
        const r = results[i]!;
        const ids = this.#ids.get(r.line);
        const p = parsed[i]!;
        if (r.status === "rejected" || r.status === "skipped" || !ids || "status" in p) continue;
        this.#remember(p as PlannedCustomer, ids);
      }
    };
    if (storeDupes) remember([...planned.keys()].filter((i) => "status" in planned[i]!));
    // Rows go in file order: a row touching a record an earlier row of the batch touches waits for the next round,
    // and is matched again then (as with a batch of one row).
    let pending = [...planned.keys()].filter((i) => !("status" in planned[i]!));
    const width = Math.max(1, this.options.concurrency ?? 16);
    while (pending.length > 0) {
      const touched = new Set<string>();
      const now: number[] = [];
      const later: number[] = [];
      for (const i of pending) {
        const plan = planned[i] as Planned;
        const mine = touchKeys(plan, pre.get(plan as PlannedCustomer));
        (mine.some((k) => touched.has(k)) ? later : now).push(i);
        for (const k of mine) touched.add(k);
      }
      let next = 0;
      const worker = async () => {
        while (next < now.length) {
          const i = now[next++]!;
          const plan = planned[i] as Planned;
          results[i] = await this.#write(plan, pre.get(plan as PlannedCustomer));
        }
      };
      await Promise.all(Array.from({ length: Math.min(width, now.length) }, worker));
      if (storeDupes) remember(now);
      pending = later;
      const again = later.map((i) => planned[i] as Planned).filter((p): p is PlannedCustomer => p.kind === "customer");
      if (again.length > 0) { for (const [p, found] of await this.#prefetch(again)) pre.set(p, found); }
    }
    // A reject decided by the row and the file alone (parsing, duplicates in the file) comes again on a re-run;
    // one decided by the store or the clock may not.
    for (const [i, r] of results.entries()) {
      if (r.status === "rejected" && ((parsed[i] !== r && !ROW_ERRORS.has(r)) || timed(r))) this.fixedPoint = false;
    }
    return results;
  }

  /**
   * Reads what rows an interrupted earlier run finished (they are not written again) so that later duplicates of
   * them are still found.
   */
  async seed(rows: ImportRow[]): Promise<void> {
    if (!this.#storeDupes) {
      for (const row of rows) this.plan(row);
      return;
    }
    const customers = rows.map((row) => this.parse(row))
      .filter((p): p is PlannedCustomer => !("status" in p) && p.kind === "customer");
    const pre = await this.#prefetch(customers);
    for (const p of customers) {
      const found = pre.get(p)!;
      for (const f of MATCH_FIELDS) {
        const id = found.holders.get(f);
        if (p.unique[f] !== null && id !== undefined) this.#customerLines.set(id, f, p.line);
      }
      if (found.cardId !== null) this.#cardLines.set(found.cardId, "card_uid", p.line);
      if (found.barcodeCardId !== null) this.#cardLines.set(found.barcodeCardId, "card_barcode", p.line);
    }
  }

  /** The earlier line of this file that claimed one of a row's values, found through the record holding it. */
  #earlierLine(p: PlannedCustomer, pre: Prefetched): Duplicate | null {
    for (const f of MATCH_FIELDS) {
      const id = pre.holders.get(f);
      const line = p.unique[f] === null || id === undefined ? null : this.#customerLines.get(id, f);
      if (line !== null) return { field: f, value: p.unique[f]!, line };
    }
    const uid = pre.cardId === null ? null : this.#cardLines.get(pre.cardId, "card_uid");
    if (uid !== null) return { field: "card_uid", value: p.cardUid!, line: uid };
    const barcode = pre.barcodeCardId === null ? null : this.#cardLines.get(pre.barcodeCardId, "card_barcode");
    if (barcode !== null) return { field: "card_barcode", value: p.cardBarcode!, line: barcode };
    return null;
  }

  /** " (set by line N of this file)" when a row of this file went into the customer, else "". */
  #fromLine(id: number): string {
    for (const f of MATCH_FIELDS) {
      const line = this.#customerLines.get(id, f);
      if (line !== null) return ` (set by line ${line} of this file)`;
    }
    return "";
  }

  /** Records the values a row that went in claimed, by the records holding them now. */
  #remember(p: PlannedCustomer, ids: { customer: number | null; card: number | null }): void {
    if (ids.customer !== null) {
      for (const f of MATCH_FIELDS) if (p.unique[f] !== null) this.#customerLines.set(ids.customer, f, p.line);
    }
    if (ids.card !== null) {
      if (p.cardUid !== null) this.#cardLines.set(ids.card, "card_uid", p.line);
      if (p.cardBarcode !== null) this.#cardLines.set(ids.card, "card_barcode", p.line);
    }
  }

  /**
   * The customer rows of a batch that only create (no unique value of theirs in the store, no group to resolve, a
   * card whose barcode is given or its uid's EAN-13), decided by the same domain rules as saveCustomer and saveCard;
   * a row these rules refuse is left to the one-at-a-time path, which reports it.
   */
  #freshOf(
    plans: PlannedCustomer[],
    pre: Map<PlannedCustomer, Prefetched>,
  ): { plan: PlannedCustomer; row: FreshCustomer }[] {
    const out: { plan: PlannedCustomer; row: FreshCustomer }[] = [];
    const claimed = new Set<string>();
    const now = this.store.clock();
    const today = localDate(now, this.options.settings.timeZone);
    const { userId } = this.actor;
    for (const plan of plans) {
      const p = pre.get(plan)!;
      if (p.holders.size > 0 || p.card !== null || p.cardId !== null || plan.groupName !== undefined) continue;
      if (
        plan.cardUid === null && plan.unique.external_id === null && plan.unique.phone === null &&
        plan.unique.email === null
      ) continue;
      let customer: Customer;
      let card: Card | null = null;
      try {
        customer = applyCustomerPatch(null, plan.patch, { now, userId, today, id: 0, groupId: undefined });
        if (plan.cardUid !== null) {
          card = applyCardChange(null, plan.cardBarcode === null ? {} : { barcode: plan.cardBarcode }, {
            id: 0,
            uid: plan.cardUid,
            externalId: null,
            typeId: null,
            customerId: 0,
            now,
            userId,
          });
          if (plan.cardBarcode === null) card.barcode = card.uid_ean13;
          if (card.barcode === null) continue;
        }
      } catch {
        continue;
      }
      if (plan.bonus !== null && (this.programId === null || this.#rules === null)) continue;
      // Two rows of one operation must not claim one key (a derived barcode may repeat another row's).
      const mine = [
        `p:${customer.phone}`,
        `e:${plan.unique.email}`,
        `x:${customer.external_id}`,
        ...(card ? [`u:${card.uid}`, `b:${card.barcode}`] : []),
      ].filter((k) => !k.endsWith(":null"));
      if (mine.some((k) => claimed.has(k))) continue;
      for (const k of mine) claimed.add(k);
      out.push({
        plan,
        row: {
          customer,
          card,
          balance: plan.bonus === null ? null : {
            bonusId: this.programId!,
            amount: plan.bonus,
            rules: this.#rules!,
            timeZone: this.options.settings.timeZone,
          },
        },
      });
    }
    return out;
  }

  /**
   * Reads what the customer rows of a batch are matched against in a few getMany rounds for the whole batch, so
   * rows already in cost no reads of their own: first the index entry of each row's first match field and of its
   * card; then the customer found with its balance and card, or else the row's other match fields; last only what
   * is still unknown. A unique value the found customer's record already holds is not read from its index: the
   * record and its index entries are written together, so the entry points at that customer.
   */
  async #prefetch(plans: PlannedCustomer[]): Promise<Map<PlannedCustomer, Prefetched>> {
    const out = new Map<PlannedCustomer, Prefetched>();
    if (plans.length === 0) return out;
    const cid = this.actor.companyId;
    const { kv } = this.store;
    const programId = this.programId;
    type State = {
      plan: PlannedCustomer;
      fields: MatchField[];
      holders: Map<MatchField, number>;
      unread: MatchField[];
      cardId: number | null;
      pre: Prefetched;
      recordRead: boolean;
    };
    const states: State[] = plans.map((plan) => {
      const fields = this.match.filter((f) => plan.unique[f] !== null);
      return {
        plan,
        fields,
        holders: new Map(),
        unread: [...fields],
        cardId: null,
        pre: { holders: new Map(), existing: null, card: null, cardId: null, barcodeCardId: null, balance: null },
        recordRead: false,
      };
    });
    /** One round: each state asks for keys and hears their entries. */
    const round = async (ask: (s: State, want: (key: Deno.KvKey, heard: (v: unknown) => void) => void) => void) => {
      const wanted: Deno.KvKey[] = [];
      const heard: ((v: unknown) => void)[] = [];
      for (const s of states) ask(s, (key, h) => (wanted.push(key), heard.push(h)));
      if (wanted.length === 0) return;
      const read = await getManyInBatches<unknown>(kv, wanted);
      read.forEach((e, i) => heard[i]!(e.value));
    };
    const readIndex = (s: State, f: MatchField, want: (key: Deno.KvKey, h: (v: unknown) => void) => void) => {
      s.unread = s.unread.filter((u) => u !== f);
      want(matchKey(cid, f, s.plan.unique[f]!), (v) => {
        if (v !== null) s.holders.set(f, v as number);
      });
    };
    const readRecords = (s: State, id: number, want: (key: Deno.KvKey, h: (v: unknown) => void) => void) => {
      s.recordRead = true;
      want(keys.customer(cid, id), (v) => s.pre.existing = v as Customer | null);
      if (s.plan.bonus !== null && programId !== null) {
        want(bonusKeys.balance(cid, id, programId), (v) => s.pre.balance = v as BalanceRecord | null);
      }
    };
    const matchedId = (s: State) => {
      const f = this.match.find((m) => s.holders.has(m));
      return f === undefined ? null : s.holders.get(f)!;
    };
    // 1: the first match field's index entry, and the card's.
    await round((s, want) => {
      if (s.fields.length > 0) readIndex(s, s.fields[0]!, want);
      if (s.plan.cardUid !== null) want(cardKeys.byUid(cid, s.plan.cardUid), (v) => s.cardId = cardIdOf(v));
      if (s.plan.cardBarcode !== null) {
        want(cardKeys.byBarcode(cid, s.plan.cardBarcode), (v) => s.pre.barcodeCardId = cardIdOf(v));
      }
    });
    // 2: the customer found, its balance and the card; or the other match fields.
    await round((s, want) => {
      const id = matchedId(s);
      if (id !== null) readRecords(s, id, want);
      else for (const f of [...s.unread]) readIndex(s, f, want);
      if (s.cardId !== null) want(cardKeys.card(cid, s.cardId), (v) => s.pre.card = v as Card | null);
    });
    // 3: what is still unknown: the customer matched by another field, or a value its record does not hold.
    await round((s, want) => {
      const id = matchedId(s);
      if (id !== null && !s.recordRead) readRecords(s, id, want);
      const existing = s.pre.existing;
      for (const f of [...s.unread]) {
        if (existing !== null && existing.id === id && heldBy(existing, f, s.plan.unique[f]!)) {
          s.unread = s.unread.filter((u) => u !== f);
          s.holders.set(f, existing.id);
        } else readIndex(s, f, want);
      }
    });
    // 4: a customer matched only now (by a field read last) is read; its other values were all read.
    await round((s, want) => {
      const id = matchedId(s);
      if (id !== null && !s.recordRead) readRecords(s, id, want);
    });
    for (const s of states) {
      const id = matchedId(s);
      // A record read for a match that a later round changed (another field ranks first) is not this row's.
      if (s.pre.existing !== null && s.pre.existing.id !== id) s.pre.existing = null;
      for (const f of s.fields) if (s.holders.has(f)) s.pre.holders.set(f, s.holders.get(f)!);
      s.pre.cardId = s.cardId;
      out.set(s.plan, s.pre);
    }
    return out;
  }

  async #write(plan: Planned, pre?: Prefetched): Promise<RowResult> {
    try {
      if (plan.kind === "customer") return await this.#writeCustomer(plan, pre);
      if (plan.kind === "card") return await this.#writeCard(plan);
      return await this.#writeBonus(plan);
    } catch (e) {
      return rejectOf(plan.line, e);
    }
  }

  async #writeCustomer(plan: PlannedCustomer, given?: Prefetched): Promise<RowResult> {
    const { store, actor, options } = this;
    const { kv } = store;
    const cid = actor.companyId;
    const { line, patch, unique } = plan;
    const pre = given ?? (await this.#prefetch([plan])).get(plan)!;
    const holder = pre.holders;
    let matchedBy: MatchField | "card_uid" | undefined = this.match.find((f) => holder.has(f));
    let existingId = matchedBy === undefined ? null : holder.get(matchedBy)!;
    let existing = pre.existing;
    // A row with nothing but a card (a till's customer) is its card's owner.
    if (!MATCH_FIELDS.some((f) => unique[f] !== null) && pre.card?.customer_id != null) {
      matchedBy = "card_uid";
      existingId = pre.card.customer_id;
      existing = await getCustomer(kv, cid, existingId);
    }
    // A unique value held by another customer than the one matched: the API's 409, as a reject.
    for (const [f, id] of holder) {
      if (id !== existingId) {
        const value = f === "email" ? patch.email! : unique[f]!;
        const verb = existingId === null ? "create" : "update";
        return reject(line, f, `Cannot ${verb} customer: ${f} "${value}" is already taken`);
      }
    }
    if (existingId !== null && existing === null) {
      return reject(line, matchedBy!, "Cannot import customer: it was deleted concurrently, try again");
    }
    // Matched by phone or email to a customer who has another external id: two different people, or a typo.
    if (existing && unique.external_id !== null && existing.external_id !== null && matchedBy !== "external_id") {
      const value = matchedBy === "email" ? patch.email! : unique[matchedBy as MatchField]!;
      return reject(
        line,
        matchedBy!,
        `Cannot import customer: ${matchedBy} "${value}" belongs to the customer with external_id "${existing.external_id}"` +
          this.#fromLine(existing.id),
      );
    }
    const now = store.clock();
    const today = localDate(now, options.settings.timeZone);
    // Checked as a whole (birth date, register date) before anything of the row is written.
    const next = applyCustomerPatch(existing, patch, {
      now,
      userId: actor.userId,
      today,
      id: existing?.id ?? 0,
      groupId: undefined,
    });
    let groupChanged = plan.groupName !== undefined;
    if (existing && plan.groupName !== undefined && existing.group_id !== null) {
      const group = await entryOf(store, cid, "groups", existing.group_id, this.directoryNames);
      groupChanged = group?.name.toLowerCase() !== plan.groupName?.toLowerCase();
    }
    const customerChanged = existing === null || groupChanged || !sameCustomer(existing, next);
    let card: Card | null = null;
    let cardChanged = false;
    if (plan.cardUid !== null) {
      card = pre.card;
      if (card === null && plan.cardBarcode !== null) {
        const byBarcode = await findCard(kv, cid, { card_barcode: plan.cardBarcode });
        if (byBarcode) {
          return reject(line, "card_barcode", `Cannot create card: barcode "${plan.cardBarcode}" is already taken`);
        }
      }
      if (card && card.customer_id !== null && card.customer_id !== existingId) {
        return reject(line, "card_uid", `Cannot import card: card "${plan.cardUid}" belongs to another customer`);
      }
      cardChanged = card === null || card.customer_id !== existingId ||
        (plan.cardBarcode !== null && card.barcode !== plan.cardBarcode);
    }
    let balanceChanged = false;
    if (plan.bonus !== null && existingId !== null) {
      const record = pre.balance;
      this.#watch(record, now);
      balanceChanged = summarize(walletOf(record), now, options.settings.timeZone).balance !== plan.bonus;
    } else if (plan.bonus !== null) balanceChanged = true;
    if (!customerChanged && !cardChanged && !balanceChanged) {
      this.#setIds(line, { customer: existingId, card: card?.id ?? null });
      return { line, status: "unchanged" };
    }
    const status: RowStatus = existing === null ? "created" : "updated";
    if (options.dryRun) return { line, status };
    let customerId = existingId;
    if (customerChanged) {
      const saved = await saveCustomer(store, actor, {
        id: existingId ?? undefined,
        create: existingId === null,
        patch,
        groupName: plan.groupName,
        timeZone: options.settings.timeZone,
      });
      customerId = saved.customer.id;
    }
    let cardId = card?.id ?? null;
    if (cardChanged) {
      try {
        const savedCard = await saveCard(store, actor, {
          mode: "update",
          lookup: { uid: plan.cardUid },
          create: true,
          change: plan.cardBarcode === null ? {} : { barcode: plan.cardBarcode },
          refs: { customerId },
        });
        cardId = savedCard.card.id;
      } catch (e) {
        const r = rejectOf(line, e);
        // The card's own field (uid, barcode, ...) as the row names it; a reject without a field is the card's.
        return { ...r, field: r.field ? `card_${r.field}` : "card_uid" };
      }
    }
    if (balanceChanged) {
      this.#wrote(this.#rules, now);
      await changeBonus(store, actor, {
        customer: { id: customerId! },
        bonusId: this.programId!,
        amount: plan.bonus!,
        overwrite: true,
        comment: null,
        orderId: null,
        idempotencyKey: null,
        timeZone: options.settings.timeZone,
      });
    }
    this.#setIds(line, { customer: customerId, card: cardId });
    return { line, status };
  }

  async #writeCard(plan: PlannedCard): Promise<RowResult> {
    const { store, actor, options } = this;
    const cid = actor.companyId;
    const { lookup, line } = plan;
    // A card row is found by its uid only: a barcode or external id held by another card is that card's, not a way
    // to find (and take over) it.
    const existing = await findCard(store.kv, cid, { uid: lookup.uid });
    const held = await getManyInBatches<unknown>(store.kv, [
      lookup.card_barcode ? cardKeys.byBarcode(cid, lookup.card_barcode) : cardKeys.byUid(cid, lookup.uid!),
      lookup.external_id ? cardKeys.byExternalId(cid, lookup.external_id) : cardKeys.byUid(cid, lookup.uid!),
    ]);
    for (const [i, field] of (["barcode", "external_id"] as const).entries()) {
      const holder = cardIdOf(held[i]!.value);
      const value = field === "barcode" ? lookup.card_barcode : lookup.external_id;
      if (!value || holder === null || holder === existing?.id) continue;
      const other = await findCard(store.kv, cid, { card_id: holder });
      return reject(
        line,
        field,
        `Cannot import card "${lookup.uid}": ${field} "${value}" belongs to card "${other?.uid ?? holder}"`,
      );
    }
    if (existing && await sameCard(store, cid, existing, plan, this.directoryNames)) {
      return { line, status: "unchanged" };
    }
    const status: RowStatus = existing ? "updated" : "created";
    // The owner is resolved in a dry run too, so it reports what the real run does.
    const owner = await this.#ownerReject(plan);
    if (owner) return owner;
    if (options.dryRun) return { line, status };
    await saveCard(store, actor, {
      mode: "update",
      lookup: existing ? { uid: lookup.uid } : { uid: lookup.uid, external_id: lookup.external_id },
      create: true,
      change: plan.change,
      refs: plan.refs,
    });
    return { line, status };
  }

  /** The reject of a card row naming an owner that does not exist, in the words saveCard uses. */
  async #ownerReject(plan: PlannedCard): Promise<RowResult | null> {
    const { kv } = this.store;
    const cid = this.actor.companyId;
    const { refs, line } = plan;
    if (refs.customerId != null && (await getCustomer(kv, cid, refs.customerId)) === null) {
      return reject(line, "customer_id", `Customer "${refs.customerId}" not found`);
    }
    if (refs.customerExternalId != null) {
      const ref = await kv.get<number>(keys.customerByExternalId(cid, refs.customerExternalId));
      if (ref.value === null) {
        return reject(line, "customer_external_id", `Customer with external_id "${refs.customerExternalId}" not found`);
      }
    }
    return null;
  }

  async #writeBonus(plan: PlannedBonus): Promise<RowResult> {
    const { store, actor, options } = this;
    const cid = actor.companyId;
    let customerId: number | null;
    if ("id" in plan.customer) customerId = (await getCustomer(store.kv, cid, plan.customer.id))?.id ?? null;
    else {
      const ref = await store.kv.get<number>(keys.customerByExternalId(cid, plan.customer.externalId));
      customerId = ref.value;
    }
    if (customerId === null) {
      return "id" in plan.customer
        ? reject(plan.line, "customer_id", `Customer "${plan.customer.id}" not found`)
        : reject(
          plan.line,
          "customer_external_id",
          `Customer with external_id "${plan.customer.externalId}" not found`,
        );
    }
    this.#touchBalance(plan.bonusId, customerId);
    // A balance an earlier row set (overwrite) takes no later row of the file: a re-run would set it again and
    // replay (not grant) the later credit, undoing it.
    let setBy = this.#overwrites.get(plan.bonusId);
    if (!setBy) this.#overwrites.set(plan.bonusId, setBy = new IdLines());
    const earlier = setBy.get(customerId);
    if (earlier !== 0 && earlier < plan.line) {
      return reject(
        plan.line,
        "id" in plan.customer ? "customer_id" : "customer_external_id",
        `Cannot import balance: line ${earlier} of this file sets this customer's balance in program ${plan.bonusId} ` +
          "(overwrite); a later row may not change it",
      );
    }
    if (plan.overwrite && earlier === 0) setBy.set(customerId, plan.line);
    if (plan.overwrite) {
      const record = await getBalanceRecord(store.kv, cid, { customerId, bonusId: plan.bonusId });
      this.#watch(record, store.clock());
      if (summarize(walletOf(record), store.clock(), options.settings.timeZone).balance === plan.amount) {
        return { line: plan.line, status: "unchanged" };
      }
    }
    // The program's rules are not at hand here: a written balance ends the hold (a re-run finds it unchanged and
    // leaves a record until its lots' first instant).
    this.#wrote(null, store.clock());
    if (options.dryRun) return { line: plan.line, status: "updated" };
    const result = await changeBonus(store, actor, {
      customer: { id: customerId },
      bonusId: plan.bonusId,
      amount: plan.amount,
      overwrite: plan.overwrite,
      comment: null,
      orderId: null,
      // A credit is granted once per file line: a re-run of the same file replays it instead.
      idempotencyKey: plan.overwrite || !options.fileKey ? null : `import:${options.fileKey}:${plan.line}`,
      timeZone: options.settings.timeZone,
    });
    return { line: plan.line, status: result.replayed ? "unchanged" : "updated" };
  }
}

interface PlannedCustomer {
  kind: "customer";
  line: number;
  patch: CustomerPatch;
  groupName: string | null | undefined;
  cardUid: string | null;
  cardBarcode: string | null;
  bonus: number | null;
  unique: {
    external_id: string | null;
    phone: string | null;
    email: string | null;
    card_uid: string | null;
    card_barcode: string | null;
  };
}

interface PlannedCard {
  kind: "card";
  line: number;
  lookup: CardLookup;
  change: Parameters<typeof saveCard>[2]["change"];
  refs: Parameters<typeof saveCard>[2]["refs"];
  unique: Record<string, string | null>;
}

interface PlannedBonus {
  kind: "bonus";
  line: number;
  customer: { id: number } | { externalId: string };
  bonusId: number;
  amount: number;
  overwrite: boolean;
  unique: Record<string, string | null>;
}

type Planned = PlannedCustomer | PlannedCard | PlannedBonus;

/** What a customer row is matched against, read for a whole batch at once. */
interface Prefetched {
  /** The customer holding each of the row's unique values. */
  holders: Map<MatchField, number>;
  existing: Customer | null;
  /** The card of the row's card_uid, and its id as the uid's index entry holds it. */
  card: Card | null;
  cardId: number | null;
  /** The card holding the row's card_barcode. */
  barcodeCardId: number | null;
  /** The matched customer's balance in the import's program. */
  balance: BalanceRecord | null;
}

/** What a row touches (records and unique values): two rows of a batch touching one go in one after the other. */
function touchKeys(plan: Planned, pre: Prefetched | undefined): string[] {
  const out: string[] = [];
  if (plan.kind === "customer") {
    for (const [f, v] of Object.entries(plan.unique)) if (v !== null) out.push(`${f}:${v}`);
    if (pre) {
      for (const id of pre.holders.values()) out.push(`customer:${id}`);
      if (pre.card?.customer_id != null) out.push(`customer:${pre.card.customer_id}`);
      if (pre.cardId !== null) out.push(`card:${pre.cardId}`);
      if (pre.barcodeCardId !== null) out.push(`card:${pre.barcodeCardId}`);
    }
  } else if (plan.kind === "card") {
    for (const [f, v] of Object.entries(plan.unique)) if (v !== null) out.push(`card_${f}:${v}`);
  } else {
    // A customer named by id and by external id in one file is one customer: such rows are not told apart here.
    out.push("id" in plan.customer ? `id:${plan.customer.id}` : `ext:${plan.customer.externalId}`);
  }
  return out;
}

function matchKey(cid: string, field: MatchField, value: string): Deno.KvKey {
  if (field === "phone") return keys.customerByPhone(cid, value);
  if (field === "email") return keys.customerByEmail(cid, value);
  return keys.customerByExternalId(cid, value);
}

/** Whether a stored customer holds a row's (normalised) unique value. */
function heldBy(c: Customer, field: MatchField, value: string): boolean {
  if (field === "email") return c.email !== null && emailKey(c.email) === value;
  return c[field] === value;
}

function duplicateReject(line: number, dup: Duplicate): RowResult {
  return { line, status: "rejected", field: dup.field, info: duplicateMessage(dup) };
}

function reject(line: number, field: string, info: string): RowResult {
  return { line, status: "rejected", field, info };
}

/** A row's error as a reject: the API's message and field; anything unexpected is rethrown (a bug, not a row). */
function rejectOf(line: number, e: unknown): RowResult {
  if (e instanceof AppError && e.status < 500) {
    const r = reject(line, e.field ?? "", e.message);
    // A 400 is the row's own values refused by the rules; a 404 or 409 is about the store.
    if (e.status === 400) ROW_ERRORS.add(r);
    return r;
  }
  throw e;
}

/** Rejects of a row's own values (rejectOf), which a re-run of the file gives again (the clock's aside: timed). */
const ROW_ERRORS = new WeakSet<RowResult>();

const BOOKKEEPING = new Set(["last_update_date", "last_update_by"]);

/** Whether two versions of a customer hold the same values (bookkeeping fields aside). */
function sameCustomer(a: Customer, b: Customer): boolean {
  for (const k of Object.keys(b) as (keyof Customer)[]) {
    if (!BOOKKEEPING.has(k) && a[k] !== b[k]) return false;
  }
  return true;
}

/** Fields whose checks depend on the clock (a date in the future is refused): a reject of them may not recur. */
const TIMED_FIELDS = new Set(["birth_date", "birth_day", "birth_month", "birth_year", "register_date"]);

/** Whether a reject is the clock's ("... is in the future", domain/dates.ts and domain/customer.ts). */
function timed(r: RowResult): boolean {
  return TIMED_FIELDS.has(r.field ?? "") && (r.info ?? "").includes("in the future");
}

/**
 * A group or card type by id as this run first read it from the store (not from the process's short-lived cache: a
 * rename made by another process just before the run must be seen, or a finished run's record would keep the stale
 * answer).
 */
async function entryOf(
  store: Store,
  cid: string,
  kind: "groups" | "card_types",
  id: number,
  names: Map<string, DirectoryEntry | null>,
): Promise<DirectoryEntry | null> {
  const key = `${kind}/${id}`;
  if (!names.has(key)) names.set(key, (await getEntries(store.kv, cid, kind, [id])).get(id) ?? null);
  return names.get(key)!;
}

/** Whether a stored card already holds everything a row would set. */
async function sameCard(
  store: Store,
  cid: string,
  card: Card,
  plan: PlannedCard,
  names: Map<string, DirectoryEntry | null>,
): Promise<boolean> {
  for (const [k, v] of Object.entries(plan.change)) {
    if (v !== undefined && (card as unknown as Record<string, unknown>)[k] !== v) return false;
  }
  const { refs } = plan;
  if (refs.typeId !== undefined && refs.typeId !== card.type_id) return false;
  if (refs.typeName !== undefined) {
    if (refs.typeName === null || card.type_id === null) return refs.typeName === null && card.type_id === null;
    const type = await entryOf(store, cid, "card_types", card.type_id, names);
    if (type?.name.toLowerCase() !== refs.typeName.toLowerCase()) return false;
  }
  if (refs.customerId !== undefined && refs.customerId !== card.customer_id) return false;
  if (refs.customerExternalId !== undefined) {
    if (refs.customerExternalId === null) return card.customer_id === null;
    const owner = await store.kv.get<number>(keys.customerByExternalId(cid, refs.customerExternalId));
    if (owner.value !== card.customer_id) return false;
  }
  return true;
}

/**
 * Imports rows a batch at a time: each batch's rows are checked against the file so far, matched and written
 * (several rows at once; each row's writes are atomic operations of the one commit path), and `onBatch` hears the
 * results. The report counts every row.
 */
export async function importRows(
  store: Store,
  actor: Actor,
  options: ImportOptions & {
    batches: AsyncIterable<ImportRow[]>;
    /** Whether the rows carry a balance (customers' bonus column): the program is resolved before the first row. */
    needsProgram?: boolean;
    onBatch?: (results: RowResult[]) => void | Promise<void>;
    /**
     * Resume by this key (the file's content hash and type): an earlier run of it that was interrupted is continued
     * after the last line of its last finished batch, with its counts; how far a run got is recorded after every
     * batch. A finished run leaves a record of its outcome instead, when nothing else changed the company while it
     * ran: a re-run with the same options and the company unchanged since then reports every row unchanged (and the
     * same rejects) without reading the batches. Not with dryRun.
     */
    checkpoint?: string;
    /** What else decides the rows (the reader's options: format, encoding, map...), kept with the finished run. */
    fingerprint?: string;
    /** Hears the line an interrupted earlier run is resumed after. */
    onResume?: (line: number) => void;
    /** Hears that the file was imported whole before (at `finishedAt`) and nothing has changed since. */
    onRepeat?: (finishedAt: number) => void;
    /**
     * Stops the import before the next batch once aborted (Ctrl-C): every batch written is whole, and the
     * checkpoint stays, so a re-run resumes after the last batch written.
     */
    signal?: AbortSignal;
  },
): Promise<ImportReport> {
  const cid = actor.companyId;
  const key = options.dryRun ? undefined : options.checkpoint;
  // The company's change counter before anything is read: the run's own commits are counted on its actor, so at
  // the end the difference tells whether anyone else changed the company meanwhile.
  const changesBefore = key === undefined ? 0n : await readChangeCount(store.kv, cid);
  const own: Actor = { ...actor, commits: { n: 0 } };
  const optionsId = JSON.stringify({
    type: options.type,
    bonusId: options.bonusId ?? null,
    match: options.match ?? null,
    settings: { defaultCountryCode: options.settings.defaultCountryCode, timeZone: options.settings.timeZone },
    needsProgram: options.needsProgram ?? null,
    // A balances file's credits are granted once per file key: another file key may grant them again.
    fileKey: options.type === "bonuses" ? options.fileKey ?? null : null,
    fingerprint: options.fingerprint ?? null,
    // "Today" decides some rows (a birth date in the future is refused): a repeat on another day reads them again.
    today: localDate(store.clock(), options.settings.timeZone),
  });
  const found = key === undefined ? null : await getCheckpoint(store.kv, cid, key);
  if (found !== null && "finished" in found) {
    const holds = found.valid_until == null || store.clock() < found.valid_until;
    if (found.options === optionsId && found.changes === String(changesBefore) && holds) {
      const rows = found.created + found.updated + found.unchanged;
      options.onRepeat?.(found.updated_at);
      return {
        created: 0,
        updated: 0,
        unchanged: rows,
        rejected: found.rejected,
        skipped: found.skipped,
        rejects: [...found.rejects],
      };
    }
  }
  // An interrupted run is resumed only with the options it ran with: other options start over (and compare every
  // row), since the rows it finished were decided by its options.
  const saved = found !== null && !("finished" in found) && (found.options ?? optionsId) === optionsId ? found : null;
  const session = new ImportSession(store, own, options);
  await session.prepare(options.needsProgram ?? (options.type === "bonuses" && options.bonusId != null));
  const report = emptyReport();
  const resumeAfter = saved?.line ?? 0;
  if (saved) {
    Object.assign(report, { ...saved, rejects: [...saved.rejects] });
    delete (report as Partial<ImportCheckpoint>).line;
    delete (report as Partial<ImportCheckpoint>).options;
    delete (report as Partial<ImportCheckpoint>).updated_at;
    options.onResume?.(saved.line);
  }
  let lastLine = resumeAfter;
  let handedOn = false;
  try {
    for await (const rows of options.batches) {
      if (options.signal?.aborted) break;
      // Rows an earlier run finished are only parsed, so duplicates of them later in the file are still found.
      const done = resumeAfter === 0 ? [] : rows.filter((r) => r.line <= resumeAfter);
      if (done.length > 0) await session.seed(done);
      const rest = done.length === 0 ? rows : rows.filter((r) => r.line > resumeAfter);
      if (rest.length === 0) continue;
      // Settled before anything of the batch is written (the program of a first bonus value): a setup error here
      // leaves the batch untouched.
      if (session.programId === null && options.type === "customers") {
        if (rest.some((r) => !r.error && (r.values.bonus ?? "").trim() !== "")) await session.prepare(true);
      }
      handedOn = true;
      const results = await session.run(rest);
      lastLine = rest.at(-1)!.line;
      for (const r of results) countResult(report, r);
      if (key !== undefined) {
        await setCheckpoint(store.kv, cid, key, {
          ...report,
          line: lastLine,
          options: optionsId,
          updated_at: store.clock(),
        });
      }
      await options.onBatch?.(results);
    }
  } catch (e) {
    // A file or setup error before any row was handed on writes nothing: the caller's usage error (exit 2). After
    // rows went in (or would have, in a dry run) it ends the import with them counted and one file-level reject.
    if (!handedOn || !(e instanceof AppError) || e.status >= 500) throw e;
    countResult(report, {
      line: lastLine + 1,
      status: "rejected",
      field: e.field ?? "file",
      info: `${e.message} (the import stopped here: the rows before line ${lastLine + 1} are in)`,
    });
    return report;
  }
  // Stopped (the batches may have ended early because of it): the checkpoint stays for the re-run.
  if (key === undefined || options.signal?.aborted) return report;
  // Finished. The outcome is kept for a re-run only when this run read the whole file itself (not a resume) and
  // the company's counter moved by exactly this run's own commits: the company is then the file applied.
  const changesAfter = await readChangeCount(store.kv, cid);
  const alone = changesAfter - changesBefore === BigInt(own.commits!.n);
  const validUntil = session.validUntil;
  if (
    resumeAfter === 0 && alone && session.fixedPoint && validUntil > store.clock() &&
    report.rejects.length === report.rejected
  ) {
    await setImportDone(store.kv, cid, key, {
      finished: true,
      changes: String(changesAfter),
      options: optionsId,
      valid_until: Number.isFinite(validUntil) ? validUntil : null,
      ...report,
      updated_at: store.clock(),
    });
  } else await clearCheckpoint(store.kv, cid, key);
  return report;
}

/** Records a finished import run of a company (the back office lists the latest); with `id`, adds to that run. */
export async function recordImport(
  store: Store,
  actor: Actor,
  run: Omit<ImportRun, "id">,
  options: { id?: string } = {},
): Promise<ImportRun> {
  return await saveImportRun(store.kv, actor.companyId, run, options);
}

/** The latest import runs of a company, newest first. */
export async function listImports(
  store: Store,
  companyId: string,
  options: { limit?: number } = {},
): Promise<ImportRun[]> {
  return await listImportRuns(store.kv, companyId, { limit: options.limit ?? 20 });
}
