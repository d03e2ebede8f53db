/** What the webhook tests share: a world with a program and a connection, signed deliveries, and draining the queue. */
import { hmacKey, signBody } from "../domain/webhooks.ts";
import { bonusKeys, webhookKeys } from "../storage/keys.ts";
import { findCustomerId, getCustomer } from "../storage/customers.ts";
import { createStore } from "../storage/store.ts";
import type { WebhookEvent } from "../storage/webhooks.ts";
import type { BalanceRecord } from "../storage/bonuses.ts";
import type { LedgerEntry } from "../domain/bonus.ts";
import { startWebhookListener, type WebhookSettings } from "../usecases/webhooks.ts";
import type { ListenerOptions } from "../usecases/webhooks.ts";
import { type World, world } from "./kit.ts";

export const FIXTURES = new URL("../../../shared/fixtures/webhooks/", import.meta.url);
export const SECRET = "shhh-test-secret-1234";

/** The bytes of a fixture file, as the platform sent them. */
export async function fixture(name: string): Promise<Uint8Array> {
  const path = Deno.env.get("WEBHOOK_FIXTURES") ?? "/work/shared/fixtures/webhooks/";
  return await Deno.readFile(`${path}${name}`);
}

/** Test settings: quick retries. */
export const SETTINGS: WebhookSettings = {
  timeZone: "UTC",
  defaultCountryCode: "7",
  directoryCacheMs: 0,
  connectionCacheMs: 0,
  maxAttempts: 3,
  retryBaseMs: 5,
  dedupeTtlMs: 24 * 3600 * 1000,
  retentionMs: 30 * 24 * 3600 * 1000,
};

/** A world with a bonus program and one connection per platform, and a listener over its store. */
export interface Shop extends AsyncDisposable {
  w: World;
  bonusId: number;
  shopify: string;
  woo: string;
  deliver: (
    platform: "shopify" | "woocommerce",
    topic: string,
    body: Uint8Array,
    options?: { secret?: string | null; webhookId?: string; connection?: string },
  ) => Promise<Response>;
  drain: () => Promise<WebhookEvent[]>;
  customerByEmail: (email: string) => Promise<{ id: number; sales: number; balance: number } | null>;
  ledger: (customerId: number) => Promise<LedgerEntry[]>;
}

/** Makes a shop world: percent is the connections' accrual percent ("" for the program's rules). */
export async function shop(
  options: { percent?: string; listen?: boolean; listener?: ListenerOptions } = {},
): Promise<Shop> {
  const w = await world({ config: { authCacheMs: 0, directoryCacheMs: 0 } });
  const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Web", accrual_percent: "5" } });
  const bonusId = program.body.id as number;
  const make = async (platform: string) => {
    const r = await w.call("POST", "/api/connection/update", {
      form: {
        platform,
        shop: `${platform}.example.com`,
        secret: SECRET,
        bonus_id: bonusId,
        percent: options.percent ?? "10",
      },
    });
    if (r.status !== 200) throw new Error(r.text);
    return r.body.connection_id as string;
  };
  const shopify = await make("shopify");
  const woo = await make("woocommerce");
  const store = createStore(w.kv);
  const listening = options.listen === false
    ? Promise.resolve()
    : startWebhookListener(store, SETTINGS, options.listener ?? {});
  const deliver: Shop["deliver"] = async (platform, topic, body, o = {}) => {
    const headers = new Headers({ "content-type": "application/json" });
    const secret = o.secret === undefined ? SECRET : o.secret;
    if (secret !== null) {
      const sig = await signBody(await hmacKey(secret), body);
      headers.set(platform === "shopify" ? "X-Shopify-Hmac-Sha256" : "X-WC-Webhook-Signature", sig);
    }
    if (platform === "shopify") {
      headers.set("X-Shopify-Topic", topic);
      headers.set("X-Shopify-Webhook-Id", o.webhookId ?? crypto.randomUUID());
    } else {
      headers.set("X-WC-Webhook-Topic", topic);
      headers.set("X-WC-Webhook-Delivery-ID", crypto.randomUUID());
    }
    const id = o.connection ?? (platform === "shopify" ? shopify : woo);
    return await w.app.request(`/webhooks/${platform}/${id}`, {
      method: "POST",
      headers,
      body: body as Uint8Array<ArrayBuffer>,
    });
  };
  const drain = async () => {
    for (let i = 0; i < 600; i++) {
      const events: WebhookEvent[] = [];
      for await (const e of w.kv.list<WebhookEvent>({ prefix: webhookKeys.events() })) events.push(e.value);
      if (events.every((e) => e.status !== "queued")) return events;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error("The queue did not drain");
  };
  const customerByEmail: Shop["customerByEmail"] = async (email) => {
    const id = await findCustomerId(w.kv, "acme", "email", email.toLowerCase());
    if (id === null) return null;
    const c = await getCustomer(w.kv, "acme", id);
    const b = (await w.kv.get<BalanceRecord>(bonusKeys.balance("acme", id, bonusId))).value;
    return { id, sales: c!.accumulated_sales, balance: b?.balance ?? 0 };
  };
  const ledger = async (customerId: number) => {
    const out: LedgerEntry[] = [];
    for await (const e of w.kv.list<LedgerEntry>({ prefix: bonusKeys.ledger("acme", customerId, bonusId) })) {
      out.push(e.value);
    }
    return out;
  };
  let closed = false;
  return {
    w,
    bonusId,
    shopify,
    woo,
    deliver,
    drain,
    customerByEmail,
    ledger,
    [Symbol.asyncDispose]: async () => {
      if (closed) return;
      closed = true;
      await w[Symbol.asyncDispose]();
      await listening;
    },
  };
}

/** Replaces `"field": value` text in a fixture's bytes (keeping every other byte), for variants of a payload. */
export function edit(bytes: Uint8Array, replace: [RegExp | string, string][]): Uint8Array {
  let text = new TextDecoder().decode(bytes);
  for (const [from, to] of replace) text = text.replace(from, to);
  return new TextEncoder().encode(text);
}
