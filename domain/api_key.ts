import { ValidationError } from "./errors.ts";

/** Whether a key may only read or may also write. */
export type Access = "read" | "write";

/** An API key as stored: only its SHA-256 hash, never the key itself. */
export interface ApiKeyRecord {
  /** Short public id (the first 12 hex digits of the hash), used to list and revoke. */
  id: string;
  hash: string;
  company_id: string;
  user_id: number;
  access: Access;
  label: string | null;
  created_date: number;
  revoked_date: number | null;
  /** This key's own rate limit, overriding the configured default; absent or null means the default. */
  rate_limit?: RateLimit | null;
}

/** A token bucket: `per_second` requests on average (0 for no limit), `burst` at once. */
export interface RateLimit {
  per_second: number;
  burst: number;
}

/** A company (tenant): every record of the service belongs to exactly one. */
export interface Company {
  id: string;
  name: string;
  created_date: number;
}

const KEY_PREFIX = "lk_";

/** Makes a new random API key: "lk_" and 32 base64url characters (192 bits). */
export function generateApiKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let b64 = btoa(String.fromCharCode(...bytes));
  b64 = b64.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
  return KEY_PREFIX + b64;
}

/** The SHA-256 hex digest a key is stored and found by. */
export async function hashApiKey(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Compares two strings in time that depends only on their length, so a hash cannot be guessed by timing. */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Checks a company id: 1 to 40 lower-case letters, digits, "-" or "_". */
export function checkCompanyId(raw: string, field = "company"): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,39}$/.test(raw)) {
    throw new ValidationError(field, `Invalid ${field} "${raw}": use 1 to 40 lower-case letters, digits, - or _`);
  }
  return raw;
}
