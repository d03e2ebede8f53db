/**
 * Shop connection use cases: create, change, list and delete the connections through which Shopify shops and
 * WooCommerce sites send webhooks. Routes, `deno task connect` and the back office call these.
 */
import type { Actor } from "../domain/audit.ts";
import { ValidationError } from "../domain/errors.ts";
import type { Platform } from "../domain/webhooks.ts";
import {
  type Connection,
  deleteConnection as deleteStored,
  listConnections as listStored,
  type PublicConnection,
  saveConnection as saveStored,
  withoutSecret,
} from "../storage/connections.ts";
import { requireEntry } from "../storage/directories.ts";
import type { Store } from "../storage/store.ts";

export type { Connection, PublicConnection };

/** What a connection change sets: absent keys stay, null clears an optional one. */
export interface ConnectionPatch {
  platform?: Platform;
  shop?: string;
  secret?: string;
  bonusId?: number;
  /** Hundredths of a percent; null: the program's rules and tiers. */
  percentBp?: number | null;
  /** Minor units; null: no minimum. */
  minOrder?: number | null;
  name?: string | null;
}

/** The path to give the platform as the webhook's delivery URL. */
export function webhookPath(c: Pick<Connection, "platform" | "id">): string {
  return `/webhooks/${c.platform}/${c.id}`;
}

function required(field: string): ValidationError {
  return new ValidationError(field, `Parameter "${field}" is required to create a connection`);
}

/**
 * Creates a connection (no id; platform, shop, secret and bonus_id required) or changes one of the actor's company,
 * checking that the bonus program exists; the audit trail records the change without the secret.
 */
export async function saveConnection(
  store: Store,
  actor: Actor,
  input: { id?: string | null; patch: ConnectionPatch },
): Promise<{ connection: PublicConnection; isNew: boolean; webhookPath: string }> {
  const p = input.patch;
  if (p.secret !== undefined && p.secret.length < 8) {
    throw new ValidationError("secret", "Invalid secret: must be at least 8 characters");
  }
  if (p.bonusId !== undefined) {
    await requireEntry(store.kv, actor.companyId, { kind: "bonus_programs", id: p.bonusId, field: "bonus_id" });
  }
  const id = input.id ?? null;
  if (id === null) {
    if (p.platform === undefined) throw required("platform");
    if (p.shop === undefined) throw required("shop");
    if (p.secret === undefined) throw required("secret");
    if (p.bonusId === undefined) throw required("bonus_id");
  }
  const { connection, isNew } = await saveStored(store, actor, id, (existing, context) => {
    const base: Connection = existing ?? {
      id: context.id,
      company_id: actor.companyId,
      platform: p.platform!,
      shop: p.shop!,
      name: null,
      secret: p.secret!,
      secret_version: 1,
      bonus_id: p.bonusId!,
      percent_bp: null,
      min_order: null,
      created_date: context.now,
      last_update_date: context.now,
    };
    const secretChanged = existing !== null && p.secret !== undefined && p.secret !== existing.secret;
    return {
      ...base,
      platform: p.platform ?? base.platform,
      shop: p.shop ?? base.shop,
      secret: p.secret ?? base.secret,
      secret_version: base.secret_version + (secretChanged ? 1 : 0),
      bonus_id: p.bonusId ?? base.bonus_id,
      percent_bp: p.percentBp !== undefined ? p.percentBp : base.percent_bp,
      min_order: p.minOrder !== undefined ? p.minOrder : base.min_order,
      name: p.name !== undefined ? p.name : base.name,
      last_update_date: context.now,
    };
  });
  return { connection: withoutSecret(connection), isNew, webhookPath: webhookPath(connection) };
}

/** The connections of the actor's company, without their secrets. */
export async function listConnections(store: Store, actor: Actor): Promise<PublicConnection[]> {
  return (await listStored(store.kv, actor.companyId)).map(withoutSecret);
}

/** Deletes a connection of the actor's company; false when there is none. Deliveries to it are refused from then. */
export async function deleteConnection(store: Store, actor: Actor, id: string): Promise<boolean> {
  return await deleteStored(store, actor, id);
}
