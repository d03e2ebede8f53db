/**
 * The audit trail: who changed what, when, with each changed field's old and new value. Entries are decided here
 * (pure) and written by storage in the same atomic operation as the change they describe.
 */

/** Kinds of record the trail covers. */
export type AuditEntity =
  | "customer"
  | "card"
  | "group"
  | "card_type"
  | "bonus_program"
  | "api_key"
  | "balance"
  | "admin_user"
  | "connection";

/** Who makes a change: the company it is made in, a name (`key:<id>`, `import:<file>`, `webhook:<connection>`, `admin:<login>`, `task:<name>`) and the numeric user id stamped on records. */
export interface Actor {
  companyId: string;
  name: string;
  userId: number;
  /**
   * Counts this actor's commits that changed its company (storage/commit.ts): an import run tells its own writes
   * from anyone else's by it (the company's change counter less these).
   */
  commits?: { n: number };
}

/** One changed field. */
export interface AuditChange {
  field: string;
  old: unknown;
  new: unknown;
}

/** One audit entry as stored. */
export interface AuditEntry {
  at: number;
  company_id: string;
  actor: string;
  user_id: number;
  entity: AuditEntity;
  entity_id: string;
  action: "create" | "update" | "delete";
  changes: AuditChange[];
}

/** Fields that change on every write and say nothing of their own: left out of the trail. */
const NOISE = new Set(["last_update_date", "last_update_by", "created_date", "created_by"]);

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The fields whose values differ between two versions of a record (null: the record does not exist). */
export function diffFields(
  before: Record<string, unknown> | null,
  after: Record<string, unknown> | null,
): AuditChange[] {
  const names = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  const out: AuditChange[] = [];
  for (const field of names) {
    if (NOISE.has(field)) continue;
    const old = before?.[field] ?? null;
    const next = after?.[field] ?? null;
    if (!same(old, next)) out.push({ field, old, new: next });
  }
  return out;
}

/**
 * The audit entry of a change from `before` to `after`, or null when nothing but bookkeeping changed (an update
 * that sets every field to its current value writes no entry).
 */
export function auditEntry(
  actor: Actor,
  change: {
    entity: AuditEntity;
    entityId: string | number;
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
    at: number;
  },
): AuditEntry | null {
  const changes = diffFields(change.before, change.after);
  const action = change.before === null ? "create" : change.after === null ? "delete" : "update";
  if (action === "update" && changes.length === 0) return null;
  return {
    at: change.at,
    company_id: actor.companyId,
    actor: actor.name,
    user_id: actor.userId,
    entity: change.entity,
    entity_id: String(change.entityId),
    action,
    changes,
  };
}

const HISTORY_CURSOR_PREFIX = "h";

/** Where a history page ends: the time and order of its last entry. */
export interface HistoryPosition {
  at: number;
  order: string;
}

/** Makes the opaque cursor that continues a history after an entry. */
export function encodeHistoryCursor(position: HistoryPosition): string {
  return btoa(`${HISTORY_CURSOR_PREFIX}${position.at}.${position.order}`).replaceAll("=", "");
}

/** Reads a history cursor back; null when it is not one of ours. */
export function decodeHistoryCursor(cursor: string): HistoryPosition | null {
  let text: string;
  try {
    text = atob(cursor.trim());
  } catch {
    return null;
  }
  const match = /^h(\d{1,16})\.([0-9a-zA-Z-]{1,64})$/.exec(text);
  if (!match) return null;
  const at = Number(match[1]);
  return Number.isSafeInteger(at) ? { at, order: match[2]! } : null;
}

/** Renders a stored value of a changed field for the wire: dates as the API writes them, the rest as is. */
export function auditValue(
  field: string,
  value: unknown,
  formatDate: (ms: number) => string,
): string | number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" && field.endsWith("_date")) return formatDate(value);
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number" || typeof value === "string") return value;
  return JSON.stringify(value);
}
