/** Shopify payloads mapped to webhook actions (pure): customers, orders and refunds, ids read as strings. */
import {
  idOf,
  labelOf,
  moneyOf,
  objectOf,
  type OrderState,
  PayloadError,
  type PlatformCustomer,
  type PlatformOrder,
  type PlatformRefund,
  textOf,
  type WebhookAction,
} from "./webhooks.ts";

type Json = Record<string, unknown>;

function consent(value: unknown): boolean | null {
  if (typeof value !== "object" || value === null) return null;
  const state = (value as Json).state;
  if (typeof state !== "string") return null;
  return state === "subscribed";
}

/**
 * A Shopify customer object (as in customers/* and in an order's `customer`). Only the customer's own phone and
 * email are read, never an address's phone: an address (`default_address`, `addresses`) may be someone else's (a
 * shared office or family line), and matching on it would merge two people. `fallback` is the order's own contact
 * email and phone, the buyer's.
 */
export function shopifyCustomer(data: Json, fallback: { email?: unknown; phone?: unknown } = {}): PlatformCustomer {
  const accepts = typeof data.accepts_marketing === "boolean" ? data.accepts_marketing : null;
  return {
    externalId: idOf(data.id, "customer.id"),
    fname: textOf(data.first_name),
    lname: textOf(data.last_name),
    email: textOf(data.email) ?? textOf(fallback.email),
    phone: textOf(data.phone) ?? textOf(fallback.phone),
    acceptsEmail: consent(data.email_marketing_consent) ?? accepts,
    acceptsSms: consent(data.sms_marketing_consent) ?? accepts,
  };
}

/** Money a Shopify refund returned: its successful `refund` transactions (not its line items). */
export function shopifyRefund(data: Json): PlatformRefund {
  const id = idOf(data.id, "refund.id");
  if (!id) throw new PayloadError("Invalid refund: no id");
  const transactions = Array.isArray(data.transactions) ? data.transactions : [];
  let amount = 0;
  for (const t of transactions) {
    if (typeof t !== "object" || t === null) continue;
    const tx = t as Json;
    if (tx.kind === "refund" && tx.status === "success") amount += moneyOf(tx.amount, "transactions.amount");
  }
  return { id, amount, reason: textOf(data.note) };
}

function objectIn(data: Json, name: string): Json {
  const v = data[name];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v as Json : {};
}

/**
 * The shipping an order's total includes, with its tax: `total_shipping_price_set` (else the shipping lines'
 * prices), plus the shipping lines' tax unless prices include taxes (`taxes_included`), as `total_price` counts it.
 */
function shippingOf(data: Json): number {
  const lines = (Array.isArray(data.shipping_lines) ? data.shipping_lines : [])
    .filter((l): l is Json => typeof l === "object" && l !== null);
  const set = objectIn(objectIn(data, "total_shipping_price_set"), "shop_money");
  let price = 0;
  if ("amount" in set) price = moneyOf(set.amount, "total_shipping_price_set");
  else for (const line of lines) price += moneyOf(line.price, "shipping_lines.price");
  let tax = 0;
  if (data.taxes_included !== true) {
    for (const line of lines) {
      for (const t of Array.isArray(line.tax_lines) ? line.tax_lines : []) {
        if (typeof t === "object" && t !== null) tax += moneyOf((t as Json).price, "shipping_lines.tax_lines.price");
      }
    }
  }
  return price + tax;
}

/**
 * The state of a Shopify order: `orders/cancelled` or financial_status refunded closes it; `orders/paid` or
 * financial_status paid (or partially_refunded) counts it; anything else (pending, authorized, voided) waits.
 */
function stateOf(topic: string, data: Json): OrderState {
  const status = typeof data.financial_status === "string" ? data.financial_status : "";
  if (topic === "orders/cancelled" || status === "refunded") return "closed";
  if (topic === "orders/paid" || status === "paid" || status === "partially_refunded") return "paid";
  return "pending";
}

/** A Shopify order payload. */
export function shopifyOrder(topic: string, data: Json): PlatformOrder {
  const orderId = idOf(data.id, "order.id");
  if (!orderId) throw new PayloadError("Invalid order: no id");
  // A guest (no customer object) is found or made from the order's email and the billing address's phone.
  const billing = typeof data.billing_address === "object" && data.billing_address !== null
    ? data.billing_address as Json
    : {};
  const customer = typeof data.customer === "object" && data.customer !== null
    ? shopifyCustomer(data.customer as Json, { email: data.email, phone: data.phone })
    : {
      externalId: null,
      fname: textOf(billing.first_name),
      lname: textOf(billing.last_name),
      email: textOf(data.email) ?? textOf(data.contact_email),
      phone: textOf(data.phone) ?? textOf(billing.phone),
      acceptsEmail: null,
      acceptsSms: null,
    };
  const total = moneyOf(data.total_price, "total_price");
  const base = Math.max(0, total - shippingOf(data));
  const refunds = (Array.isArray(data.refunds) ? data.refunds : [])
    .filter((r): r is Json => typeof r === "object" && r !== null)
    .map(shopifyRefund);
  const number = labelOf(data.name) ?? labelOf(data.order_number);
  return { orderId, number, customer, state: stateOf(topic, data), base, refunds };
}

/** Maps one Shopify delivery to what the processor does with it. */
export function shopifyAction(topic: string, payload: unknown): WebhookAction {
  const data = objectOf(payload, "the payload");
  switch (topic) {
    case "customers/create":
    case "customers/update":
      return { kind: "customer", customer: shopifyCustomer(data) };
    case "orders/create":
    case "orders/updated":
    case "orders/paid":
    case "orders/cancelled":
      return { kind: "order", order: shopifyOrder(topic, data) };
    case "refunds/create": {
      const orderId = idOf(data.order_id, "order_id");
      if (!orderId) throw new PayloadError("Invalid refund: no order_id");
      return { kind: "refund", orderId, refund: shopifyRefund(data) };
    }
    default:
      return { kind: "ignore", reason: `topic "${topic}" is not processed` };
  }
}
