import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { receiveWebhook, webhookSettingsOf } from "../usecases/webhooks.ts";
import type { AppEnv, Deps } from "./context.ts";
import { render } from "./reply.ts";
import { describeRoute } from "./route_doc.ts";

const deliveryReply = z.strictObject({ success: z.literal(1) }).meta({ title: "WebhookAccepted" });

/**
 * `POST /webhooks/{platform}/{connection_id}`: where Shopify and WooCommerce deliver webhooks. No API key: the
 * HMAC signature of the raw body is the authentication. Answers 200 at once (processing is queued), 401 for an
 * unknown connection or a missing or wrong signature (logged, nothing else), 413 over WEBHOOK_MAX_BODY_BYTES.
 */
export function webhookRoutes(deps: Deps, log?: (line: string) => void) {
  const settings = webhookSettingsOf(deps.config);
  const max = deps.config.webhookMaxBodyBytes;
  const doc = describeRoute({
    summary: "Receive a Shopify or WooCommerce webhook delivery",
    description: "Verifies `X-Shopify-Hmac-Sha256` or `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw " +
      "body with the connection's secret) before reading anything, then stores and queues the delivery (once per " +
      "Shopify webhook id, or per identical WooCommerce body) and answers 200. The WooCommerce ping (form body " +
      "`webhook_id=N`, unsigned) gets 200. Unknown connection or bad signature: 401. See docs/webhooks.md.",
    public: true,
    reply: deliveryReply,
    media: ["application/json"],
    errors: [401, 413],
    tags: ["webhooks"],
  });
  const limit = bodyLimit({
    maxSize: max,
    onError: () => render("json", { success: 0, info: `Request body is too large: at most ${max} bytes` }, 413),
  });
  return new Hono<AppEnv>().post("/:platform/:connection_id", doc, limit, async (c) => {
    const platform = c.req.param("platform");
    const connectionId = c.req.param("connection_id");
    const body = new Uint8Array(await c.req.arrayBuffer());
    const result = await receiveWebhook(deps.store, {
      platform,
      connectionId,
      header: (name) => c.req.header(name) ?? null,
      body,
    }, settings);
    if (result.status === 401) {
      log?.(`webhook ${platform}/${connectionId.slice(0, 40)} refused (401): ${result.reason}`);
      return render("json", { success: 0, info: "Unauthorized" }, 401);
    }
    return render("json", { success: 1 }, 200);
  });
}
