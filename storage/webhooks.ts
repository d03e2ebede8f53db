/**
 * Webhook deliveries in KV. An accepted delivery is one atomic operation: the dedupe marker (checked absent), the
 * event record, its raw body in chunks, the `received` counter and the queue message that will process it; so a
 * delivery is either stored and queued exactly once or not at all. (These writes are not changes of a company's
 * records and carry no audit entry; they use KV's atomic operation directly because they enqueue.) Processing moves
 * the event to processed, ignored, skipped, a retry later (re-enqueued with a delay in the same atomic operation as its
 * new attempt count) or a dead letter. Nothing is kept for ever: every write of a delivery's record, its body or its
 * dead letter sets them to expire `retentionMs` later (so a delivery is kept that long after its last change, a dead
 * letter that long after it became one or until it is retried), and a dedupe marker `dedupeTtlMs` after arrival.
 */
import { auditEntry } from "../domain/audit.ts";
import type { Platform } from "../domain/webhooks.ts";
import { auditKeys, webhookKeys } from "./keys.ts";

/** Bytes of raw body per stored chunk: under KV's 64 KiB value limit. */
export const BODY_CHUNK_BYTES = 60_000;

/** Where a delivery stands. */
export type EventStatus = "queued" | "processed" | "ignored" | "skipped" | "dead";

/** A delivery as stored. */
export interface WebhookEvent {
  id: string;
  company_id: string;
  connection_id: string;
  platform: Platform;
  topic: string;
  received_date: number;
  /** The dedupe key it claimed. */
  dedupe: string;
  /** Size of the raw body and the number of chunks it is stored in. */
  size: number;
  chunks: number;
  status: EventStatus;
  /** Failed attempts so far. */
  attempts: number;
  last_error: string | null;
  /** Why it was ignored or what it did, for the operator. */
  outcome: string | null;
  done_date: number | null;
}

/** A delivery that kept failing, kept for `deno task webhooks failed|retry`. */
export interface DeadLetter {
  id: string;
  company_id: string;
  connection_id: string;
  platform: Platform;
  topic: string;
  attempts: number;
  error: string;
  date: number;
}

/** The queue message of a delivery. */
export interface WebhookMessage {
  webhook_event: string;
}

/** Whether a queue message is a webhook delivery's. */
export function isWebhookMessage(message: unknown): message is WebhookMessage {
  return typeof message === "object" && message !== null &&
    typeof (message as Record<string, unknown>).webhook_event === "string";
}

/** An id that sorts by time of arrival: base-36 ms, then randomness. */
export function newEventId(now: number): string {
  return now.toString(36).padStart(9, "0") + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/**
 * Stores and enqueues a delivery with its dedupe marker (kept `dedupeTtlMs`) and its `received` count, in one atomic
 * operation; a delivery whose marker exists is counted as a duplicate and nothing else.
 */
export async function acceptDelivery(
  kv: Deno.Kv,
  event: WebhookEvent,
  body: Uint8Array,
  options: { dedupeTtlMs: number; retentionMs: number },
): Promise<"accepted" | "duplicate"> {
  const dedupeKey = webhookKeys.dedupe(event.connection_id, event.dedupe);
  const op = kv.atomic()
    .check({ key: dedupeKey, versionstamp: null })
    .set(dedupeKey, event.id, { expireIn: options.dedupeTtlMs })
    .set(webhookKeys.event(event.id), event, { expireIn: options.retentionMs });
  setBody(op, event, body, options.retentionMs);
  op.sum(webhookKeys.stat(event.connection_id, event.topic, "received"), 1n)
    .enqueue({ webhook_event: event.id } satisfies WebhookMessage);
  if ((await op.commit()).ok) return "accepted";
  await countStat(kv, event.connection_id, event.topic, ["received", "duplicate"]);
  return "duplicate";
}

/** Adds the chunks of a delivery's raw body to an atomic operation, expiring after `retentionMs`. */
function setBody(op: Deno.AtomicOperation, event: WebhookEvent, body: Uint8Array, retentionMs: number): void {
  for (let i = 0; i < event.chunks; i++) {
    const chunk = body.subarray(i * BODY_CHUNK_BYTES, (i + 1) * BODY_CHUNK_BYTES);
    op.set(webhookKeys.eventBody(event.id, i), chunk, { expireIn: retentionMs });
  }
}

/** Adds one to counters of a connection and topic. */
export async function countStat(kv: Deno.Kv, connectionId: string, topic: string, kinds: string[]): Promise<void> {
  const op = kv.atomic();
  for (const kind of kinds) op.sum(webhookKeys.stat(connectionId, topic, kind), 1n);
  await op.commit();
}

/** A delivery with its versionstamp, and its raw body. */
export async function readEvent(
  kv: Deno.Kv,
  id: string,
): Promise<{ entry: Deno.KvEntry<WebhookEvent>; body: Uint8Array } | null> {
  const entry = await kv.get<WebhookEvent>(webhookKeys.event(id));
  if (!entry.value) return null;
  const parts: Uint8Array[] = [];
  for await (const part of kv.list<Uint8Array>({ prefix: webhookKeys.eventBodies(id) })) parts.push(part.value);
  const body = new Uint8Array(entry.value.size);
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.length;
  }
  return { entry: entry as Deno.KvEntry<WebhookEvent>, body };
}

/**
 * Marks a delivery processed, ignored or skipped and counts it; false when it changed meanwhile (another worker did
 * it).
 */
export async function finishEvent(
  kv: Deno.Kv,
  entry: Deno.KvEntry<WebhookEvent>,
  options: { status: "processed" | "ignored" | "skipped"; outcome: string; now: number; retentionMs: number },
): Promise<boolean> {
  const e = entry.value;
  const done = { ...e, status: options.status, outcome: options.outcome, done_date: options.now };
  const res = await kv.atomic().check(entry)
    .set(webhookKeys.event(e.id), done, { expireIn: options.retentionMs })
    .sum(webhookKeys.stat(e.connection_id, e.topic, options.status), 1n)
    .commit();
  return res.ok;
}

/**
 * Records a failed attempt and enqueues the delivery again after `delayMs`, in one atomic operation that keeps its
 * record and body `retentionMs` from now.
 */
export async function scheduleRetry(
  kv: Deno.Kv,
  entry: Deno.KvEntry<WebhookEvent>,
  options: { error: string; delayMs: number; body: Uint8Array; retentionMs: number },
): Promise<boolean> {
  const e = entry.value;
  const op = kv.atomic().check(entry)
    .set(webhookKeys.event(e.id), { ...e, attempts: e.attempts + 1, last_error: options.error }, {
      expireIn: options.retentionMs,
    });
  setBody(op, e, options.body, options.retentionMs);
  const res = await op
    .enqueue({ webhook_event: e.id } satisfies WebhookMessage, { delay: options.delayMs })
    .commit();
  return res.ok;
}

/**
 * Makes a delivery a dead letter (and counts it failed), in one atomic operation that also keeps its record and body
 * for `retentionMs` from now, so that it can be retried until then.
 */
export async function killEvent(
  kv: Deno.Kv,
  entry: Deno.KvEntry<WebhookEvent>,
  options: { error: string; now: number; body: Uint8Array; retentionMs: number },
): Promise<boolean> {
  const e = entry.value;
  const attempts = e.attempts + 1;
  const letter: DeadLetter = {
    id: e.id,
    company_id: e.company_id,
    connection_id: e.connection_id,
    platform: e.platform,
    topic: e.topic,
    attempts,
    error: options.error,
    date: options.now,
  };
  const dead = { ...e, status: "dead", attempts, last_error: options.error, done_date: options.now };
  const expireIn = options.retentionMs;
  const op = kv.atomic().check(entry)
    .set(webhookKeys.event(e.id), dead, { expireIn })
    .set(webhookKeys.deadLetter(e.id), letter, { expireIn });
  setBody(op, e, options.body, expireIn);
  const res = await op.sum(webhookKeys.stat(e.connection_id, e.topic, "failed"), 1n).commit();
  return res.ok;
}

/** Dead letters, oldest first (of one company, or all when `cid` is null). */
export async function listDeadLetters(kv: Deno.Kv, cid: string | null): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for await (const e of kv.list<DeadLetter>({ prefix: webhookKeys.deadLetters() })) {
    if (cid === null || e.value.company_id === cid) out.push(e.value);
  }
  return out;
}

/** Who retries a dead letter, for the audit entry filed under its connection (in the dead letter's company). */
export interface RetryAuditor {
  /** `task:webhooks`, `admin:<login>`, ... */
  name: string;
  userId: number;
  /** The time of the entry, its order among entries of the same millisecond, and how long it is kept. */
  at: number;
  order: string;
  retentionMs: number;
}

/**
 * Puts a dead letter back in the queue with a fresh attempt count (its record and body kept `retentionMs` from now),
 * in one atomic operation; null when there is no such dead letter (of that company, when `cid` is given). With
 * `audit`, the same operation writes an audit entry of the connection (action update, field `retried_delivery`:
 * the delivery's id), in the dead letter's company.
 */
export async function requeueDeadLetter(
  kv: Deno.Kv,
  id: string,
  options: { cid: string | null; retentionMs: number; audit?: RetryAuditor },
): Promise<DeadLetter | null> {
  const letter = await kv.get<DeadLetter>(webhookKeys.deadLetter(id));
  const read = await readEvent(kv, id);
  if (!letter.value || !read) return null;
  if (options.cid !== null && letter.value.company_id !== options.cid) return null;
  const { entry, body } = read;
  const queued = { ...entry.value, status: "queued", attempts: 0, done_date: null };
  const op = kv.atomic().check(letter, entry)
    .delete(webhookKeys.deadLetter(id))
    .set(webhookKeys.event(id), queued, { expireIn: options.retentionMs });
  setBody(op, entry.value, body, options.retentionMs);
  const a = options.audit;
  if (a) {
    const l = letter.value;
    const audit = auditEntry({ companyId: l.company_id, name: a.name, userId: a.userId }, {
      entity: "connection",
      entityId: l.connection_id,
      before: { retried_delivery: null },
      after: { retried_delivery: `${l.id} (${l.topic}, ${l.attempts} attempts: ${l.error})`.slice(0, 500) },
      at: a.at,
    });
    if (audit) {
      op.set(auditKeys.entry(l.company_id, "connection", l.connection_id, a.at, { order: a.order }), audit, {
        expireIn: a.retentionMs,
      });
    }
  }
  const res = await op.enqueue({ webhook_event: id } satisfies WebhookMessage).commit();
  return res.ok ? letter.value : null;
}

/** A connection's counters: topic -> kind -> count. */
export async function readStats(kv: Deno.Kv, connectionId: string): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for await (const e of kv.list<Deno.KvU64>({ prefix: webhookKeys.stats(connectionId) })) {
    const [, , topic, kind] = e.key as [string, string, string, string];
    (out[topic] ??= {})[kind] = Number(e.value.value);
  }
  return out;
}
