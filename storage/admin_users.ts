/**
 * Back-office users, sessions and failed sign-ins in KV. Users sit under their company; sessions and failure
 * counts sit at the top with `expireIn`, so they vanish by themselves.
 */
import { type AdminSession, type AdminUser, auditedUser, randomToken } from "../domain/admin_user.ts";
import { hashApiKey } from "../domain/api_key.ts";
import type { Actor } from "../domain/audit.ts";
import { ConflictError, NotFoundError } from "../domain/errors.ts";
import { Write } from "./commit.ts";
import { adminKeys } from "./keys.ts";
import type { Store } from "./store.ts";

/** Reads one user. */
export async function getAdminUser(kv: Deno.Kv, cid: string, login: string): Promise<AdminUser | null> {
  return (await kv.get<AdminUser>(adminKeys.user(cid, login))).value;
}

/** Every user of a company, by login. */
export async function listAdminUsers(kv: Deno.Kv, cid: string): Promise<AdminUser[]> {
  const out: AdminUser[] = [];
  for await (const e of kv.list<AdminUser>({ prefix: adminKeys.users(cid) })) out.push(e.value);
  return out;
}

/** Creates a user (409 when the login is taken) with its audit entry, in one atomic write. */
export async function insertAdminUser(store: Store, actor: Actor, user: AdminUser): Promise<void> {
  const key = adminKeys.user(user.company_id, user.login);
  const write = new Write(store, actor).check({ key, versionstamp: null }).set(key, user);
  write.audit({ entity: "admin_user", entityId: user.login, before: null, after: auditedUser(user) });
  if (!await write.commit("create back-office user")) {
    throw new ConflictError(`Cannot create user: login "${user.login}" is already taken`, "login");
  }
}

/** Replaces a user (a new password or role) if it has not changed since read; audited without the hash. */
export async function replaceAdminUser(
  store: Store,
  actor: Actor,
  change: { login: string; apply: (user: AdminUser) => AdminUser },
): Promise<AdminUser> {
  const key = adminKeys.user(actor.companyId, change.login);
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await store.kv.get<AdminUser>(key);
    if (entry.value === null) throw new NotFoundError(`User "${change.login}" not found`, "login");
    const next = change.apply(entry.value);
    const write = new Write(store, actor).check(entry).set(key, next);
    write.audit({
      entity: "admin_user",
      entityId: next.login,
      before: auditedUser(entry.value),
      after: auditedUser(next),
    });
    if (await write.commit("change back-office user")) return next;
  }
  throw new ConflictError("Cannot change user: it was changed concurrently, try again");
}

/** Deletes a user; their sessions stop at their next request (the user is read on every request). */
export async function deleteAdminUser(store: Store, actor: Actor, login: string): Promise<AdminUser> {
  const key = adminKeys.user(actor.companyId, login);
  const entry = await store.kv.get<AdminUser>(key);
  if (entry.value === null) throw new NotFoundError(`User "${login}" not found`, "login");
  const write = new Write(store, actor).check(entry).delete(key);
  write.audit({ entity: "admin_user", entityId: login, before: auditedUser(entry.value), after: null });
  if (!await write.commit("delete back-office user")) {
    throw new ConflictError("Cannot delete user: it was changed concurrently, try again");
  }
  return entry.value;
}

/** Stores a session under the hash of its token, expiring with it. */
export async function putSession(kv: Deno.Kv, token: string, session: AdminSession): Promise<void> {
  const ttl = Math.max(1000, session.expires_date - session.created_date);
  await kv.set(adminKeys.session(await hashApiKey(token)), session, { expireIn: ttl });
}

/** The session of a token, or null (unknown, ended or expired). */
export async function getSession(kv: Deno.Kv, token: string, now: number): Promise<AdminSession | null> {
  const session = (await kv.get<AdminSession>(adminKeys.session(await hashApiKey(token)))).value;
  // expireIn removes keys lazily, so the expiry is checked here too.
  return session && session.expires_date > now ? session : null;
}

/** Ends a session. */
export async function deleteSession(kv: Deno.Kv, token: string): Promise<void> {
  await kv.delete(adminKeys.session(await hashApiKey(token)));
}

/** Failed sign-ins of a login from an address within the current window. */
export async function getFailures(kv: Deno.Kv, login: string, address: string): Promise<number> {
  return (await kv.get<number>(adminKeys.failures(login, address))).value ?? 0;
}

/** Counts one more failed sign-in; the count disappears `windowMs` after the last failure. */
export async function addFailure(
  kv: Deno.Kv,
  login: string,
  options: { address: string; windowMs: number },
): Promise<number> {
  const key = adminKeys.failures(login, options.address);
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await kv.get<number>(key);
    const next = (entry.value ?? 0) + 1;
    const res = await kv.atomic().check(entry).set(key, next, { expireIn: options.windowMs }).commit();
    if (res.ok) return next;
  }
  return await getFailures(kv, login, options.address);
}

/** Forgets the failures of a login from an address (after a successful sign-in). */
export async function clearFailures(kv: Deno.Kv, login: string, address: string): Promise<void> {
  await kv.delete(adminKeys.failures(login, address));
}

/** A server secret of the store, made at first use (the first of two processes making it at once wins). */
export async function serverSecret(kv: Deno.Kv, name: string): Promise<string> {
  const key = adminKeys.secret(name);
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await kv.get<string>(key);
    if (entry.value !== null) return entry.value;
    // Made here unless another process made it meanwhile: either way the next read returns the one kept.
    await kv.atomic().check({ key, versionstamp: null }).set(key, randomToken(32)).commit();
  }
  throw new Error(`Cannot read or make the server secret "${name}"`);
}
