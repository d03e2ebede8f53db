/** Reading the audit trail (entries are written by commit.ts, in the atomic write of the change they describe). */
import type { AuditEntity, AuditEntry, HistoryPosition } from "../domain/audit.ts";
import { auditKeys } from "./keys.ts";

/** One stored entry with its position (for cursors). */
export interface PositionedEntry {
  entry: AuditEntry;
  position: HistoryPosition;
}

/**
 * Reads the history of one entity, newest first: `skip` entries are passed over (page numbers), or the page
 * starts after `before` (a cursor). Expired entries are gone from KV and never seen.
 */
export async function listHistory(
  kv: Deno.Kv,
  cid: string,
  options: { entity: AuditEntity; entityId: string; limit: number; skip?: number; before?: HistoryPosition },
): Promise<PositionedEntry[]> {
  const prefix = auditKeys.ofEntity(cid, options.entity, options.entityId);
  const selector: Deno.KvListSelector = options.before
    ? {
      prefix,
      end: auditKeys.entry(cid, options.entity, options.entityId, options.before.at, { order: options.before.order }),
    }
    : { prefix };
  const skip = options.skip ?? 0;
  const out: PositionedEntry[] = [];
  const iter = kv.list<AuditEntry>(selector, {
    reverse: true,
    limit: skip + options.limit,
    batchSize: Math.min(1000, skip + options.limit),
  });
  let seen = 0;
  for await (const e of iter) {
    if (seen++ < skip) continue;
    out.push({ entry: e.value, position: { at: e.key.at(-2) as number, order: e.key.at(-1) as string } });
  }
  return out;
}
