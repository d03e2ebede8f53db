import { Hono } from "hono";
import {
  CARD_LOOKUP_PARSERS,
  cardFields,
  cardView,
  CREATE_SWITCH,
  READ_ONLY_CARD_FIELDS,
  splitCardFields,
} from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import { refused } from "../domain/fields.ts";
import { cardDeleteReply, cardWriteReply } from "../domain/replies.ts";
import type { Actor } from "../domain/audit.ts";
import { cardsOf, deleteCard, saveCard } from "../usecases/mod.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply, type ReplyValue } from "./reply.ts";
import { input } from "./request.ts";

/** Why insertCard refuses the parameters that only find a card. */
const INSERT_ONLY_CREATES = "insertCard always creates a new card; use updateCard to change one";

/**
 * Card endpoints under /api/customer: `updateCard` finds a card by card_id, uid, external_id, card_barcode (in that
 * order) and changes it, or creates it with create_if_not_exist=1; `insertCard` always creates; `deleteCard` deletes.
 */
export function cardRoutes(deps: Deps) {
  const { store } = deps;
  const fields = { ...cardFields(deps.config), ...READ_ONLY_CARD_FIELDS };

  const updateInput = input({
    query: { ...CARD_LOOKUP_PARSERS, ...CREATE_SWITCH },
    fields,
    summary: "Change a card, or create it",
    description: "Finds the card by card_id, uid, external_id, card_barcode (the first that finds one wins) and " +
      "changes it; with create_if_not_exist=1 creates it when none is found. Entering BLOCKED stamps block_date, " +
      "the first ACTIVE stamps activate_date.",
    reply: cardWriteReply,
    tags: ["card"],
  });
  const insertInput = input({
    query: {
      uid: CARD_LOOKUP_PARSERS.uid.describe("The new card's number; generated when not given."),
      external_id: CARD_LOOKUP_PARSERS.external_id.describe("The new card's external id."),
      card_id: refused(INSERT_ONLY_CREATES),
      card_barcode: refused(INSERT_ONLY_CREATES),
      create_if_not_exist: refused(INSERT_ONLY_CREATES),
    },
    fields,
    summary: "Create a card",
    description: "Always creates a new card (status NEW); uid and barcode are generated when not given.",
    reply: cardWriteReply,
    tags: ["card"],
  });
  const deleteInput = input({
    query: CARD_LOOKUP_PARSERS,
    fields: {},
    summary: "Delete a card",
    description: "Finds the card as updateCard does and deletes it.",
    reply: cardDeleteReply,
    tags: ["card"],
  });

  return new Hono<AppEnv>()
    .on(["GET", "POST"], "/updateCard", requireWrite, updateInput, async (c) => {
      const { query, fields } = c.var.input;
      const { create_if_not_exist, ...lookup } = query;
      const result = await saveCard(store, actorOf(c.var.caller), {
        mode: "update",
        lookup,
        create: create_if_not_exist === true,
        ...splitCardFields(fields),
      });
      return reply(c, { success: 1, card_id: result.card.id, isnew: result.isNew ? 1 : 0 });
    })
    .on(["GET", "POST"], "/insertCard", requireWrite, insertInput, async (c) => {
      const { query, fields } = c.var.input;
      const result = await saveCard(store, actorOf(c.var.caller), {
        mode: "insert",
        lookup: { uid: query.uid, external_id: query.external_id },
        ...splitCardFields(fields),
      });
      return reply(c, { success: 1, card_id: result.card.id, isnew: 1 });
    })
    .on(["GET", "POST"], "/deleteCard", requireWrite, deleteInput, async (c) => {
      const card = await deleteCard(store, actorOf(c.var.caller), c.var.input.query);
      return reply(c, { success: 1, card_id: card.id });
    });
}

/** The `cards` element of customer replies: every card of each customer, its type named, in card id order. */
export async function cardsExtra(
  deps: Deps,
  options: { actor: Actor; customers: Customer[] },
): Promise<Map<number, ReplyValue>> {
  const { customers } = options;
  const byCustomer = await cardsOf(deps.store, options.actor, {
    customerIds: customers.map((c) => c.id),
    maxAgeMs: deps.config.directoryCacheMs,
  });
  const out = new Map<number, ReplyValue>();
  for (const customer of customers) {
    const cards = byCustomer.get(customer.id) ?? [];
    out.set(
      customer.id,
      cards.map(({ card, typeName }) =>
        cardView(card, {
          typeName,
          customerExternalId: customer.external_id,
          timeZone: deps.config.timeZone,
        })
      ),
    );
  }
  return out;
}
