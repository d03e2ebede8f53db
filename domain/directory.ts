import { z } from "zod";
import { ValidationError } from "./errors.ts";
import { type Field, field } from "./fields.ts";

/** An entry of a per-company directory (customer groups, card types, bonus programs). */
export interface DirectoryEntry {
  id: number;
  name: string;
  description: string | null;
  created_date: number;
  last_update_date: number;
  /** Program rules or tier settings by parameter name (see program_settings.ts); absent when none was ever set. */
  settings?: Record<string, number | string | null>;
}

/** Longest accepted directory name, in characters. */
export const MAX_DIRECTORY_NAME = 100;

/** The lookup form of a directory name: trimmed, inner white space folded, lower-cased, so "VIP " finds "vip". */
export function directoryNameKey(name: string): string {
  return name.trim().replace(/\s+/g, " ").toLowerCase();
}

/** Checks a directory name given by a client and returns it tidied (trimmed, white space folded). */
export function checkDirectoryName(raw: string, field: string): string {
  const name = raw.trim().replace(/\s+/g, " ");
  if (name === "") throw new ValidationError(field, `Invalid ${field} "": must not be empty`);
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new ValidationError(field, `Invalid ${field} "${name.slice(0, 40)}": control characters are not allowed`);
  }
  if (name.length > MAX_DIRECTORY_NAME) {
    throw new ValidationError(
      field,
      `Invalid ${field} "${name.slice(0, 40)}…": at most ${MAX_DIRECTORY_NAME} characters`,
    );
  }
  return name;
}

const NAME_WIRE = z.string().min(1).max(MAX_DIRECTORY_NAME);

/** The name of a directory entry being created or renamed: required, tidied. */
export const directoryName: Field<string> = field(checkDirectoryName, {
  wire: NAME_WIRE,
  description: "Trimmed, inner white space folded; unique per company in any case.",
  example: "VIP",
});

/** A reference to a directory entry by name; empty means null (none). */
export const directoryNameField: Field<string | null> = field(
  (raw, name) => raw.trim() === "" ? null : checkDirectoryName(raw, name),
  {
    wire: z.string().max(MAX_DIRECTORY_NAME),
    description: "Trimmed, inner white space folded, any case.",
    example: "VIP",
  },
);
