import { Hono } from "hono";
import { auditValue, decodeHistoryCursor, encodeHistoryCursor, type HistoryPosition } from "../domain/audit.ts";
import { CARD_LOOKUP_PARSERS } from "../domain/card.ts";
import { MAX_EXTERNAL_ID } from "../domain/customer.ts";
import { formatDateTime } from "../domain/dates.ts";
import { ValidationError } from "../domain/errors.ts";
import { field, id, int, invalid, nonEmpty, text } from "../domain/fields.ts";
import { historyReply } from "../domain/replies.ts";
import { z } from "zod";
import { MAX_PAGE_SIZE, pageWithCursor } from "../domain/paging.ts";
import {
  cardHistory,
  customerHistory,
  type HistoryPage,
  type HistoryPaging,
  type PositionedEntry,
} from "../usecases/mod.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply, type ReplyBody } from "./reply.ts";
import { input } from "./request.ts";

/** Audit entries per history page when the request does not say. */
export const DEFAULT_AUDIT_PAGE_SIZE = 50;

const historyCursor = field<HistoryPosition>((raw, name) => {
  const position = raw.trim() === "" ? null : decodeHistoryCursor(raw);
  if (position === null) throw invalid(name, raw, "not a cursor this service gave out");
  return position;
}, {
  wire: z.string().regex(/^[A-Za-z0-9+/]+$/),
  description: "Continue after the last entry of a previous page (its next_cursor); not with page.",
  example: encodeHistoryCursor({ at: 1_700_000_000_000, order: "0" }),
});

/** Paging parameters of a history: page and page_size, or cursor. */
const HISTORY_PAGING = {
  page: int(1, 1_000_000_000).describe("Page number, from 1."),
  page_size: int(1, MAX_PAGE_SIZE).describe(`Entries per page (default ${DEFAULT_AUDIT_PAGE_SIZE}).`),
  cursor: historyCursor,
};

function paging(q: { page?: number | null; page_size?: number | null; cursor?: HistoryPosition }): HistoryPaging {
  if (q.cursor !== undefined && q.page != null) throw pageWithCursor();
  const pageSize = q.page_size ?? DEFAULT_AUDIT_PAGE_SIZE;
  return q.cursor !== undefined ? { page: null, before: q.cursor, pageSize } : { page: q.page ?? 1, pageSize };
}

/** Renders one audit entry: when, who, what, and each changed field with its old and new value. */
function entryView(row: PositionedEntry, timeZone: string): ReplyBody {
  const { entry } = row;
  const date = (ms: number) => formatDateTime(ms, timeZone);
  return {
    date: date(entry.at),
    actor: entry.actor,
    user_id: entry.user_id,
    entity: entry.entity,
    entity_id: entry.entity_id,
    action: entry.action,
    changes: entry.changes.map((c) => ({
      field: c.field,
      old: auditValue(c.field, c.old, date),
      new: auditValue(c.field, c.new, date),
    })),
  };
}

/**
 * History endpoints: `GET /api/customer/history` (a customer's changes and balance changes) and
 * `GET /api/card/history`, newest first, by page or cursor, in JSON or XML.
 */
export function historyRoutes(deps: Deps) {
  const { store, config } = deps;
  const customerInput = input({
    query: {
      customer_id: nonEmpty(id).describe("The customer, by id (wins over customer_external_id)."),
      customer_external_id: nonEmpty(text(MAX_EXTERNAL_ID)).describe("The customer, by external id."),
      ...HISTORY_PAGING,
    },
    fields: {},
    summary: "A customer's audit trail",
    description: "Every change to the customer and to its balances, newest first: who, when, and each changed " +
      "field's old and new value. Entries are kept AUDIT_RETENTION_DAYS.",
    reply: historyReply("customer_id"),
    tags: ["history"],
  });
  const cardInput = input({
    query: {
      card_id: CARD_LOOKUP_PARSERS.card_id.describe("The card, by id (also once deleted; wins over uid)."),
      uid: CARD_LOOKUP_PARSERS.uid.describe("The card holding this number now."),
      ...HISTORY_PAGING,
    },
    fields: {},
    summary: "A card's audit trail",
    description: "Every change to the card, newest first, including its deletion.",
    reply: historyReply("card_id"),
    tags: ["history"],
  });
  const render = (page: HistoryPage, extra: ReplyBody, p: HistoryPaging): ReplyBody => {
    const history = page.entries.map((row) => entryView(row, config.timeZone));
    return {
      success: 1,
      type: "history",
      ...extra,
      count: history.length,
      history,
      ...(p.page === null ? {} : { page: p.page }),
      page_size: p.pageSize,
      next_cursor: page.next === null ? null : encodeHistoryCursor(page.next),
    };
  };
  return new Hono<AppEnv>()
    .get("/customer/history", customerInput, async (c) => {
      const q = c.var.input.query;
      const p = paging(q);
      const customer = q.customer_id != null
        ? { id: q.customer_id }
        : q.customer_external_id != null
        ? { externalId: q.customer_external_id }
        : null;
      if (customer === null) {
        throw new ValidationError("customer_id", `Parameter "customer_id" or "customer_external_id" is required`);
      }
      const page = await customerHistory(store, actorOf(c.var.caller), { customer, paging: p });
      return reply(c, render(page, { customer_id: page.entityId }, p));
    })
    .get("/card/history", cardInput, async (c) => {
      const q = c.var.input.query;
      const p = paging(q);
      if (q.card_id == null && q.uid == null) {
        throw new ValidationError("card_id", `Parameter "card_id" or "uid" is required`);
      }
      const lookup = q.card_id != null ? { card_id: q.card_id } : { uid: q.uid! };
      const page = await cardHistory(store, actorOf(c.var.caller), { lookup, paging: p });
      return reply(c, render(page, { card_id: page.entityId }, p));
    });
}
