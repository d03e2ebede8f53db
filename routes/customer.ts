import { type Context, Hono } from "hono";
import { CARD_LOOKUP_PARSERS } from "../domain/card.ts";
import { type Customer, customerFieldParsers, customerView, READ_ONLY_CUSTOMER_FIELDS } from "../domain/customer.ts";
import { type CalendarDate, localDate } from "../domain/dates.ts";
import { emailKey, normalizeEmail } from "../domain/email.ts";
import { ValidationError } from "../domain/errors.ts";
import { bool, type FieldParser, id, nonEmpty, type Parsed, parsersOf, text } from "../domain/fields.ts";
import { customerListReply, customerWriteReply } from "../domain/replies.ts";
import { normalizePhone } from "../domain/phone.ts";
import { DEFAULT_PAGE_SIZE, encodeCursor, pageWithCursor, PAGING_PARSERS } from "../domain/paging.ts";
import {
  cachedGroupNames,
  type CustomerLookup,
  findCustomerBy,
  findCustomers,
  groupNames,
  saveCustomer,
} from "../usecases/customers.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import type { Actor } from "../domain/audit.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Caller, type Deps } from "./context.ts";
import { reply, type ReplyBody, type ReplyValue, streamReply } from "./reply.ts";
import { input } from "./request.ts";
import { Gate } from "./gate.ts";

/** Pages of customers one process builds at once (the rest queue): bounds memory under many concurrent pages. */
const PAGES_AT_ONCE = 4;
/**
 * Light pages (at most LIGHT_PAGE_ROWS customers, no extras: a list screen) build in a gate of their own, more at
 * once: each holds a few hundred KB, and behind the 4 slots of the heavy pages they queued for most of a busy till's
 * latency. 16 once card creates go together (storage/cards.ts): at 8 the pages of 50 were the mixed load's tail
 * (in-server p50 about 80 ms), at 16 about 30 ms; before, letting pages in faster only moved the queue to the card
 * creates (docs/performance.md).
 */
const LIGHT_PAGES_AT_ONCE = 16;
const LIGHT_PAGE_ROWS = 50;
/** No extras asked for. */
const NO_EXTRAS: string[] = [];

/** Adds extra elements (cards, bonuses) to customers of a reply, keyed by customer id. */
export type CustomerExtra = (
  deps: Deps,
  options: { actor: Actor; customers: Customer[] },
) => Promise<Map<number, ReplyValue>>;

/** Optional parts of a customer reply, each switched on by a boolean query parameter. */
export type CustomerExtras = Record<string, CustomerExtra>;

/**
 * A till's point lookup (`GET /api/customer?phone=...`) answered on its own: the app's door (routes/door.ts) takes
 * it before the router, replying as the generic path does.
 */
export interface PointLookups {
  /** The lookup a query parameter makes of its value; undefined for another parameter or a value its rule refuses. */
  parse(name: string, raw: string): CustomerLookup | undefined;
  /** The reply to that lookup alone. */
  answer(caller: Caller, lookup: CustomerLookup): Promise<ReplyBody>;
}

/**
 * The customer sub-app: reading (`GET /`) and adding or changing (`/update`), and the point lookups on their own
 * for the app's door.
 */
export function customerRoutes(deps: Deps, extras: CustomerExtras = {}) {
  const { store, config } = deps;
  const phone = (raw: string, field: string) => normalizePhone(raw, field, config.defaultCountryCode);
  const extraSwitches = Object.fromEntries(Object.keys(extras).map((k) => [k, bool]));

  /** The point lookups: each finds at most one customer through a unique index. */
  const lookups = {
    id: nonEmpty(id).describe("The customer with this id."),
    external_id: nonEmpty(text(100)).describe("The customer with this id in an outside system (exact)."),
    phone: nonEmpty(phone).meta({
      description: "The customer with this phone, in any writing (8 (900) 123-45-67).",
      example: "+79001234567",
    }),
    email: nonEmpty((raw: string, field: string) => emailKey(normalizeEmail(raw, field))).meta({
      description: "The customer with this email, any case.",
      example: "sergey@example.com",
    }),
    card_barcode: CARD_LOOKUP_PARSERS.card_barcode.describe("The owner of the card with this barcode."),
    uid: CARD_LOOKUP_PARSERS.uid.describe("The owner of the card with this number."),
  };
  const lookupParsers: Record<string, FieldParser<unknown>> = parsersOf(lookups);

  const readQuery = {
    ...lookups,
    with_phone: bool.describe("1: only customers with a phone; 0: only those without."),
    with_email: bool.describe("1: only customers with an email; 0: only those without."),
    ...PAGING_PARSERS,
    ...extraSwitches,
  };
  const readInput = input({
    query: readQuery,
    fields: {},
    summary: "Find customers",
    description: "Filters combine with AND; without filters, every customer. Without paging, up to 1000 customers " +
      "come in one piece and longer lists are streamed. `cards=1` and `bonuses=1` add each customer's cards and " +
      "balances.",
    reply: customerListReply,
  });

  const updateInput = input({
    query: {
      id: nonEmpty(id).describe("Change the customer with this id."),
      external_id: nonEmpty(text(100)).describe(
        "Change the customer with this external id (with id: set it), or create one with it.",
      ),
      create_if_not_exist: bool.describe("0: refuse (404) instead of creating when the customer is not found."),
    },
    fields: { ...customerFieldParsers(config), ...READ_ONLY_CUSTOMER_FIELDS },
    summary: "Create or change a customer",
    description: "Without id or external_id, creates a customer. Absent fields stay as they are; empty ones are " +
      "cleared. Phone, email and external_id are unique per company (409).",
    reply: customerWriteReply,
  });

  // Every reply asks for today's date (for ages): worked out once per second of the clock (a date changes on a
  // whole second), a copy handed to each reply.
  let todaySecond = NaN;
  let today: CalendarDate = { year: 0, month: 0, day: 0 };
  const todayAt = (ms: number): CalendarDate => {
    const second = Math.floor(ms / 1000);
    if (second !== todaySecond) {
      today = localDate(ms, config.timeZone);
      todaySecond = second;
    }
    return { ...today };
  };

  /** Renders customers with their group names and the extras asked for. */
  async function views(actor: Actor, customers: Customer[], wanted: string[]): Promise<ReplyBody[]> {
    const [groups, ...extraMaps] = wanted.length === 0
      ? [await groupNames(store, actor, { customers, maxAgeMs: config.directoryCacheMs })]
      : await Promise.all([
        groupNames(store, actor, { customers, maxAgeMs: config.directoryCacheMs }),
        ...wanted.map((name) => extras[name]!(deps, { actor, customers })),
      ]);
    return viewsOf(customers, groups, wanted, extraMaps);
  }

  /** The views of customers, given their groups and each wanted extra's map of customer id to values. */
  function viewsOf(
    customers: Customer[],
    groups: Map<number, DirectoryEntry>,
    wanted: string[],
    extraMaps: Map<number, ReplyValue>[],
  ): ReplyBody[] {
    const today = todayAt(store.clock());
    return customers.map((c) => {
      const view: ReplyBody = customerView(c, {
        groupName: c.group_id === null ? null : groups.get(c.group_id)?.name ?? null,
        timeZone: config.timeZone,
        today,
      });
      wanted.forEach((name, i) => {
        view[name] = extraMaps[i]!.get(c.id) ?? [];
      });
      return view;
    });
  }

  /** Pages (and short whole lists) being built at once; point lookups and streamed lists do not wait here. */
  const pages = new Gate(PAGES_AT_ONCE);
  const lightPages = new Gate(LIGHT_PAGES_AT_ONCE);

  /** Answers a read: a point lookup, a page, a cursor page or the whole (streamed) list. */
  function answer(c: Context<AppEnv>, q: Parsed<typeof readQuery>): Promise<Response> {
    const lookup = q.id != null || q.external_id != null || q.phone != null || q.email != null ||
      q.card_barcode != null || q.uid != null;
    const paged = q.page != null || q.page_size != null || q.cursor != null;
    if (lookup || !paged) return build(c, q);
    const light = (q.page_size ?? DEFAULT_PAGE_SIZE) <= LIGHT_PAGE_ROWS &&
      Object.keys(extras).every((name) => (q as Record<string, unknown>)[name] !== true);
    return (light ? lightPages : pages).run(() => build(c, q));
  }

  async function build(c: Context<AppEnv>, q: Parsed<typeof readQuery>): Promise<Response> {
    const actor = actorOf(c.get("caller"));
    const wanted = Object.keys(extras).filter((name) => (q as Record<string, unknown>)[name] === true);
    const paged = q.page != null || q.page_size != null;
    if (q.cursor != null && q.page != null) throw pageWithCursor();
    const pageSize = q.page_size ?? DEFAULT_PAGE_SIZE;
    const page = q.page ?? 1;
    const head = { success: 1, type: "customer" };
    const lookup = q.id != null || q.external_id != null || q.phone != null || q.email != null ||
      q.card_barcode != null || q.uid != null;
    const found = await findCustomers(store, actor, {
      id: q.id ?? undefined,
      externalId: q.external_id ?? undefined,
      phone: q.phone ?? undefined,
      email: q.email ?? undefined,
      cardBarcode: q.card_barcode ?? undefined,
      uid: q.uid ?? undefined,
      withPhone: q.with_phone,
      withEmail: q.with_email,
      pageSize,
      afterId: lookup ? undefined : q.cursor ?? undefined,
      page: lookup || q.cursor != null || !paged ? undefined : page,
    });

    if (found.kind === "stream") {
      const batches = async function* () {
        for await (const rows of found.batches) yield await views(actor, rows, wanted);
      };
      return streamReply(c.get("format"), {
        head: { ...head, count: found.total },
        list: "customers",
        items: batches(),
      });
    }
    if (lookup) {
      // Point lookups: at most one customer, found through a unique index.
      const all = found.customers;
      const shown = paged ? all.slice((page - 1) * pageSize, page * pageSize) : all;
      const customers = await views(actor, shown, wanted);
      const tail: ReplyBody = paged ? { page, page_size: pageSize, total_count: all.length } : {};
      return reply(c, { ...head, count: customers.length, customers, ...tail });
    }
    if (found.kind === "lookup") {
      const customers = await views(actor, found.customers, wanted);
      return reply(c, { ...head, count: customers.length, customers });
    }
    const rows = found.customers;
    const customers = await views(actor, rows, wanted);
    const last = rows.at(-1);
    return reply(c, {
      ...head,
      count: customers.length,
      customers,
      ...(q.cursor != null ? {} : { page }),
      page_size: pageSize,
      total_count: found.total,
      next_cursor: found.more && last ? encodeCursor(last.id) : null,
    });
  }

  /**
   * One point lookup alone (the door's request): the reply `build` gives for it (no paging, no extras), with the
   * group's name from the cache at once when it is there.
   */
  async function lookupOne(caller: Caller, lookup: CustomerLookup): Promise<ReplyBody> {
    const actor = actorOf(caller);
    const found = await findCustomerBy(store, actor, lookup);
    if (found === null) return { success: 1, type: "customer", count: 0, customers: [] };
    const groups = cachedGroupNames(store, actor, [found]);
    const customers = groups ? viewsOf([found], groups, NO_EXTRAS, []) : await views(actor, [found], NO_EXTRAS);
    return { success: 1, type: "customer", count: customers.length, customers };
  }

  const point: PointLookups = {
    parse(name, raw) {
      if (!Object.hasOwn(lookupParsers, name)) return undefined;
      try {
        return { field: name, value: lookupParsers[name]!(raw, name) } as CustomerLookup;
      } catch {
        return undefined;
      }
    },
    answer: lookupOne,
  };

  const routes = new Hono<AppEnv>()
    .get("/", readInput, (c) => answer(c as unknown as Context<AppEnv>, c.get("input").query))
    .on(["GET", "POST"], "/update", requireWrite, updateInput, async (c) => {
      const { query, fields } = c.var.input;
      const { group_id, group_name, ...patch } = fields;
      if (query.id != null && query.external_id != null) {
        // Found by id, so the query's external_id is not a lookup: it sets the field, as GET-only clients expect.
        if (patch.external_id !== undefined) {
          throw new ValidationError("external_id", 'Parameter "external_id" is given more than once');
        }
        patch.external_id = query.external_id;
      }
      const result = await saveCustomer(store, actorOf(c.var.caller), {
        id: query.id ?? undefined,
        externalId: query.id == null ? query.external_id ?? undefined : undefined,
        create: query.create_if_not_exist ?? true,
        groupId: group_id,
        groupName: group_name,
        patch,
        timeZone: config.timeZone,
      });
      return reply(c, { success: 1, id: result.customer.id, isnew: result.isNew ? 1 : 0 });
    });
  return { routes, point };
}
