import { z } from "zod";
import { ValidationError } from "./errors.ts";
import { field, type FieldParser, int, invalid } from "./fields.ts";

/** Page size when a paged request does not name one. */
export const DEFAULT_PAGE_SIZE = 200;
/** Largest page a client may ask for. */
export const MAX_PAGE_SIZE = 1000;

const CURSOR_PREFIX = "a";

/** Makes the opaque cursor that continues a list after the record with this id. */
export function encodeCursor(afterId: number): string {
  return btoa(`${CURSOR_PREFIX}${afterId}`).replaceAll("=", "");
}

/** Reads a cursor back into the id it continues after; null when it is not one of ours. */
export function decodeCursor(cursor: string): number | null {
  let text: string;
  try {
    text = atob(cursor.trim());
  } catch {
    return null;
  }
  if (!text.startsWith(CURSOR_PREFIX)) return null;
  const digits = text.slice(CURSOR_PREFIX.length);
  if (!/^\d{1,16}$/.test(digits)) return null;
  const id = Number(digits);
  return Number.isSafeInteger(id) ? id : null;
}

/** Parses a cursor parameter into the id it continues after. */
export const cursorParser: FieldParser<number> = (raw, field) => {
  const after = decodeCursor(raw);
  if (after === null) throw invalid(field, raw, "not a cursor this service gave out");
  return after;
};

/** The paging parameters every listing takes: page number, page size and cursor. */
export const PAGING_PARSERS = {
  page: int(1, 1_000_000_000).describe("Page number, from 1; turns paging on."),
  page_size: int(1, MAX_PAGE_SIZE).describe("Items per page; turns paging on."),
  cursor: field(cursorParser, {
    wire: z.string().regex(/^[A-Za-z0-9+/]+$/),
    description: "Continue after the last item of a previous page (its next_cursor); with page_size, not with page.",
    example: encodeCursor(1),
  }),
};

/** The error of a request that gives both a page number and a cursor. */
export function pageWithCursor(): ValidationError {
  return new ValidationError(
    "cursor",
    'Parameters "page" and "cursor" cannot be combined: use either page or cursor, not both',
  );
}
