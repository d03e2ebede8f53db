import type { DirectoryEntry } from "../domain/directory.ts";
import { directoryNameKey } from "../domain/directory.ts";
import { ConflictError, NotFoundError, ValidationError } from "../domain/errors.ts";
import type { Actor, AuditEntity } from "../domain/audit.ts";
import { getManyInBatches } from "./batch.ts";
import { addIndexDiff, diffIndexes, readClaims, RETRY, withRetry, Write } from "./commit.ts";
import type { Store } from "./store.ts";

import { directoryKeys, type DirectoryKind } from "./keys.ts";

export type { DirectoryKind };

const LABEL: Record<DirectoryKind, string> = {
  groups: "Customer group",
  card_types: "Card type",
  bonus_programs: "Bonus program",
};

/** Key builders of a directory (defined with every other key in keys.ts). */
export { directoryKeys };

/** What a writer must add to its own atomic operation to create a directory entry found missing by name. */
export interface PendingEntry {
  entry: DirectoryEntry;
  sequence: Deno.KvEntryMaybe<number>;
  nameVersionstamp: null;
}

/** The outcome of looking up a name: an existing id, or a new entry to create in the caller's operation. */
export type NameResolution = { id: number; pending: null } | { id: number; pending: PendingEntry };

/** Reads one directory entry. */
export async function getEntry(kv: Deno.Kv, cid: string, kind: DirectoryKind, id: number) {
  return (await kv.get<DirectoryEntry>(directoryKeys.entry(cid, kind, id))).value;
}

/** Reads one directory entry and fails with 404 naming `field` when it does not exist. */
export async function requireEntry(
  kv: Deno.Kv,
  cid: string,
  options: { kind: DirectoryKind; id: number; field: string },
): Promise<DirectoryEntry> {
  const entry = await getEntry(kv, cid, options.kind, options.id);
  if (!entry) throw new NotFoundError(`${LABEL[options.kind]} "${options.id}" not found`, options.field);
  return entry;
}

/** Reads many entries by id (in getMany batches), for naming them in replies. */
export async function getEntries(
  kv: Deno.Kv,
  cid: string,
  kind: DirectoryKind,
  ids: Iterable<number>,
): Promise<Map<number, DirectoryEntry>> {
  const unique = [...new Set(ids)];
  const entries = await getManyInBatches<DirectoryEntry>(kv, unique.map((id) => directoryKeys.entry(cid, kind, id)));
  const out = new Map<number, DirectoryEntry>();
  for (const e of entries) if (e.value) out.set(e.value.id, e.value);
  return out;
}

/** The audit entity of each directory. */
const ENTITY: Record<DirectoryKind, AuditEntity> = {
  groups: "group",
  card_types: "card_type",
  bonus_programs: "bonus_program",
};

/** The key of one entry in the store's directory cache (`store.directories`). */
function entryCacheKey(cid: string, kind: DirectoryKind, id: number): string {
  return `${cid}/${kind}/${id}`;
}

/**
 * Like getEntries, but serves entries read less than `maxAgeMs` ago from the store's cache, so naming a group or
 * type on a hot read costs no store round trip. A rename in this process shows at once; one made by another
 * process shows within `maxAgeMs`.
 */
export async function getEntriesCached(
  store: Store,
  cid: string,
  options: { kind: DirectoryKind; ids: Iterable<number>; maxAgeMs: number },
): Promise<Map<number, DirectoryEntry>> {
  const out = new Map<number, DirectoryEntry>();
  const missing: number[] = [];
  for (const id of options.ids) {
    const hit = store.directories.get(entryCacheKey(cid, options.kind, id));
    if (hit) out.set(id, hit);
    else missing.push(id);
  }
  if (missing.length === 0) return out;
  for (const [id, entry] of await getEntries(store.kv, cid, options.kind, missing)) {
    store.directories.set(entryCacheKey(cid, options.kind, id), entry, options.maxAgeMs);
    out.set(id, entry);
  }
  return out;
}

/**
 * The entries getEntriesCached would give, when the store's cache holds every one of them (no store read, no turn
 * of the event loop), else undefined.
 */
export function cachedEntries(
  store: Store,
  cid: string,
  options: { kind: DirectoryKind; ids: Iterable<number> },
): Map<number, DirectoryEntry> | undefined {
  const out = new Map<number, DirectoryEntry>();
  for (const id of options.ids) {
    const hit = store.directories.get(entryCacheKey(cid, options.kind, id));
    if (!hit) return undefined;
    out.set(id, hit);
  }
  return out;
}

/**
 * Lists a whole directory, served from the store's cache when read less than `maxAgeMs` ago (a change made in this
 * process shows at once; one made by another process within `maxAgeMs`).
 */
export async function listEntriesCached(
  store: Store,
  cid: string,
  options: { kind: DirectoryKind; maxAgeMs: number },
): Promise<DirectoryEntry[]> {
  const key = `${cid}/${options.kind}`;
  const hit = store.directoryLists.get(key);
  if (hit) return hit;
  const entries = await listEntries(store.kv, cid, options.kind);
  store.directoryLists.set(key, entries, options.maxAgeMs);
  return entries;
}

/** Lists a whole directory in id order (directories are small: tens to hundreds of entries). */
export async function listEntries(kv: Deno.Kv, cid: string, kind: DirectoryKind): Promise<DirectoryEntry[]> {
  const out: DirectoryEntry[] = [];
  for await (const e of kv.list<DirectoryEntry>({ prefix: directoryKeys.entries(cid, kind) })) out.push(e.value);
  return out;
}

/** Finds the entry of a name, or plans its creation inside the caller's atomic operation. */
export async function resolveName(
  kv: Deno.Kv,
  cid: string,
  options: { kind: DirectoryKind; name: string; now: number },
): Promise<NameResolution> {
  const [byName, sequence] = await kv.getMany<[number, number]>([
    directoryKeys.byName(cid, options.kind, directoryNameKey(options.name)),
    directoryKeys.sequence(cid, options.kind),
  ]);
  if (byName.value !== null) return { id: byName.value, pending: null };
  const id = (sequence.value ?? 0) + 1;
  const entry: DirectoryEntry = {
    id,
    name: options.name,
    description: null,
    created_date: options.now,
    last_update_date: options.now,
  };
  return { id, pending: { entry, sequence, nameVersionstamp: null } };
}

/** Adds the checks and writes that create a planned entry (2 checks, 3 sets) to an atomic operation. */
export function addPendingEntry(write: Write, cid: string, kind: DirectoryKind, pending: PendingEntry): void {
  const nameKey = directoryKeys.byName(cid, kind, directoryNameKey(pending.entry.name));
  write.audit({ entity: ENTITY[kind], entityId: pending.entry.id, before: null, after: pending.entry });
  write.check({ key: nameKey, versionstamp: null }, pending.sequence)
    .set(directoryKeys.sequence(cid, kind), pending.entry.id)
    .set(nameKey, pending.entry.id)
    .set(directoryKeys.entry(cid, kind, pending.entry.id), pending.entry);
}

/** Creates an entry, or renames / re-describes the entry `id`; names stay unique (case-insensitive). */
export async function saveEntry(
  store: Store,
  actor: Actor,
  options: {
    kind: DirectoryKind;
    id?: number;
    name?: string;
    description?: string | null;
    /** Settings to change (null resets one to its default); the others stay. */
    settings?: Record<string, number | string | null>;
    /** Parameter names to blame in errors (default "id" and "name"). */
    fields?: { id: string; name: string };
  },
): Promise<{ entry: DirectoryEntry; isNew: boolean }> {
  const { kind } = options;
  const { kv } = store;
  const cid = actor.companyId;
  const fields = options.fields ?? { id: "id", name: "name" };
  return await withRetry(async () => {
    const now = store.clock();
    const write = new Write(store, actor);
    let before: Deno.KvEntry<DirectoryEntry> | null = null;
    let entry: DirectoryEntry;
    if (options.id !== undefined) {
      const current = await kv.get<DirectoryEntry>(directoryKeys.entry(cid, kind, options.id));
      if (!current.value) throw new NotFoundError(`${LABEL[kind]} "${options.id}" not found`, fields.id);
      before = current as Deno.KvEntry<DirectoryEntry>;
      write.check(current);
      entry = { ...current.value, last_update_date: now };
      if (options.name !== undefined) entry.name = options.name;
      if (options.description !== undefined) entry.description = options.description;
      if (options.settings && Object.keys(options.settings).length > 0) {
        entry.settings = { ...entry.settings, ...options.settings };
      }
    } else {
      if (options.name === undefined) throw new ValidationError(fields.name, `${LABEL[kind]} needs a name`);
      const sequence = await kv.get<number>(directoryKeys.sequence(cid, kind));
      const id = (sequence.value ?? 0) + 1;
      write.check(sequence, { key: directoryKeys.entry(cid, kind, id), versionstamp: null });
      write.set(directoryKeys.sequence(cid, kind), id);
      entry = {
        id,
        name: options.name,
        description: options.description ?? null,
        created_date: now,
        last_update_date: now,
        ...(options.settings && Object.keys(options.settings).length > 0 ? { settings: { ...options.settings } } : {}),
      };
    }
    const oldName = before ? directoryNameKey(before.value.name) : null;
    const diff = diffIndexes(
      oldName === null ? null : { unique: { name: directoryKeys.byName(cid, kind, oldName) }, lists: [] },
      { unique: { name: directoryKeys.byName(cid, kind, directoryNameKey(entry.name)) }, lists: [] },
    );
    const claims = await readClaims(kv, diff, {
      id: entry.id,
      clash: () => {
        const verb = options.id === undefined ? "create" : "rename";
        throw new ConflictError(
          `Cannot ${verb} ${LABEL[kind].toLowerCase()}: name "${entry.name}" is already taken`,
          fields.name,
        );
      },
    });
    if (claims === RETRY) return RETRY;
    addIndexDiff(write, diff, { claims, id: entry.id });
    write.set(directoryKeys.entry(cid, kind, entry.id), entry);
    write.audit({
      entity: ENTITY[kind],
      entityId: entry.id,
      before: before?.value ?? null,
      after: entry,
    });
    if (!await write.commit(`save ${LABEL[kind].toLowerCase()}`)) return RETRY;
    store.directories.delete(entryCacheKey(cid, kind, entry.id));
    store.directoryLists.delete(`${cid}/${kind}`);
    return { entry, isNew: options.id === undefined };
  }, { message: `Cannot save ${LABEL[kind].toLowerCase()}: it changed concurrently, try again` });
}
