/** WooCommerce payloads mapped to webhook actions (pure): customers and orders, refunds from the order's `refunds`. */
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

function sub(data: Json, name: string): Json {
  const v = data[name];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v as Json : {};
}

/** A WooCommerce customer object. */
export function wooCustomer(data: Json): PlatformCustomer {
  const billing = sub(data, "billing");
  const id = idOf(data.id, "customer.id");
  return {
    externalId: id === "0" ? null : id,
    fname: textOf(data.first_name) ?? textOf(billing.first_name),
    lname: textOf(data.last_name) ?? textOf(billing.last_name),
    email: textOf(data.email) ?? textOf(billing.email),
    phone: textOf(billing.phone),
    acceptsEmail: null,
    acceptsSms: null,
  };
}

/** The state of a WooCommerce order: processing/completed count, refunded/cancelled (or deleted) close. */
function stateOf(topic: string, status: string): OrderState {
  if (topic === "order.deleted") return "closed";
  if (status === "processing" || status === "completed") return "paid";
  if (status === "refunded" || status === "cancelled") return "closed";
  return "pending";
}

/** A WooCommerce order payload; refunds carry their amount as a negative `total` (reason as `reason` or `refund`). */
export function wooOrder(topic: string, data: Json): PlatformOrder {
  const orderId = idOf(data.id, "order.id");
  if (!orderId) throw new PayloadError("Invalid order: no id");
  const billing = sub(data, "billing");
  const customerId = idOf(data.customer_id, "customer_id");
  const customer: PlatformCustomer = {
    externalId: customerId === "0" ? null : customerId,
    fname: textOf(billing.first_name),
    lname: textOf(billing.last_name),
    email: textOf(billing.email),
    phone: textOf(billing.phone),
    acceptsEmail: null,
    acceptsSms: null,
  };
  const total = moneyOf(data.total, "total");
  // `total` includes shipping and its tax: both are left out of the paid total the program counts.
  const shipping = moneyOf(data.shipping_total, "shipping_total") + moneyOf(data.shipping_tax, "shipping_tax");
  const refunds: PlatformRefund[] = [];
  for (const r of Array.isArray(data.refunds) ? data.refunds : []) {
    if (typeof r !== "object" || r === null) continue;
    const refund = r as Json;
    const id = idOf(refund.id, "refunds.id");
    // WooCommerce sends the reason as `reason`; its documentation shows `refund`: either is read.
    const reason = textOf(refund.reason) ?? textOf(refund.refund);
    if (id) refunds.push({ id, amount: moneyOf(refund.total, "refunds.total", { negative: "abs" }), reason });
  }
  const status = typeof data.status === "string" ? data.status : "";
  return {
    orderId,
    number: labelOf(data.number),
    customer,
    state: stateOf(topic, status),
    base: Math.max(0, total - shipping),
    refunds,
  };
}

/** Maps one WooCommerce delivery to what the processor does with it. */
export function wooAction(topic: string, payload: unknown): WebhookAction {
  const data = objectOf(payload, "the payload");
  switch (topic) {
    case "customer.created":
    case "customer.updated":
      return { kind: "customer", customer: wooCustomer(data) };
    case "order.created":
    case "order.updated":
    case "order.deleted":
      return { kind: "order", order: wooOrder(topic, data) };
    default:
      return { kind: "ignore", reason: `topic "${topic}" is not processed` };
  }
}
