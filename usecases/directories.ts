/** Directory use cases: customer groups, card types and bonus programs. */
import type { Actor } from "../domain/audit.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { type DirectoryKind, listEntries, saveEntry } from "../storage/directories.ts";
import type { Store } from "../storage/store.ts";

export type { DirectoryKind };

/** Every entry of one directory, in id order. */
export async function listDirectory(store: Store, actor: Actor, kind: DirectoryKind): Promise<DirectoryEntry[]> {
  return await listEntries(store.kv, actor.companyId, kind);
}

/** Creates an entry (no id) or renames / re-describes one; names stay unique, case-insensitive. */
export async function saveDirectoryEntry(
  store: Store,
  actor: Actor,
  input: {
    kind: DirectoryKind;
    id?: number;
    name?: string;
    description?: string | null;
    /** Program rules or tier settings to change (null resets one). */
    settings?: Record<string, number | string | null>;
    /** Parameter names to blame in errors. */
    fields?: { id: string; name: string };
  },
): Promise<{ entry: DirectoryEntry; isNew: boolean }> {
  return await saveEntry(store, actor, input);
}
