/**
 * Back-office users: who may sign in to `/admin`, in which company and with which role, and how their passwords
 * are kept (PBKDF2-SHA-256 through WebCrypto, salted, many iterations, compared in constant time).
 */
import { constantTimeEqual } from "./api_key.ts";
import { ValidationError } from "./errors.ts";

/** What a back-office user may do: everything, everything but users and keys, or only read. */
export const ADMIN_ROLES = ["owner", "manager", "viewer"] as const;

/** One back-office role. */
export type AdminRole = typeof ADMIN_ROLES[number];

/** A back-office user as stored: the password only as a PBKDF2 hash with its salt and iterations. */
export interface AdminUser {
  company_id: string;
  login: string;
  role: AdminRole;
  /** "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>". */
  password: string;
  created_date: number;
  password_date: number;
  /**
   * Credential stamp: random, new when the user is created and at every password change. A session is valid only
   * while it carries the user's current stamp, so a new password, or a user deleted and created again under the
   * same login, ends every earlier session. Absent on users stored before it existed.
   */
  stamp?: string;
}

/** A signed-in session as stored (under the SHA-256 of its token, never the token itself). */
export interface AdminSession {
  company_id: string;
  login: string;
  role: AdminRole;
  /** Token every form of this session must carry (CSRF). */
  csrf: string;
  /** The user's credential stamp at sign-in (see AdminUser.stamp). */
  stamp?: string;
  created_date: number;
  expires_date: number;
}

/** PBKDF2 rounds of new password hashes (OWASP's 2023 advice for PBKDF2-HMAC-SHA256 is 600,000). */
export const PBKDF2_ITERATIONS = 600_000;

/** Shortest accepted password. */
export const MIN_PASSWORD = 10;

/** Parses a login: 1 to 40 lower-case letters, digits, dot, dash or underscore. */
export function checkLogin(raw: string, field = "login"): string {
  const value = raw.trim().toLowerCase();
  if (!/^[a-z0-9][a-z0-9._-]{0,39}$/.test(value)) {
    throw new ValidationError(field, `Invalid ${field} "${raw}": use 1 to 40 letters, digits, ., - or _`);
  }
  return value;
}

/** Parses a role name. */
export function checkRole(raw: string, field = "role"): AdminRole {
  const value = raw.trim().toLowerCase();
  if (!(ADMIN_ROLES as readonly string[]).includes(value)) {
    throw new ValidationError(field, `Invalid ${field} "${raw}": must be owner, manager or viewer`);
  }
  return value as AdminRole;
}

/** Refuses a password that is too short or too long (the hash reads at most 1000 characters). */
export function checkPassword(raw: string, field = "password"): string {
  if (raw.length < MIN_PASSWORD) {
    throw new ValidationError(field, `Invalid ${field}: must be at least ${MIN_PASSWORD} characters`);
  }
  if (raw.length > 1000) throw new ValidationError(field, `Invalid ${field}: must be at most 1000 characters`);
  return raw;
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    material,
    256,
  );
  return new Uint8Array(bits);
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string, iterations = PBKDF2_ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return `pbkdf2-sha256$${iterations}$${b64(salt)}$${b64(await derive(password, salt, iterations))}`;
}

/** Whether a password matches a stored hash; compared in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, rounds, salt, hash] = stored.split("$");
  if (scheme !== "pbkdf2-sha256" || !rounds || !salt || !hash) return false;
  const derived = b64(await derive(password, unb64(salt), Number(rounds)));
  return constantTimeEqual(derived, hash);
}

/** A random token (session id, CSRF token, one-time password): 24 random bytes, URL-safe. */
export function randomToken(bytes = 24): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return b64(raw).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** What a role may do: change customers, cards, points and directories; manage users and API keys. */
export function canChange(role: AdminRole): boolean {
  return role !== "viewer";
}

/** Whether a role manages back-office users and API keys. */
export function canManageAccess(role: AdminRole): boolean {
  return role === "owner";
}

/** A user as the audit trail shows it: never the password hash (nor the credential stamp). */
export function auditedUser(user: AdminUser): Omit<AdminUser, "password" | "stamp"> & { password_date: number } {
  const { password: _, stamp: _stamp, ...rest } = user;
  return rest;
}

/** Whether a session was made with the user's current credentials (same user generation, same password). */
export function sessionMatches(session: AdminSession, user: AdminUser): boolean {
  return session.company_id === user.company_id && session.login === user.login &&
    constantTimeEqual(session.stamp ?? "", user.stamp ?? "");
}

/** How long a sign-in form's CSRF token is accepted: 2 hours. */
export const LOGIN_CSRF_MS = 2 * 60 * 60 * 1000;

async function hmac(secret: string, data: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
  return b64(mac).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/**
 * The sign-in form's CSRF token: `<expiry, base 36>.<HMAC-SHA-256 of the pre-session nonce and the expiry>` under
 * a server secret, so a client cannot make one up, and one is good only with the cookie it was issued for.
 */
export async function signLoginCsrf(secret: string, nonce: string, expires: number): Promise<string> {
  const exp = expires.toString(36);
  return `${exp}.${await hmac(secret, `login-csrf:${nonce}:${exp}`)}`;
}

/** Whether a sign-in CSRF token was issued by signLoginCsrf for this nonce and has not expired. */
export async function verifyLoginCsrf(
  secret: string,
  input: { nonce: string; token: string; now: number },
): Promise<boolean> {
  const m = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(input.token);
  if (!m || input.nonce.length === 0 || input.nonce.length > 100) return false;
  const expires = parseInt(m[1]!, 36);
  if (!(expires > input.now) || expires > input.now + LOGIN_CSRF_MS) return false;
  return constantTimeEqual(m[2]!, await hmac(secret, `login-csrf:${input.nonce}:${m[1]}`));
}
