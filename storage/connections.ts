/**
 * Shop connections in KV: one global record per connection (the receiver finds it by the id in the webhook URL;
 * the record names its company), written with its audit entry through the one commit path. The secret is kept as
 * given, because verifying an HMAC needs the secret itself; it never leaves storage except to the verifier.
 */
import type { Actor } from "../domain/audit.ts";
import type { Platform } from "../domain/webhooks.ts";
import { NotFoundError } from "../domain/errors.ts";
import { RETRY, withRetry, Write } from "./commit.ts";
import { webhookKeys } from "./keys.ts";
import { type Store, TtlCache } from "./store.ts";

/** A connection as stored. */
export interface Connection {
  id: string;
  company_id: string;
  platform: Platform;
  shop: string;
  name: string | null;
  /** The shared secret of the platform's webhooks (Shopify client secret, WooCommerce webhook secret). */
  secret: string;
  /** Grows by one on every change of the secret: what the audit trail records instead of the secret. */
  secret_version: number;
  bonus_id: number;
  /** Accrual in hundredths of a percent of the paid total excluding shipping; null: the program's rules. */
  percent_bp: number | null;
  /** Orders below this (minor units) accrue nothing; null: no minimum. */
  min_order: number | null;
  created_date: number;
  last_update_date: number;
}

/** A connection without its secret: what is shown and audited. */
export type PublicConnection = Omit<Connection, "secret">;

/** The connection without its secret. */
export function withoutSecret(c: Connection): PublicConnection {
  const { secret: _secret, ...rest } = c;
  return rest;
}

const caches = new WeakMap<Store, TtlCache<Connection | null>>();

function cacheOf(store: Store): TtlCache<Connection | null> {
  let cache = caches.get(store);
  if (!cache) {
    cache = new TtlCache({ maxEntries: 10_000, clock: store.clock });
    caches.set(store, cache);
  }
  return cache;
}

/** One connection by id, or null. */
export async function getConnection(kv: Deno.Kv, id: string): Promise<Connection | null> {
  return (await kv.get<Connection>(webhookKeys.connection(id))).value;
}

/**
 * One connection by id, reused from memory for up to `maxAgeMs` (hits and misses): the receiver reads it on every
 * delivery. A change made in this process is seen at once; one made in another within `maxAgeMs`.
 */
export async function getConnectionCached(store: Store, id: string, maxAgeMs: number): Promise<Connection | null> {
  const cache = cacheOf(store);
  const hit = cache.get(id);
  if (hit !== undefined) return hit;
  const found = await getConnection(store.kv, id);
  if (maxAgeMs > 0) cache.set(id, found, maxAgeMs);
  return found;
}

/** Every connection of a company (all of them when `cid` is null), oldest id first. */
export async function listConnections(kv: Deno.Kv, cid: string | null): Promise<Connection[]> {
  const out: Connection[] = [];
  for await (const e of kv.list<Connection>({ prefix: webhookKeys.connections() })) {
    if (cid === null || e.value.company_id === cid) out.push(e.value);
  }
  return out;
}

/**
 * Creates (id null) or changes a connection of the actor's company with its audit entry, in one atomic write.
 * `decide` computes the record from the current one; a connection of another company is not found.
 */
export async function saveConnection(
  store: Store,
  actor: Actor,
  id: string | null,
  decide: (existing: Connection | null, context: { id: string; now: number }) => Connection,
): Promise<{ connection: Connection; isNew: boolean }> {
  const result = await withRetry(async () => {
    const newId = id ?? crypto.randomUUID().replaceAll("-", "").slice(0, 16);
    const entry = await store.kv.get<Connection>(webhookKeys.connection(newId));
    const existing = entry.value && entry.value.company_id === actor.companyId ? entry.value : null;
    if (id !== null && !existing) throw new NotFoundError(`Connection "${id}" not found`, "connection_id");
    if (id === null && entry.value) return RETRY;
    const next = decide(existing, { id: newId, now: store.clock() });
    const write = new Write(store, actor).check(entry).set(webhookKeys.connection(newId), next);
    write.audit({
      entity: "connection",
      entityId: newId,
      before: existing ? withoutSecret(existing) : null,
      after: withoutSecret(next),
    });
    return await write.commit("save connection") ? { connection: next, isNew: existing === null } : RETRY;
  }, { message: "Cannot save connection: it changed concurrently, try again" });
  cacheOf(store).delete(result.connection.id);
  return result;
}

/** Deletes a connection of the actor's company with its audit entry; false when there is none. */
export async function deleteConnection(store: Store, actor: Actor, id: string): Promise<boolean> {
  const done = await withRetry(async () => {
    const entry = await store.kv.get<Connection>(webhookKeys.connection(id));
    if (!entry.value || entry.value.company_id !== actor.companyId) return false;
    const write = new Write(store, actor).check(entry).delete(webhookKeys.connection(id));
    write.audit({ entity: "connection", entityId: id, before: withoutSecret(entry.value), after: null });
    return await write.commit("delete connection") ? true : RETRY;
  }, { message: "Cannot delete connection: it changed concurrently, try again" });
  cacheOf(store).delete(id);
  return done;
}
