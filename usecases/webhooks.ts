/**
 * Webhook use cases: receiving a delivery (signature over the raw bytes, dedupe, store + enqueue), processing it
 * from the queue (customers linked per connection, orders counted once paid, refunds taken back) through the same
 * purchase and return use cases as the till, retries with backoff and dead letters, and the counts and dead letters
 * that tasks and the back office show.
 */
import type { Actor } from "../domain/audit.ts";
import { MAX_COMMENT, MAX_ORDER_ID } from "../domain/bonus.ts";
import { ConflictError, UnprocessableError } from "../domain/errors.ts";
import { emailKey, normalizeEmail } from "../domain/email.ts";
import { normalizePhone } from "../domain/phone.ts";
import { shopifyAction } from "../domain/shopify.ts";
import { wooAction } from "../domain/woocommerce.ts";
import {
  dedupeKey,
  deliveryHeaders,
  hmacKey,
  isPlatform,
  isWooPing,
  parseJsonLossless,
  PayloadError,
  type Platform,
  type PlatformCustomer,
  type PlatformOrder,
  type PlatformRefund,
  sha256Hex,
  TOPICS,
  verifySignature,
  type WebhookAction,
} from "../domain/webhooks.ts";
import { StoreLimitError } from "../storage/commit.ts";
import { type Connection, getConnection, getConnectionCached, listConnections } from "../storage/connections.ts";
import { findCustomerId, getCustomer } from "../storage/customers.ts";
import { webhookKeys } from "../storage/keys.ts";
import { orderKeys } from "../storage/keys.ts";
import { getOrder, recordPurchase, recordReturn } from "../storage/purchases.ts";
import type { Store } from "../storage/store.ts";
import {
  acceptDelivery,
  BODY_CHUNK_BYTES,
  countStat,
  type DeadLetter,
  finishEvent,
  isWebhookMessage,
  killEvent,
  listDeadLetters as listStoredDeadLetters,
  newEventId,
  readEvent,
  readStats,
  requeueDeadLetter,
  scheduleRetry,
  type WebhookEvent,
} from "../storage/webhooks.ts";
import { saveCustomer } from "./customers.ts";

export type { DeadLetter, WebhookEvent };

/** Settings the webhook use cases depend on (see config.ts). */
export interface WebhookSettings {
  timeZone: string;
  defaultCountryCode: string;
  /** How long the customer groups (tiers) are reused from memory, ms. */
  directoryCacheMs: number;
  /** How long a connection looked up by the receiver is reused from memory, ms. */
  connectionCacheMs: number;
  /** Attempts of a delivery before it becomes a dead letter. */
  maxAttempts: number;
  /** The first retry's delay, ms; each next one doubles, up to an hour. */
  retryBaseMs: number;
  /** How long a delivery's dedupe marker is kept, ms. */
  dedupeTtlMs: number;
  /** How long a delivery (record, body, dead letter) is kept after its last change, ms. */
  retentionMs: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Webhook settings from the service configuration. */
export function webhookSettingsOf(config: {
  timeZone: string;
  defaultCountryCode: string;
  directoryCacheMs: number;
  authCacheMs: number;
  webhookMaxAttempts: number;
  webhookRetryBaseMs: number;
  webhookDedupeDays: number;
  webhookRetentionDays: number;
}): WebhookSettings {
  return {
    timeZone: config.timeZone,
    defaultCountryCode: config.defaultCountryCode,
    directoryCacheMs: config.directoryCacheMs,
    connectionCacheMs: config.authCacheMs,
    maxAttempts: config.webhookMaxAttempts,
    retryBaseMs: config.webhookRetryBaseMs,
    dedupeTtlMs: config.webhookDedupeDays * DAY_MS,
    retentionMs: config.webhookRetentionDays * DAY_MS,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Receiving

/** What the receiver answers: 200 (with what happened) or 401 (with the reason, for the log line only). */
export type ReceiveResult =
  | { status: 200; outcome: "accepted" | "duplicate" | "ping" | "ignored"; eventId?: string }
  | { status: 401; reason: string };

const keys = new WeakMap<Store, Map<string, Promise<CryptoKey>>>();

function keyOf(store: Store, c: Connection): Promise<CryptoKey> {
  let map = keys.get(store);
  if (!map) keys.set(store, map = new Map());
  const id = `${c.id}/${c.secret_version}`;
  let key = map.get(id);
  if (!key) {
    if (map.size > 10_000) map.clear();
    key = hmacKey(c.secret);
    map.set(id, key);
  }
  return key;
}

/**
 * Receives one delivery: finds the connection, verifies the signature over the raw bytes before reading anything
 * else (constant time), answers the WooCommerce ping, and stores + enqueues the delivery with its dedupe marker.
 * An unknown connection or a missing or wrong signature is 401 and changes nothing.
 */
export async function receiveWebhook(
  store: Store,
  input: { platform: string; connectionId: string; header: (name: string) => string | null; body: Uint8Array },
  settings: WebhookSettings,
): Promise<ReceiveResult> {
  if (!isPlatform(input.platform)) return { status: 401, reason: `unknown platform "${input.platform}"` };
  const connection = /^[0-9a-f]{1,32}$/.test(input.connectionId)
    ? await getConnectionCached(store, input.connectionId, settings.connectionCacheMs)
    : null;
  if (!connection || connection.platform !== input.platform) {
    return { status: 401, reason: `unknown connection "${input.connectionId.slice(0, 40)}"` };
  }
  const headers = deliveryHeaders(connection.platform, input.header);
  if (connection.platform === "woocommerce" && !headers.signature && isWooPing(input.body)) {
    return { status: 200, outcome: "ping" };
  }
  if (!headers.signature) return { status: 401, reason: "missing signature" };
  if (!await verifySignature(await keyOf(store, connection), input.body, headers.signature)) {
    return { status: 401, reason: "wrong signature" };
  }
  const topic = (headers.topic ?? "").slice(0, 100) || "(none)";
  if (!TOPICS[connection.platform].includes(topic)) {
    await countStat(store.kv, connection.id, topic, ["received", "ignored"]);
    return { status: 200, outcome: "ignored" };
  }
  const now = store.clock();
  const hash = headers.webhookId ? "" : await sha256Hex(input.body);
  const event: WebhookEvent = {
    id: newEventId(now),
    company_id: connection.company_id,
    connection_id: connection.id,
    platform: connection.platform,
    topic,
    received_date: now,
    dedupe: dedupeKey(connection.platform, headers, hash).slice(0, 300),
    size: input.body.length,
    chunks: Math.max(1, Math.ceil(input.body.length / BODY_CHUNK_BYTES)),
    status: "queued",
    attempts: 0,
    last_error: null,
    outcome: null,
    done_date: null,
  };
  const outcome = await acceptDelivery(store.kv, event, input.body, {
    dedupeTtlMs: settings.dedupeTtlMs,
    retentionMs: settings.retentionMs,
  });
  return { status: 200, outcome, eventId: event.id };
}

// ---------------------------------------------------------------------------------------------------------------
// Processing

/** What processing one delivery did: counted as processed, ignored or skipped (a guest order without contacts). */
export interface ProcessOutcome {
  status: "processed" | "ignored" | "skipped";
  outcome: string;
}

interface Context {
  store: Store;
  actor: Actor;
  connection: Connection;
  settings: WebhookSettings;
}

/** The order reference the ledger shows for a platform order: its number as the shop shows it ("#1001"), else its id. */
export function ledgerOrderIdOf(order: Pick<PlatformOrder, "number" | "orderId">): string {
  return (order.number ?? order.orderId).slice(0, MAX_ORDER_ID);
}

/** The order id our purchases use for a platform order (its idempotency key): unique per connection. */
export function orderRefOf(connection: Pick<Connection, "platform" | "id">, orderId: string): string {
  return `${connection.platform}:${connection.id}:${orderId}`;
}

function actionOf(platform: Platform, topic: string, body: Uint8Array): WebhookAction {
  let payload: unknown;
  try {
    payload = parseJsonLossless(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new PayloadError("Invalid payload: not JSON");
  }
  return platform === "shopify" ? shopifyAction(topic, payload) : wooAction(topic, payload);
}

function cleanPhone(raw: string | null, cc: string): string | null {
  if (!raw) return null;
  try {
    return normalizePhone(raw, "phone", cc);
  } catch {
    return null;
  }
}

function cleanEmail(raw: string | null): string | null {
  if (!raw) return null;
  try {
    return normalizeEmail(raw, "email");
  } catch {
    return null;
  }
}

/**
 * The customer of ours a platform customer is: the one linked for this connection, else the one with its phone,
 * then its email, else a new one (none when it has neither phone, email nor id). With `update`, names and consents
 * are brought in step, and so are the contacts of a customer this connection created; a customer of ours it was
 * matched to (now or when it was linked) keeps its email and phone: they are only filled in when empty, never replaced
 * by different ones, so a wrong match cannot take over someone's contacts. A phone or email held by another customer
 * is left out. A new customer is created with its link in one atomic operation (the link checked as read), so
 * concurrent deliveries of one platform customer make one customer of ours; a create that loses a race for a phone or
 * email looks again once.
 */
async function customerFor(
  ctx: Context,
  pc: PlatformCustomer,
  update: boolean,
  again = false,
): Promise<number | null> {
  const { store, actor, connection, settings } = ctx;
  const cid = actor.companyId;
  const phone = cleanPhone(pc.phone, settings.defaultCountryCode);
  const email = cleanEmail(pc.email);
  const linkKey = pc.externalId ? webhookKeys.customerLink(cid, connection.id, pc.externalId) : null;
  const matchKey = pc.externalId ? webhookKeys.customerMatch(cid, connection.id, pc.externalId) : null;
  let id: number | null = null;
  let ours = false;
  if (linkKey && matchKey) {
    const [linked, match] = await store.kv.getMany<[number, number]>([linkKey, matchKey]);
    if (linked.value !== null && await getCustomer(store.kv, cid, linked.value)) {
      id = linked.value;
      ours = match.value === id;
    }
  }
  const byPhone = phone ? await findCustomerId(store.kv, cid, "phone", phone) : null;
  const byEmail = email ? await findCustomerId(store.kv, cid, "email", emailKey(email)) : null;
  const matched = id === null ? byPhone ?? byEmail : null;
  id ??= matched;
  ours ||= matched !== null;
  const patch: Record<string, unknown> = {};
  const fill = (field: string, value: unknown, current: unknown, follow = update) => {
    if (value === null || value === undefined) return;
    if (follow || current === null || current === undefined) patch[field] = value;
  };
  const existing = id !== null ? await getCustomer(store.kv, cid, id) : null;
  fill("fname", pc.fname?.slice(0, 100), existing?.fname);
  fill("lname", pc.lname?.slice(0, 100), existing?.lname);
  if (phone && (byPhone === null || byPhone === id)) fill("phone", phone, existing?.phone, update && !ours);
  if (email && (byEmail === null || byEmail === id)) fill("email", email, existing?.email, update && !ours);
  if (pc.acceptsEmail !== null) fill("send_email", pc.acceptsEmail, existing ? undefined : null);
  if (pc.acceptsSms !== null) fill("send_sms", pc.acceptsSms, existing ? undefined : null);
  if (id === null) {
    if (!phone && !email && !linkKey) return null;
    try {
      const created = await saveCustomer(store, actor, {
        create: true,
        patch,
        timeZone: settings.timeZone,
        ...(linkKey ? { link: linkKey } : {}),
      });
      return created.customer.id;
    } catch (error) {
      // Another delivery created the customer with this phone or email meanwhile: it is the one.
      if (error instanceof ConflictError && !again) return await customerFor(ctx, pc, update, true);
      throw error;
    }
  }
  if (Object.keys(patch).length > 0) {
    await saveCustomer(store, actor, { id, create: false, patch, timeZone: settings.timeZone });
  }
  // A match by phone or email is linked for next time (concurrent matches find the same customer), marked as a
  // match so that later updates keep the customer's own email and phone.
  if (linkKey && matchKey && matched !== null) {
    await store.kv.atomic().set(linkKey, id).set(matchKey, id).commit();
  }
  return id;
}

/** The ledger comment of a refund or cancellation: the platform, what it was, and the refund's reason. */
function returnComment(platform: Platform, returnId: string, reason: string | null): string {
  const what = returnId.startsWith("refund:") ? "refund" : "cancellation";
  return `${platform} ${what}${reason ? `: ${reason}` : ""}`.slice(0, MAX_COMMENT);
}

/** Applies one refund of a counted order once; a refund of an order not counted yet waits for it. */
async function applyRefund(ctx: Context, orderRef: string, refund: PlatformRefund): Promise<boolean> {
  const { store, actor } = ctx;
  const cid = actor.companyId;
  if (refund.amount <= 0) return false;
  let order = await getOrder(store.kv, cid, orderRef);
  if (!order) {
    const pending: PendingRefund = { amount: refund.amount, reason: refund.reason };
    await store.kv.set(webhookKeys.pendingRefund(cid, orderRef, refund.id), pending);
    // Read again: an order counted meanwhile may have looked for pending refunds before this one was written.
    order = await getOrder(store.kv, cid, orderRef);
    if (!order) return false;
  }
  return await returnMoney(ctx, orderRef, `refund:${refund.id}`, refund.amount, refund.reason);
}

/** A refund that arrived before its order counted (stored before reasons: the amount alone). */
type PendingRefund = { amount: number; reason: string | null };

/** Returns up to `amount` of a counted order under `returnId`, at most once; false when nothing was left. */
async function returnMoney(
  ctx: Context,
  orderRef: string,
  returnId: string,
  amount: number | null,
  reason: string | null = null,
): Promise<boolean> {
  const { store, actor, settings, connection } = ctx;
  const cid = actor.companyId;
  const [done, order] = await store.kv.getMany<[unknown, { amount: number; returned: number }]>([
    orderKeys.orderReturn(cid, orderRef, returnId),
    orderKeys.order(cid, orderRef),
  ]);
  if (done.value || !order.value) return false;
  const left = order.value.amount - order.value.returned;
  const money = Math.min(amount ?? left, left);
  if (money <= 0) return false;
  try {
    await recordReturn(store, actor, {
      orderId: orderRef,
      returnId,
      amount: money,
      fingerprint: JSON.stringify(["webhook return", 1, money]),
      timeZone: settings.timeZone,
      groupsMaxAgeMs: settings.directoryCacheMs,
      comment: returnComment(connection.platform, returnId, reason),
      source: connection.platform,
    });
  } catch (error) {
    // The same return recorded by a concurrent delivery with the amount it saw: done once, as it should be.
    if (error instanceof UnprocessableError) return false;
    throw error;
  }
  return true;
}

async function applyPendingRefunds(ctx: Context, orderRef: string): Promise<void> {
  const cid = ctx.actor.companyId;
  const list = ctx.store.kv.list<number | PendingRefund>({ prefix: webhookKeys.pendingRefunds(cid, orderRef) });
  for await (const e of list) {
    const refundId = String(e.key.at(-1));
    const pending = typeof e.value === "number" ? { amount: e.value, reason: null } : e.value;
    await returnMoney(ctx, orderRef, `refund:${refundId}`, pending.amount, pending.reason);
  }
}

async function processOrder(ctx: Context, order: PlatformOrder): Promise<ProcessOutcome> {
  const { store, actor, connection, settings } = ctx;
  const cid = actor.companyId;
  const ref = orderRefOf(connection, order.orderId);
  let recorded = await getOrder(store.kv, cid, ref);
  if (!recorded && order.state === "paid") {
    const closed = await store.kv.get(webhookKeys.closedOrder(cid, ref));
    if (closed.value) return { status: "ignored", outcome: "order closed before it was paid" };
    if (order.base <= 0) return { status: "ignored", outcome: "order total is zero" };
    const customerId = await customerFor(ctx, order.customer, false);
    if (customerId === null) return { status: "skipped", outcome: "guest order without email or phone" };
    const below = connection.min_order !== null && order.base < connection.min_order;
    try {
      await recordPurchase(store, actor, {
        customerId,
        bonusId: connection.bonus_id,
        orderId: ref,
        amount: order.base,
        spend: 0,
        fingerprint: JSON.stringify(["webhook purchase", 1, order.base]),
        timeZone: settings.timeZone,
        groupsMaxAgeMs: settings.directoryCacheMs,
        accrualBp: below ? 0 : connection.percent_bp,
        comment: `${connection.platform} order ${order.number ?? order.orderId}`,
        ledgerOrderId: ledgerOrderIdOf(order),
        source: connection.platform,
        guard: [closed],
      });
    } catch (error) {
      if (!(error instanceof UnprocessableError)) throw error;
    }
    recorded = await getOrder(store.kv, cid, ref);
  }
  if (!recorded) {
    if (order.state !== "closed") {
      for (const r of order.refunds) await applyRefund(ctx, ref, r);
      return { status: "ignored", outcome: "order not paid yet" };
    }
    const res = await store.kv.atomic()
      .check({ key: orderKeys.order(cid, ref), versionstamp: null })
      .set(webhookKeys.closedOrder(cid, ref), { at: store.clock() })
      .commit();
    if (res.ok) return { status: "ignored", outcome: "order closed before it was paid: accrues nothing" };
    recorded = await getOrder(store.kv, cid, ref);
    if (!recorded) throw new ConflictError(`Order "${ref}" changed concurrently`);
  }
  await applyPendingRefunds(ctx, ref);
  for (const r of order.refunds) await applyRefund(ctx, ref, r);
  if (order.state === "closed") await returnMoney(ctx, ref, "close", null);
  return { status: "processed", outcome: `order ${order.state}` };
}

/** Processes one delivery's action for its connection. */
export async function processAction(
  store: Store,
  connection: Connection,
  action: WebhookAction,
  settings: WebhookSettings,
): Promise<ProcessOutcome> {
  const actor: Actor = { companyId: connection.company_id, name: `webhook:${connection.id}`, userId: 0 };
  const ctx: Context = { store, actor, connection, settings };
  switch (action.kind) {
    case "ignore":
      return { status: "ignored", outcome: action.reason };
    case "customer": {
      const id = await customerFor(ctx, action.customer, true);
      return id === null
        ? { status: "ignored", outcome: "customer without email, phone or id" }
        : { status: "processed", outcome: `customer ${id}` };
    }
    case "order":
      return await processOrder(ctx, action.order);
    case "refund": {
      const ref = orderRefOf(connection, action.orderId);
      const applied = await applyRefund(ctx, ref, action.refund);
      return { status: "processed", outcome: applied ? "refund applied" : "refund kept until the order is paid" };
    }
  }
}

/** Hooks for tests: `beforeProcess` runs before each attempt and may throw to make it fail. */
export interface ListenerOptions {
  log?: (line: string) => void;
  beforeProcess?: (event: WebhookEvent) => void | Promise<void>;
  /** Most deliveries processed at once by this listener (default 4). */
  concurrency?: number;
}

function retryDelay(settings: WebhookSettings, attempts: number): number {
  return Math.min(settings.retryBaseMs * 2 ** attempts, 60 * 60 * 1000);
}

/**
 * Processes one queued delivery: on success marks it processed or ignored; on failure records the attempt and
 * enqueues it again after a backoff, or makes it a dead letter after `maxAttempts` (at once for a payload that
 * can never be processed). Never throws, so the queue never redelivers on its own.
 */
export async function handleDelivery(
  store: Store,
  eventId: string,
  settings: WebhookSettings,
  options: ListenerOptions = {},
): Promise<void> {
  const read = await readEvent(store.kv, eventId);
  if (!read || read.entry.value.status !== "queued") return;
  const { entry, body } = read;
  const e = entry.value;
  try {
    const connection = await getConnection(store.kv, e.connection_id);
    if (!connection) {
      await finishEvent(store.kv, entry, {
        status: "ignored",
        outcome: "connection deleted",
        now: store.clock(),
        retentionMs: settings.retentionMs,
      });
      return;
    }
    await options.beforeProcess?.(e);
    const result = await processAction(store, connection, actionOf(e.platform, e.topic, body), settings);
    await finishEvent(store.kv, entry, { ...result, now: store.clock(), retentionMs: settings.retentionMs });
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    options.log?.(`webhook ${e.id} (${e.platform} ${e.topic}) failed, attempt ${e.attempts + 1}: ${message}`);
    // A payload that is not what its topic promises, or that holds values KV cannot store (a key or value too large,
    // a change too large for one write), fails the same way every time: a dead letter at once.
    const permanent = error instanceof PayloadError || error instanceof StoreLimitError ||
      (error instanceof TypeError && /too large/i.test(error.message));
    if (permanent || e.attempts + 1 >= settings.maxAttempts) {
      await killEvent(store.kv, entry, {
        error: message.slice(0, 1000),
        now: store.clock(),
        body,
        retentionMs: settings.retentionMs,
      });
    } else {
      await scheduleRetry(store.kv, entry, {
        error: message.slice(0, 1000),
        delayMs: retryDelay(settings, e.attempts),
        body,
        retentionMs: settings.retentionMs,
      });
    }
  }
}

/** The queue handler of webhook deliveries: true when the message was one (other messages are left alone). */
export function webhookQueueHandler(
  store: Store,
  settings: WebhookSettings,
  options: ListenerOptions = {},
): (message: unknown) => Promise<boolean> {
  return async (message) => {
    if (!isWebhookMessage(message)) return false;
    await handleDelivery(store, message.webhook_event, settings, options);
    return true;
  };
}

/**
 * Listens to the store's queue and processes webhook deliveries; resolves when the store is closed. Call it once
 * per KV handle (main.ts does, in every `deno serve --parallel` worker and on Deno Deploy).
 */
export function startWebhookListener(
  store: Store,
  settings: WebhookSettings,
  options: ListenerOptions = {},
): Promise<void> {
  const handle = webhookQueueHandler(store, settings, options);
  // Few deliveries at once: processing shares the store's write lock (and the CPU) with the receiver, whose replies
  // must stay fast; the queue holds the rest.
  const slots = Math.max(1, options.concurrency ?? 4);
  let busy = 0;
  const waiting: (() => void)[] = [];
  return store.kv.listenQueue(async (message) => {
    if (busy >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    busy++;
    try {
      await handle(message);
    } catch (error) {
      // Only a closed store gets here (shutdown): the message was not acknowledged and will be delivered again.
      options.log?.(`webhook listener: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      busy--;
      waiting.shift()?.();
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// What operators and the back office see

/** Dead letters (of the actor's company, or every company when `actor` is null), oldest first. */
export async function listDeadLetters(store: Store, actor: Actor | null): Promise<DeadLetter[]> {
  return await listStoredDeadLetters(store.kv, actor?.companyId ?? null);
}

/**
 * Puts a dead letter back in the queue (fresh attempts, kept `retentionMs` from now: default 30 days) and files an
 * audit entry of its connection naming the delivery, in the same atomic operation; null when there is none by that
 * id. The entry's actor is `actor`, or `options.by` (default `task:webhooks`) when a task retries across companies.
 */
export async function retryDeadLetter(
  store: Store,
  actor: Actor | null,
  id: string,
  options: { retentionMs?: number; by?: string } = {},
): Promise<DeadLetter | null> {
  return await requeueDeadLetter(store.kv, id, {
    cid: actor?.companyId ?? null,
    retentionMs: options.retentionMs ?? 30 * DAY_MS,
    audit: {
      name: actor?.name ?? options.by ?? "task:webhooks",
      userId: actor?.userId ?? 0,
      at: store.clock(),
      order: store.nextAuditOrder(),
      retentionMs: store.auditRetentionMs,
    },
  });
}

/** The counts of one connection's deliveries: topic -> received, processed, duplicate, ignored, failed. */
export async function connectionStats(
  store: Store,
  actor: Actor | null,
  connectionId: string,
): Promise<Record<string, Record<string, number>> | null> {
  const c = await getConnection(store.kv, connectionId);
  if (!c || (actor && c.company_id !== actor.companyId)) return null;
  return await readStats(store.kv, connectionId);
}

/** Every connection (of the actor's company, or all) with its counts. */
export async function webhookStats(
  store: Store,
  actor: Actor | null,
): Promise<{ connection: Connection; stats: Record<string, Record<string, number>> }[]> {
  const out = [];
  for (const connection of await listConnections(store.kv, actor?.companyId ?? null)) {
    out.push({ connection, stats: await readStats(store.kv, connection.id) });
  }
  return out;
}

/** One delivery's record (state, attempts, last error), or null. */
export async function getDelivery(store: Store, id: string): Promise<WebhookEvent | null> {
  return (await readEvent(store.kv, id))?.entry.value ?? null;
}
