/**
 * The last-name index: the lookup form of a last name, so that "ivan", "Иванов" or "IVANOVA " find by prefix
 * what was stored in any case and spacing.
 */

/** Longest prefix kept in the index (longer names are cut; the record keeps the full name). */
export const MAX_NAME_KEY = 100;

/** The lookup form of a last name: NFKC, trimmed, inner white space folded, lower-case, ё as е; null when empty. */
export function lastNameKey(name: string | null): string | null {
  if (name === null) return null;
  const key = name.normalize("NFKC").trim().replace(/\s+/g, " ").toLowerCase().replaceAll("ё", "е");
  return key === "" ? null : key.slice(0, MAX_NAME_KEY);
}
