import { Hono } from "hono";
import { z } from "zod";
import { formatDateTime } from "../domain/dates.ts";
import { field, id, invalid, nonEmpty, text } from "../domain/fields.ts";
import { moneyField, moneyToNumber } from "../domain/money.ts";
import { percentField } from "../domain/program_settings.ts";
import { isPlatform, PLATFORMS } from "../domain/webhooks.ts";
import { listConnections, type PublicConnection, saveConnection, webhookPath } from "../usecases/connections.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply, type ReplyBody } from "./reply.ts";
import { input } from "./request.ts";

/** shopify or woocommerce, any case; empty means null. */
const platformField = field((raw, name) => {
  const value = raw.trim().toLowerCase();
  if (value === "") return null;
  if (!isPlatform(value)) throw invalid(name, raw, `must be one of ${PLATFORMS.join(", ")}`);
  return value;
}, { wire: z.enum(PLATFORMS), description: "Any case.", example: "shopify" });

/** A webhook secret: 8 to 500 characters; never shown. */
const secretField = field((raw, name) => {
  if (raw.trim() === "") return null;
  if (raw.length < 8 || raw.length > 500) throw invalid(name, "(hidden)", "must be 8 to 500 characters");
  return raw;
}, { wire: z.string().min(8).max(500), description: "8 to 500 characters.", example: "whsec_0123456789" });

const connectionView = z.strictObject({
  connection_id: z.string(),
  platform: z.enum(PLATFORMS),
  shop: z.string(),
  name: z.string().nullable(),
  bonus_id: z.int().min(1),
  percent: z.number().nullable(),
  min_order: z.number().nullable(),
  webhook_url: z.string(),
  created_date: z.string(),
  last_update_date: z.string(),
}).meta({ title: "Connection" });

const listReply = z.strictObject({
  success: z.literal(1),
  count: z.int().min(0),
  connections: z.array(connectionView).meta({ xml: { name: "connections" } }),
}).meta({ title: "ConnectionList" });

const writeReply = z.strictObject({
  success: z.literal(1),
  connection_id: z.string(),
  isnew: z.literal([0, 1]),
  webhook_url: z.string(),
}).meta({ title: "ConnectionWrite" });

function view(c: PublicConnection, timeZone: string): ReplyBody {
  return {
    connection_id: c.id,
    platform: c.platform,
    shop: c.shop,
    name: c.name,
    bonus_id: c.bonus_id,
    percent: c.percent_bp === null ? null : moneyToNumber(c.percent_bp),
    min_order: c.min_order === null ? null : moneyToNumber(c.min_order),
    webhook_url: webhookPath(c),
    created_date: formatDateTime(c.created_date, timeZone),
    last_update_date: formatDateTime(c.last_update_date, timeZone),
  };
}

/** `GET /api/connection` lists the shop connections (never their secrets); `POST /api/connection/update` saves one. */
export function connectionRoutes(deps: Deps) {
  const updateInput = input({
    query: {
      connection_id: nonEmpty(text(32)).describe("Change the connection with this id; without it, create one."),
    },
    fields: {
      platform: platformField.describe("shopify or woocommerce."),
      shop: nonEmpty(text(300)).describe("The shop's domain or site URL."),
      secret: nonEmpty(secretField).describe(
        "The webhook secret (Shopify: the app's client secret; WooCommerce: the webhook's secret). Never shown.",
      ),
      bonus_id: id.describe("The bonus program points accrue in."),
      percent: percentField.describe(
        "Points as a percent of the paid total excluding shipping, rounded down to 0.01; empty: the program's " +
          "rules and tiers.",
      ),
      min_order: moneyField.describe("Orders below this accrue nothing (still counted in accumulated_sales)."),
      name: text(200).describe("A name for the connection."),
    },
    summary: "Create or change a shop connection (Shopify or WooCommerce webhooks)",
    description: "Without `connection_id`, creates a connection (platform, shop, secret and bonus_id required) and " +
      "answers the `webhook_url` path to give the platform. The secret is stored to verify signatures and is never " +
      "returned or logged.",
    reply: writeReply,
    tags: ["connection"],
  });
  return new Hono<AppEnv>()
    .get(
      "/",
      input({
        query: {},
        fields: {},
        summary: "List the shop connections (without their secrets)",
        reply: listReply,
        tags: ["connection"],
      }),
      async (c) => {
        const items = (await listConnections(deps.store, actorOf(c.var.caller)))
          .map((x) => view(x, deps.config.timeZone));
        return reply(c, { success: 1, count: items.length, connections: items });
      },
    )
    .post("/update", requireWrite, updateInput, async (c) => {
      const { query, fields: f } = c.var.input;
      const result = await saveConnection(deps.store, actorOf(c.var.caller), {
        id: query.connection_id ?? null,
        patch: {
          platform: f.platform ?? undefined,
          shop: f.shop ?? undefined,
          secret: f.secret ?? undefined,
          bonusId: f.bonus_id ?? undefined,
          percentBp: f.percent,
          minOrder: f.min_order,
          name: f.name,
        },
      });
      return reply(c, {
        success: 1,
        connection_id: result.connection.id,
        isnew: result.isNew ? 1 : 0,
        webhook_url: result.webhookPath,
      });
    });
}
