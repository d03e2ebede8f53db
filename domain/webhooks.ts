/**
 * What the webhook receiver and processor decide without I/O: the platforms, a lossless JSON reading (ids above
 * 2^53 stay exact strings), signature checks over raw bytes, dedupe keys, and the platform-neutral shape of an event
 * that domain/shopify.ts and domain/woocommerce.ts map payloads into.
 */
import { parseMoney } from "./money.ts";

/** The shop platforms a connection can be made to. */
export const PLATFORMS = ["shopify", "woocommerce"] as const;
/** One shop platform. */
export type Platform = typeof PLATFORMS[number];

/** Whether a string names a platform. */
export function isPlatform(value: string): value is Platform {
  return (PLATFORMS as readonly string[]).includes(value);
}

/** A platform customer, as much of it as maps to ours. */
export interface PlatformCustomer {
  /** The platform's id of the customer (a string: Shopify ids exceed 2^53); null for a guest. */
  externalId: string | null;
  fname: string | null;
  lname: string | null;
  email: string | null;
  phone: string | null;
  /** Marketing consent by email / SMS; null when the payload says nothing. */
  acceptsEmail: boolean | null;
  acceptsSms: boolean | null;
}

/** One refund of an order: its id, the money it returned (minor units) and its reason, if any. */
export interface PlatformRefund {
  id: string;
  amount: number;
  reason: string | null;
}

/** Where an order stands: not paid yet, paid (counts), or closed without counting (refunded, cancelled, deleted). */
export type OrderState = "pending" | "paid" | "closed";

/** An order, as much of it as the loyalty program needs. */
export interface PlatformOrder {
  /** The platform's order id, as a string. */
  orderId: string;
  /** The order's number as shops show it (e.g. "#1001"): the ledger's order_id and comment. */
  number: string | null;
  customer: PlatformCustomer;
  state: OrderState;
  /** Paid total excluding shipping, minor units. */
  base: number;
  /** Refunds the payload lists. */
  refunds: PlatformRefund[];
}

/** What one delivery asks the processor to do. */
export type WebhookAction =
  | { kind: "customer"; customer: PlatformCustomer }
  | { kind: "order"; order: PlatformOrder }
  | { kind: "refund"; orderId: string; refund: PlatformRefund }
  | { kind: "ignore"; reason: string };

/** A payload that is not what its topic promises: processing it again will not help. */
export class PayloadError extends Error {
  override name = "PayloadError";
}

/**
 * Parses JSON keeping every integer of 16 digits or more as a string, so that ids above 2^53 are not silently
 * changed (`JSON.parse` would turn 820982911946154508 into 820982911946154500). Strings are left untouched.
 */
export function parseJsonLossless(text: string): unknown {
  let out = "";
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 34 /* " */) {
      i++;
      while (i < n) {
        const c = text.charCodeAt(i);
        if (c === 92 /* \ */) i += 2;
        else if (c === 34) break;
        else i++;
      }
      i++;
      continue;
    }
    if (ch === 45 /* - */ || (ch >= 48 && ch <= 57)) {
      const start = i;
      i++;
      while (i < n) {
        const c = text.charCodeAt(i);
        if ((c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45) i++;
        else break;
      }
      const token = text.slice(start, i);
      if (/^-?\d{16,}$/.test(token)) {
        out += text.slice(last, start) + `"${token}"`;
        last = i;
      }
      continue;
    }
    i++;
  }
  return JSON.parse(last === 0 ? text : out + text.slice(last));
}

/** Longest platform id read (ids become parts of KV keys, which are at most 2 KiB): longer is a payload error. */
export const MAX_PLATFORM_ID = 100;

/**
 * A JSON object's field as a string id (numbers and strings alike), or null. An id longer than MAX_PLATFORM_ID
 * cannot be a key: a PayloadError naming `field`, so the delivery is a dead letter at once rather than retried.
 */
export function idOf(value: unknown, field = "id"): string | null {
  if (typeof value === "string" && value.trim() !== "") {
    const id = value.trim();
    if (id.length > MAX_PLATFORM_ID) {
      throw new PayloadError(`Invalid ${field} "${id.slice(0, 20)}...": longer than ${MAX_PLATFORM_ID} characters`);
    }
    return id;
  }
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return null;
}

/** A label shown to people (an order's number): like idOf, but a long one is cut to MAX_PLATFORM_ID, not refused. */
export function labelOf(value: unknown): string | null {
  if (typeof value === "string" && value.trim() !== "") return value.trim().slice(0, MAX_PLATFORM_ID);
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return null;
}

/** A field as trimmed text, null when absent or empty. */
export function textOf(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const t = value.trim();
  return t === "" ? null : t;
}

/**
 * A decimal money field ("404.95", 12.5) as minor units; 0 when absent. A negative amount is a PayloadError (a
 * total of "-50.00" is not a sale of 50), unless `negative: "abs"` says the platform writes this amount with a minus
 * sign (WooCommerce refund totals, "-10.00"), when its size is taken.
 */
export function moneyOf(value: unknown, field: string, options: { negative?: "refuse" | "abs" } = {}): number {
  if (value === null || value === undefined || value === "") return 0;
  const raw = typeof value === "number" ? String(value) : typeof value === "string" ? value : null;
  if (raw === null) throw new PayloadError(`Invalid ${field}: not an amount`);
  try {
    const minor = parseMoney(raw, field, { allowNegative: options.negative === "abs" });
    return Math.abs(minor);
  } catch (error) {
    throw new PayloadError((error as Error).message);
  }
}

/** The object a payload is; a PayloadError otherwise. */
export function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PayloadError(`Invalid payload: ${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array | null {
  try {
    const s = atob(text.trim());
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** The HMAC-SHA256 key of a connection's secret, for signing and verifying. */
export async function hmacKey(secret: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** base64(HMAC-SHA256(secret, body)): the signature both platforms send. */
export async function signBody(key: CryptoKey, body: Uint8Array): Promise<string> {
  return base64(new Uint8Array(await crypto.subtle.sign("HMAC", key, body as Uint8Array<ArrayBuffer>)));
}

/**
 * Whether `signature` (base64) is the HMAC-SHA256 of the raw body bytes; `crypto.subtle.verify` compares in
 * constant time.
 */
export async function verifySignature(key: CryptoKey, body: Uint8Array, signature: string | null): Promise<boolean> {
  if (!signature) return false;
  const mac = fromBase64(signature);
  if (!mac || mac.length !== 32) return false;
  return await crypto.subtle.verify(
    "HMAC",
    key,
    mac as Uint8Array<ArrayBuffer>,
    body as Uint8Array<ArrayBuffer>,
  );
}

/** Hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The WooCommerce ping sent when a webhook is saved: the form body `webhook_id=N`, unsigned. */
export function isWooPing(body: Uint8Array): boolean {
  if (body.length > 40) return false;
  return /^webhook_id=\d+$/.test(new TextDecoder().decode(body).trim());
}

/** The headers of a delivery that matter, by platform (names lowercase). */
export interface DeliveryHeaders {
  topic: string | null;
  signature: string | null;
  /** Shopify's X-Shopify-Webhook-Id (the same on every retry of a delivery); null for WooCommerce. */
  webhookId: string | null;
}

/** Reads the topic, signature and delivery id of a platform's delivery. */
export function deliveryHeaders(platform: Platform, get: (name: string) => string | null): DeliveryHeaders {
  if (platform === "shopify") {
    return {
      topic: get("x-shopify-topic"),
      signature: get("x-shopify-hmac-sha256"),
      webhookId: get("x-shopify-webhook-id"),
    };
  }
  // X-WC-Webhook-Delivery-ID is new on every attempt: it identifies nothing, so it is not read.
  return { topic: get("x-wc-webhook-topic"), signature: get("x-wc-webhook-signature"), webhookId: null };
}

/**
 * What makes two deliveries "the same": Shopify's webhook id (kept on its retries); for WooCommerce, whose delivery
 * id changes on every attempt, the topic and a hash of the exact bytes (a re-sent identical payload).
 */
export function dedupeKey(platform: Platform, headers: DeliveryHeaders, bodyHash: string): string {
  if (platform === "shopify" && headers.webhookId) return `id:${headers.webhookId}`;
  return `body:${headers.topic ?? ""}:${bodyHash}`;
}

/** Topics each platform sends that the processor acts on; others are answered 200 and counted as ignored. */
export const TOPICS: Record<Platform, readonly string[]> = {
  shopify: [
    "customers/create",
    "customers/update",
    "orders/create",
    "orders/paid",
    "orders/updated",
    "orders/cancelled",
    "refunds/create",
  ],
  woocommerce: ["customer.created", "customer.updated", "order.created", "order.updated", "order.deleted"],
};

/** The percent accrual of an order: `bp` hundredths of a percent of `base`, rounded down to 0.01. */
export function percentAccrual(base: number, bp: number): number {
  if (base <= 0 || bp <= 0) return 0;
  return Number((BigInt(base) * BigInt(bp)) / 10_000n);
}
