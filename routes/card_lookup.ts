import { Hono } from "hono";
import { balanceView } from "../domain/bonus.ts";
import { CARD_LOOKUP_PARSERS, cardView } from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import { bool } from "../domain/fields.ts";
import { cardLookupReply } from "../domain/replies.ts";
import { cardAtTill } from "../usecases/mod.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply, type ReplyBody } from "./reply.ts";
import { input } from "./request.ts";

/** The owner summary a till shows: who the customer is and their group, without the rest of the record. */
function ownerView(owner: Customer, groupName: string | null): ReplyBody {
  return {
    id: owner.id,
    external_id: owner.external_id,
    fname: owner.fname,
    lname: owner.lname,
    mname: owner.mname,
    phone: owner.phone,
    email: owner.email,
    group_id: owner.group_id,
    group_name: owner.group_id === null ? null : groupName,
  };
}

/**
 * The card at the till: `GET /api/card` finds a card by card_id, uid, external_id, card_barcode (the first that
 * finds one wins) and shows it with its owner and, with `bonuses=1`, the owner's balances.
 */
export function cardLookupRoutes(deps: Deps) {
  const { store, config } = deps;
  const lookupInput = input({
    query: {
      ...CARD_LOOKUP_PARSERS,
      bonuses: bool.describe("1: add the owner's balance in every bonus program."),
    },
    fields: {},
    summary: "Find a card with its owner and balances",
    description: "Finds the card by card_id, uid, external_id, card_barcode (the first that finds one wins) and " +
      "answers the card, its owner's summary (empty for a card without an owner) and, with bonuses=1, the " +
      "owner's balances as `GET /api/customer?bonuses=1` shows them. An unknown card is 404.",
    reply: cardLookupReply,
    tags: ["card"],
  });

  return new Hono<AppEnv>()
    .get("/", lookupInput, async (c) => {
      const { bonuses, ...lookup } = c.var.input.query;
      const found = await cardAtTill(store, actorOf(c.var.caller), {
        lookup,
        bonuses: bonuses === true,
        maxAgeMs: config.directoryCacheMs,
        timeZone: config.timeZone,
      });
      const { card, owner } = found;
      const body: ReplyBody = {
        success: 1,
        type: "card",
        card: cardView(card, {
          typeName: found.typeName,
          customerExternalId: owner?.external_id ?? null,
          timeZone: config.timeZone,
        }),
        customer: owner === null ? null : ownerView(owner, found.groupName),
      };
      if (found.balances !== null) body.bonuses = found.balances.map((b) => balanceView(b.program, b.balance));
      return reply(c, body);
    });
}
