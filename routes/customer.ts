import { Hono } from "hono";
import {
  applyCustomerPatch,
  type Customer,
  customerFieldParsers,
  customerView,
  listForFilter,
  matchesPresence,
  READ_ONLY_CUSTOMER_FIELDS,
} from "../domain/customer.ts";
import { localDate } from "../domain/dates.ts";
import { emailKey, normalizeEmail } from "../domain/email.ts";
import { ValidationError } from "../domain/errors.ts";
import { bool, id, invalid, nonEmpty, text } from "../domain/fields.ts";
import { customerListReply, customerWriteReply } from "../domain/replies.ts";
import { normalizePhone } from "../domain/phone.ts";
import { DEFAULT_PAGE_SIZE, encodeCursor, PAGING_PARSERS } from "../domain/paging.ts";
import {
  countList,
  findCustomerId,
  getCustomer,
  pageAfter,
  pageList,
  streamList,
  upsertCustomer,
} from "../storage/customers.ts";
import { getEntriesCached } from "../storage/directories.ts";
import { requireWrite } from "./auth.ts";
import type { AppEnv, Deps } from "./context.ts";
import { reply, type ReplyBody, type ReplyValue, streamReply } from "./reply.ts";
import { input } from "./request.ts";

/** Lists up to this long are answered in one piece; longer unpaged lists are streamed. */
const STREAM_THRESHOLD = 1000;

/** Adds extra elements (cards, bonuses) to customers of a reply, keyed by customer id. */
export type CustomerExtra = (
  deps: Deps,
  options: { companyId: string; customers: Customer[] },
) => Promise<Map<number, ReplyValue>>;

/** Optional parts of a customer reply, each switched on by a boolean query parameter. */
export type CustomerExtras = Record<string, CustomerExtra>;

/** The customer sub-app: reading (`GET /`) and adding or changing (`/update`). */
export function customerRoutes(deps: Deps, extras: CustomerExtras = {}) {
  const { kv, config } = deps;
  const phone = (raw: string, field: string) => normalizePhone(raw, field, config.defaultCountryCode);
  const extraSwitches = Object.fromEntries(Object.keys(extras).map((k) => [k, bool]));

  const readInput = input({
    query: {
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
      with_phone: bool.describe("1: only customers with a phone; 0: only those without."),
      with_email: bool.describe("1: only customers with an email; 0: only those without."),
      ...PAGING_PARSERS,
      ...extraSwitches,
    },
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

  /** Renders customers with their group names and the extras asked for. */
  async function views(companyId: string, customers: Customer[], wanted: string[]): Promise<ReplyBody[]> {
    const groupIds = customers.flatMap((c) => c.group_id === null ? [] : [c.group_id]);
    const [groups, ...extraMaps] = await Promise.all([
      getEntriesCached(kv, companyId, { kind: "groups", ids: groupIds, maxAgeMs: config.directoryCacheMs }),
      ...wanted.map((name) => extras[name]!(deps, { companyId, customers })),
    ]);
    const today = localDate(deps.now(), config.timeZone);
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

  return new Hono<AppEnv>()
    .get("/", readInput, async (c) => {
      const q = c.var.input.query;
      const companyId = c.var.caller.companyId;
      const wanted = Object.keys(extras).filter((name) => (q as Record<string, unknown>)[name] === true);
      const paged = q.page != null || q.page_size != null;
      if (q.cursor != null && q.page != null) {
        throw invalid("cursor", "", "use either page or cursor, not both");
      }
      const pageSize = q.page_size ?? DEFAULT_PAGE_SIZE;
      const page = q.page ?? 1;
      const head = { success: 1, type: "customer" };

      // Point lookups: at most one customer, found through a unique index.
      if (q.id != null || q.external_id != null || q.phone != null || q.email != null) {
        // Every given key must name the same customer (AND); null stands for "no such customer".
        const lookups: (number | Promise<number | null>)[] = [];
        if (q.id != null) lookups.push(q.id);
        if (q.external_id != null) lookups.push(findCustomerId(kv, companyId, "external_id", q.external_id));
        if (q.phone != null) lookups.push(findCustomerId(kv, companyId, "phone", q.phone));
        if (q.email != null) lookups.push(findCustomerId(kv, companyId, "email", q.email));
        const ids = new Set(await Promise.all(lookups));
        const onlyId = ids.size === 1 ? [...ids][0] : null;
        const found = onlyId != null ? await getCustomer(kv, companyId, onlyId) : null;
        const all = found && matchesPresence(found, q.with_phone, q.with_email) ? [found] : [];
        const shown = paged ? all.slice((page - 1) * pageSize, page * pageSize) : all;
        const customers = await views(companyId, shown, wanted);
        const tail: ReplyBody = paged ? { page, page_size: pageSize, total_count: all.length } : {};
        return reply(c, { ...head, count: customers.length, customers, ...tail });
      }

      const list = listForFilter(q.with_phone, q.with_email);
      const total = await countList(kv, companyId, list);
      const keep = (cs: Customer[]) =>
        list === "all" ? cs : cs.filter((cu) => matchesPresence(cu, q.with_phone, q.with_email));

      if (q.cursor != null) {
        const rows = keep(await pageAfter(kv, companyId, { list, afterId: q.cursor, limit: pageSize }));
        const customers = await views(companyId, rows, wanted);
        const last = rows.at(-1);
        return reply(c, {
          ...head,
          count: customers.length,
          customers,
          page_size: pageSize,
          total_count: total,
          next_cursor: rows.length === pageSize && last ? encodeCursor(last.id) : null,
        });
      }
      if (paged) {
        const offset = (page - 1) * pageSize;
        const rows = offset >= total ? [] : keep(await pageList(kv, companyId, { list, offset, limit: pageSize }));
        const customers = await views(companyId, rows, wanted);
        const last = rows.at(-1);
        return reply(c, {
          ...head,
          count: customers.length,
          customers,
          page,
          page_size: pageSize,
          total_count: total,
          next_cursor: rows.length === pageSize && last && offset + pageSize < total ? encodeCursor(last.id) : null,
        });
      }
      if (total <= STREAM_THRESHOLD) {
        const rows = keep(await pageList(kv, companyId, { list, offset: 0, limit: total }));
        const customers = await views(companyId, rows, wanted);
        return reply(c, { ...head, count: customers.length, customers });
      }
      const batches = async function* () {
        for await (const rows of streamList(kv, companyId, { list, limit: total })) {
          yield await views(companyId, keep(rows), wanted);
        }
      };
      return streamReply(c.var.format, { head: { ...head, count: total }, list: "customers", items: batches() });
    })
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
      const now = deps.now();
      const userId = c.var.caller.userId;
      const today = localDate(now, config.timeZone);
      const result = await upsertCustomer(kv, c.var.caller.companyId, {
        id: query.id ?? undefined,
        externalId: query.id == null ? query.external_id ?? undefined : undefined,
        create: query.create_if_not_exist ?? true,
        groupId: group_id,
        groupName: group_id !== undefined ? undefined : group_name,
        now,
        mutex: deps.mutex,
        decide: (existing, context) => applyCustomerPatch(existing, patch, { ...context, now, userId, today }),
      });
      return reply(c, { success: 1, id: result.customer.id, isnew: result.isNew ? 1 : 0 });
    });
}
