/**
 * Back-office use cases: users and roles per company, signing in and out with server-side sessions, failed
 * sign-ins slowed down per login and address, and the dashboard's figures. (usecases/admin.ts is the operator's
 * verify and expiry; this is the web back office.)
 */
import {
  type AdminRole,
  type AdminSession,
  type AdminUser,
  checkLogin,
  checkPassword,
  hashPassword,
  LOGIN_CSRF_MS,
  PBKDF2_ITERATIONS,
  randomToken,
  sessionMatches,
  signLoginCsrf,
  verifyLoginCsrf,
  verifyPassword,
} from "../domain/admin_user.ts";
import type { Actor } from "../domain/audit.ts";
import { addDays, formatDate, localDate } from "../domain/dates.ts";
import { AppError } from "../domain/errors.ts";
import {
  addFailure,
  clearFailures,
  deleteAdminUser,
  deleteSession,
  getAdminUser,
  getFailures,
  getSession,
  insertAdminUser,
  listAdminUsers as listStoredUsers,
  putSession,
  replaceAdminUser,
  serverSecret,
} from "../storage/admin_users.ts";
import { type CompanyStats, companyStats } from "../storage/admin_stats.ts";
import { TtlCache } from "../storage/store.ts";
import type { Store } from "../storage/store.ts";

/** How long a session lasts without signing in again: 8 hours, a working day at the till. */
export const SESSION_MS = 8 * 60 * 60 * 1000;
/** Failed sign-ins of one login from one address before further tries are refused for the window. */
export const MAX_FAILED_SIGN_INS = 5;
/** How long failed sign-ins are remembered after the last one: 15 minutes. */
export const FAILURE_WINDOW_MS = 15 * 60 * 1000;

/** Too many failed sign-ins: 429, told without saying whether the password was right. */
export class TooManySignInsError extends AppError {
  override status = 429;
  constructor(message: string) {
    super(message);
    this.name = "TooManySignInsError";
  }
}

/** The actor of the audit trail for a back-office user: `admin:<login>`. */
export function adminActor(companyId: string, login: string): Actor {
  return { companyId, name: `admin:${login}`, userId: 0 };
}

/** Creates a back-office user; without a password a one-time one is made and returned (shown once). */
export async function createAdminUser(
  store: Store,
  actor: Actor,
  input: {
    login: string;
    role: AdminRole;
    password?: string;
    /** PBKDF2 rounds (default PBKDF2_ITERATIONS; tests pass fewer). */
    iterations?: number;
  },
): Promise<{ user: AdminUser; password: string }> {
  const login = checkLogin(input.login);
  const password = input.password === undefined ? randomToken(12) : checkPassword(input.password);
  const now = store.clock();
  const user: AdminUser = {
    company_id: actor.companyId,
    login,
    role: input.role,
    password: await hashPassword(password, input.iterations ?? PBKDF2_ITERATIONS),
    created_date: now,
    password_date: now,
    stamp: randomToken(16),
  };
  await insertAdminUser(store, actor, user);
  return { user, password };
}

/** The users of the actor's company, by login. */
export async function listAdminUsers(store: Store, actor: Actor): Promise<AdminUser[]> {
  return await listStoredUsers(store.kv, actor.companyId);
}

/** Sets a user's password (a new one-time one when none is given, returned). */
export async function setAdminPassword(
  store: Store,
  actor: Actor,
  input: { login: string; password?: string; iterations?: number },
): Promise<string> {
  const password = input.password === undefined ? randomToken(12) : checkPassword(input.password);
  const hash = await hashPassword(password, input.iterations ?? PBKDF2_ITERATIONS);
  const now = store.clock();
  await replaceAdminUser(store, actor, {
    login: checkLogin(input.login),
    // A new stamp ends every session made with the old password.
    apply: (user) => ({ ...user, password: hash, password_date: now, stamp: randomToken(16) }),
  });
  return password;
}

/**
 * Deletes a user; their sessions end at their next request, and stay ended if the login is created again (the new
 * user has another credential stamp).
 */
export async function removeAdminUser(store: Store, actor: Actor, login: string): Promise<AdminUser> {
  return await deleteAdminUser(store, actor, checkLogin(login));
}

/** A new session: the token for the cookie (never stored) and what is stored under its hash. */
export interface SignedIn {
  token: string;
  session: AdminSession;
}

/**
 * Signs a user in: refused (429) after MAX_FAILED_SIGN_INS failures of that login from that address within
 * FAILURE_WINDOW_MS; a wrong password or unknown login is one message, and costs the same hashing work.
 */
export async function signIn(
  store: Store,
  input: { companyId: string; login: string; password: string; address: string; iterations?: number },
): Promise<SignedIn | null> {
  const { kv } = store;
  const login = input.login.trim().toLowerCase().slice(0, 64);
  const failureKey = `${input.companyId}/${login}`;
  if (await getFailures(kv, failureKey, input.address) >= MAX_FAILED_SIGN_INS) {
    throw new TooManySignInsError("Too many failed sign-ins: try again in 15 minutes");
  }
  const user = input.companyId === "" || login === "" ? null : await getAdminUser(kv, input.companyId, login);
  // An unknown login is checked against a throw-away hash, so both answers take as long.
  const ok = await verifyPassword(input.password, user?.password ?? dummyHash(input.iterations));
  if (!user || !ok) {
    await addFailure(kv, failureKey, { address: input.address, windowMs: FAILURE_WINDOW_MS });
    return null;
  }
  await clearFailures(kv, failureKey, input.address);
  const now = store.clock();
  const token = randomToken();
  const session: AdminSession = {
    company_id: user.company_id,
    login: user.login,
    role: user.role,
    csrf: randomToken(),
    stamp: user.stamp,
    created_date: now,
    expires_date: now + SESSION_MS,
  };
  await putSession(kv, token, session);
  return { token, session };
}

/** A salt-and-hash in the stored format that no password matches in practice. */
function dummyHash(iterations = PBKDF2_ITERATIONS): string {
  return `pbkdf2-sha256$${iterations}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
}

/**
 * The session of a cookie token with its user's current role; null when the session ended or expired, or the
 * user was deleted since (even if created again), or their password changed since.
 */
export async function sessionOf(store: Store, token: string): Promise<AdminSession | null> {
  if (token.length === 0 || token.length > 100) return null;
  const session = await getSession(store.kv, token, store.clock());
  if (!session) return null;
  const user = await getAdminUser(store.kv, session.company_id, session.login);
  if (!user || !sessionMatches(session, user)) return null;
  return { ...session, role: user.role };
}

/** The name of the server secret that signs sign-in CSRF tokens. */
const LOGIN_CSRF_SECRET = "login_csrf";

/** The sign-in form's CSRF token for the pre-session nonce (its cookie); good for LOGIN_CSRF_MS. */
export async function loginCsrfToken(store: Store, nonce: string): Promise<string> {
  return await signLoginCsrf(await serverSecret(store.kv, LOGIN_CSRF_SECRET), nonce, store.clock() + LOGIN_CSRF_MS);
}

/** Whether a sign-in form's CSRF token was issued by this store for this nonce and is still good. */
export async function checkLoginCsrf(store: Store, input: { nonce: string; token: string }): Promise<boolean> {
  if (input.nonce === "" || input.token === "" || input.token.length > 100) return false;
  const secret = await serverSecret(store.kv, LOGIN_CSRF_SECRET);
  return await verifyLoginCsrf(secret, { ...input, now: store.clock() });
}

/** Ends a session. */
export async function signOut(store: Store, token: string): Promise<void> {
  if (token.length > 0 && token.length <= 100) await deleteSession(store.kv, token);
}

const statsCaches = new WeakMap<Store, TtlCache<CompanyStats>>();

/** How long dashboard figures are reused: they come from scans. */
export const STATS_CACHE_MS = 60_000;

/**
 * The dashboard's figures: customers, cards, points outstanding and pending, and points accrued and spent per day
 * for the last `days` days (local days of `timeZone`); kept for STATS_CACHE_MS per company.
 */
export async function dashboardStats(
  store: Store,
  actor: Actor,
  options: { timeZone: string; days?: number; fresh?: boolean },
): Promise<CompanyStats> {
  let cache = statsCaches.get(store);
  if (!cache) statsCaches.set(store, cache = new TtlCache({ maxEntries: 1000, clock: store.clock }));
  const hit = options.fresh ? undefined : cache.get(actor.companyId);
  if (hit) return hit;
  const days = options.days ?? 30;
  const now = store.clock();
  const today = localDate(now, options.timeZone);
  const dayList = Array.from({ length: days }, (_, i) => formatDate(addDays(today, i - days + 1)));
  const stats = await companyStats(store.kv, actor.companyId, {
    now,
    days: days + 1,
    dayList,
    dayOf: (ms) => formatDate(localDate(ms, options.timeZone)),
  });
  cache.set(actor.companyId, stats, STATS_CACHE_MS);
  return stats;
}
