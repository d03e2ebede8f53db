/**
 * The back office at `/admin`: server-rendered pages over the same use cases as the API, signed in with a
 * server-side session (cookie), a CSRF token on every form, roles owner / manager / viewer, HTML errors.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import { type AdminSession, canChange, canManageAccess, checkRole, randomToken } from "../../domain/admin_user.ts";
import { constantTimeEqual } from "../../domain/api_key.ts";
import type { Actor } from "../../domain/audit.ts";
import { amountParser, checkIdempotencyKey, MAX_COMMENT } from "../../domain/bonus.ts";
import { CARD_STATUSES, type CardStatus, parseUid } from "../../domain/card.ts";
import { customerFieldParsers } from "../../domain/customer.ts";
import { AppError, ForbiddenError, NotFoundError, PayloadTooLargeError, ValidationError } from "../../domain/errors.ts";
import { parsersOf, text } from "../../domain/fields.ts";
import { directoryName } from "../../domain/directory.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS } from "../../domain/program_settings.ts";
import type { DirectoryKind } from "../../storage/keys.ts";
import {
  adminActor,
  changeBonus,
  createAdminUser,
  createKey,
  customerPage,
  dashboardStats,
  listAdminUsers,
  listDirectory,
  listKeys,
  removeAdminUser,
  revokeKey,
  saveCard,
  saveCustomer,
  saveDirectoryEntry,
  searchCustomers,
  sessionOf,
  signIn,
  signOut,
  TooManySignInsError,
} from "../../usecases/mod.ts";
import type { AppEnv, Deps } from "../context.ts";
import { logError } from "../log.ts";
import { CustomerBody, type PageError, PROFILE_FIELDS, profileValues } from "./customer_page.tsx";
import { WIDGETS } from "./dashboard.tsx";
import { type MessageId, pickLang, type Texts, textsOf } from "./i18n.ts";
import { Layout, type PageContext } from "./layout.tsx";
import {
  AccessBody,
  customerLabel,
  DirectoriesBody,
  DIRECTORY_KINDS,
  ErrorBody,
  FindBody,
  LoginBody,
} from "./pages.tsx";
import { ADMIN_CSS, ADMIN_JS } from "./static.ts";

/** Largest accepted form body: forms are small; uploads (import) get their own limit. */
export const ADMIN_BODY_LIMIT = 64 * 1024;

/** Whether a path belongs to the back office. */
export function isAdminPath(path: string): boolean {
  return path === "/admin" || path.startsWith("/admin/");
}

/** The session cookie. */
const SESSION_COOKIE = "bo_session";
/** The sign-in form's CSRF cookie (double submit: there is no session yet). */
const LOGIN_CSRF_COOKIE = "bo_login_csrf";
/** The language cookie. */
const LANG_COOKIE = "bo_lang";

/** What the back office keeps per request. */
export interface AdminEnv {
  Variables: AppEnv["Variables"] & {
    tx: Texts;
    session: AdminSession;
    token: string;
    actor: Actor;
  };
}

type C = Context<AdminEnv>;

/** Whether the request came over https (directly or through a proxy that says so). */
function isHttps(c: C): boolean {
  const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return forwarded === "https" || new URL(c.req.url).protocol === "https:";
}

/** The peer address (for the failed sign-in count); "local" for in-process calls. */
function addressOf(c: C): string {
  try {
    const addr = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    return addr && "hostname" in addr ? addr.hostname : "local";
  } catch {
    return "local";
  }
}

/** A posted form as plain strings; files are refused. */
async function form(c: C): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("multipart/form-data")) return {};
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== "string") throw new ValidationError(name, `Parameter "${name}" must be text`);
    out[name] = value;
  }
  return out;
}

/** The CSRF token of a form, compared in constant time; 403 when missing or wrong. */
function checkCsrf(sent: string | undefined, expected: string | undefined): void {
  if (!sent || !expected || !constantTimeEqual(sent, expected)) {
    throw new ForbiddenError("Missing or invalid CSRF token: reload the page and try again");
  }
}

/** Builds the back-office app; createApp hands it every request under /admin. */
export function adminRoutes(deps: Deps, options: { log?: (line: string) => void } = {}): Hono<AdminEnv> {
  const { store, config } = deps;
  const tz = config.timeZone;
  const admin = new Hono<AdminEnv>().basePath("/admin");

  const html = (c: C, ctx: Omit<PageContext, "tx">, title: string, body: Child, status = 200) =>
    c.html(
      "<!doctype html>" + (
        <Layout ctx={{ ...ctx, tx: c.var.tx }} title={title}>
          {body}
        </Layout>
      ),
      status as 200,
    );
  const page = (c: C, title: string, body: Child, status = 200) =>
    html(
      c,
      {
        session: c.var.session,
        path: c.req.path,
        query: c.req.query("q"),
        search: new URL(c.req.url).search.slice(1),
      },
      title,
      body,
      status,
    );

  admin.use(bodyLimit({
    maxSize: ADMIN_BODY_LIMIT,
    onError: () => {
      throw new PayloadTooLargeError(`Request body is too large: at most ${ADMIN_BODY_LIMIT} bytes`);
    },
  }));
  admin.use(async (c, next) => {
    const asked = c.req.query("lang");
    const lang = pickLang(asked, getCookie(c, LANG_COOKIE), c.req.header("accept-language"));
    if (asked === "en" || asked === "ru") {
      setCookie(c, LANG_COOKIE, asked, { path: "/admin", sameSite: "Lax", maxAge: 365 * 86400 });
    }
    c.set("tx", textsOf(lang, tz));
    await next();
    c.header("Cache-Control", c.res.headers.get("Cache-Control") ?? "no-store");
    c.header("X-Frame-Options", "DENY");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    c.header(
      "Content-Security-Policy",
      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    );
  });

  admin.get("/static/admin.css", (c) => {
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(ADMIN_CSS, 200, { "Content-Type": "text/css; charset=utf-8" });
  });
  admin.get("/static/admin.js", (c) => {
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(ADMIN_JS, 200, { "Content-Type": "text/javascript; charset=utf-8" });
  });

  const loginPage = (c: C, options: { error?: string | null; status?: number; company?: string; login?: string }) => {
    const csrf = randomToken();
    setCookie(c, LOGIN_CSRF_COOKIE, csrf, {
      path: "/admin",
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c),
    });
    return html(
      c,
      { session: null, path: c.req.path },
      c.var.tx.t("signIn"),
      <LoginBody tx={c.var.tx} csrf={csrf} error={options.error} company={options.company} login={options.login} />,
      options.status ?? 200,
    );
  };

  admin.get("/login", (c) => loginPage(c, {}));
  admin.post("/login", async (c) => {
    const body = await form(c);
    checkCsrf(body._csrf, getCookie(c, LOGIN_CSRF_COOKIE));
    const company = (body.company ?? "").trim().toLowerCase();
    const login = body.login ?? "";
    let signed;
    try {
      signed = await signIn(store, { companyId: company, login, password: body.password ?? "", address: addressOf(c) });
    } catch (error) {
      if (error instanceof TooManySignInsError) {
        return loginPage(c, { error: error.message, status: 429, company, login });
      }
      throw error;
    }
    if (!signed) return loginPage(c, { error: c.var.tx.t("badSignIn"), status: 401, company, login });
    // A new token at every sign-in: a session id planted before sign-in is never the one signed in.
    const old = getCookie(c, SESSION_COOKIE);
    if (old) await signOut(store, old);
    deleteCookie(c, LOGIN_CSRF_COOKIE, { path: "/admin" });
    setCookie(c, SESSION_COOKIE, signed.token, {
      path: "/admin",
      httpOnly: true,
      sameSite: "Lax",
      secure: isHttps(c),
      maxAge: Math.floor((signed.session.expires_date - signed.session.created_date) / 1000),
    });
    return c.redirect("/admin", 303);
  });

  // Everything below needs a session; POSTs also need its CSRF token.
  const requireSession: MiddlewareHandler<AdminEnv> = async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE) ?? "";
    const session = token ? await sessionOf(store, token) : null;
    if (!session) {
      if (c.req.method === "GET" || c.req.method === "HEAD") return c.redirect("/admin/login", 303);
      throw new ForbiddenError("Not signed in: sign in to the back office first");
    }
    c.set("session", session);
    c.set("token", token);
    c.set("actor", adminActor(session.company_id, session.login));
    if (c.req.method === "POST") checkCsrf((await form(c))._csrf, session.csrf);
    await next();
  };
  const requireChange: MiddlewareHandler<AdminEnv> = async (c, next) => {
    if (!canChange(c.var.session.role)) throw new ForbiddenError(`Role "${c.var.session.role}" cannot change data`);
    await next();
  };
  const requireOwner: MiddlewareHandler<AdminEnv> = async (c, next) => {
    if (!canManageAccess(c.var.session.role)) {
      throw new ForbiddenError(`Role "${c.var.session.role}" cannot manage users and API keys`);
    }
    await next();
  };
  admin.use("*", async (c, next) => {
    if (c.req.path.startsWith("/admin/static/") || c.req.path === "/admin/login") return await next();
    return await requireSession(c, next);
  });

  admin.post("/logout", async (c) => {
    await signOut(store, c.var.token);
    deleteCookie(c, SESSION_COOKIE, { path: "/admin" });
    return c.redirect("/admin/login", 303);
  });

  admin.get("/", async (c) => {
    const stats = await dashboardStats(store, c.var.actor, { timeZone: tz, fresh: c.req.query("fresh") === "1" });
    const parts = await Promise.all(WIDGETS.map((w) => w.render({ tx: c.var.tx, stats })));
    return page(
      c,
      c.var.tx.t("dashboard"),
      <div>{parts.map((p, i) => <div key={i} data-widget={WIDGETS[i]!.name}>{p}</div>)}</div>,
    );
  });

  const search = (c: C, q: string) =>
    searchCustomers(store, c.var.actor, q, { defaultCountryCode: config.defaultCountryCode, limit: 20 });
  admin.get("/find", async (c) => {
    const q = c.req.query("q") ?? "";
    const found = await search(c, q);
    if (found.length === 1 && c.req.query("all") !== "1") return c.redirect(`/admin/customers/${found[0]!.id}`, 303);
    return page(c, c.var.tx.t("results"), <FindBody tx={c.var.tx} customers={found} />);
  });
  admin.get("/suggest", async (c) => {
    const found = await search(c, c.req.query("q") ?? "");
    return c.json(found.slice(0, 10).map((cu) => ({ href: `/admin/customers/${cu.id}`, label: customerLabel(cu) })));
  });

  // ---- the customer page -----------------------------------------------------------------------------------

  const customerId = (c: C): number => {
    const raw = c.req.param("id") ?? "";
    if (!/^\d{1,15}$/.test(raw) || Number(raw) < 1) throw new NotFoundError(`Customer "${raw}" not found`, "id");
    return Number(raw);
  };
  const showCustomer = async (
    c: C,
    options: { error?: PageError | null; values?: Record<string, string>; status?: number } = {},
  ) => {
    const id = customerId(c);
    const data = await customerPage(store, c.var.actor, {
      id,
      timeZone: tz,
      maxAgeMs: config.directoryCacheMs,
      ledgerSize: 20,
      historySize: 30,
    });
    if (!data) throw new NotFoundError(`Customer "${id}" not found`, "id");
    const okId = c.req.query("ok");
    const ok = okId && OK_MESSAGES.has(okId) ? c.var.tx.t(okId as MessageId) : null;
    return page(
      c,
      `${c.var.tx.t("customer")}: ${customerLabel(data.customer)}`,
      <CustomerBody
        tx={c.var.tx}
        session={c.var.session}
        page={data}
        timeZone={tz}
        values={{ ...profileValues(data, tz), ...options.values }}
        error={options.error}
        ok={ok}
        idempotencyKey={randomToken(16)}
      />,
      options.status,
    );
  };
  /** Runs a change; a refusal re-renders the page with the message next to the form and the refusal's status. */
  const change = async (
    c: C,
    section: PageError["section"],
    run: (body: Record<string, string>) => Promise<unknown>,
  ) => {
    const body = await form(c);
    try {
      await run(body);
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return await showCustomer(c, {
        error: { section, message: error.message, field: error.field },
        values: section === "profile" ? body : undefined,
        status: error.status,
      });
    }
    return c.redirect(
      `/admin/customers/${customerId(c)}?ok=saved#h-${section === "points" ? "balances" : section}`,
      303,
    );
  };

  admin.get("/customers/:id", (c) => showCustomer(c));
  const parsers = parsersOf(customerFieldParsers(config));
  admin.post("/customers/:id", requireChange, (c) =>
    change(c, "profile", async (body) => {
      const id = customerId(c);
      const data = await customerPage(store, c.var.actor, {
        id,
        timeZone: tz,
        maxAgeMs: config.directoryCacheMs,
        ledgerSize: 1,
        historySize: 1,
      });
      if (!data) throw new NotFoundError(`Customer "${id}" not found`, "id");
      // Only fields whose text changed are sent: an untouched field is never rewritten from its display form.
      const shown = profileValues(data, tz);
      const patch: Record<string, unknown> = {};
      let groupId: number | null | undefined;
      for (const name of PROFILE_FIELDS) {
        const raw = body[name];
        if (raw === undefined || raw === shown[name]) continue;
        if (name === "group_id") groupId = parsers.group_id(raw, name);
        else patch[name] = parsers[name](raw, name);
      }
      await saveCustomer(store, c.var.actor, {
        id,
        create: false,
        patch: patch as Parameters<typeof saveCustomer>[2]["patch"],
        groupId,
        timeZone: tz,
      });
    }));

  admin.post("/customers/:id/cards", requireChange, (c) =>
    change(c, "cards", async (body) => {
      const uid = parseUid(body.uid ?? "", "uid");
      const typeId = parsers.group_id(body.type_id ?? "", "type_id");
      await saveCard(store, c.var.actor, {
        mode: "insert",
        lookup: uid === null ? {} : { uid },
        change: { status: "ACTIVE" },
        refs: { customerId: customerId(c), ...(typeId === null ? {} : { typeId }) },
      });
    }));
  const cardIdOf = (c: C): number => {
    const raw = c.req.param("card") ?? "";
    if (!/^\d{1,15}$/.test(raw)) throw new NotFoundError(`Card "${raw}" not found`, "card_id");
    return Number(raw);
  };
  admin.post("/customers/:id/cards/:card/status", requireChange, (c) =>
    change(c, "cards", async (body) => {
      const status = (body.status ?? "").toUpperCase();
      if (!(CARD_STATUSES as readonly string[]).includes(status)) {
        throw new ValidationError("status", `Invalid status "${body.status ?? ""}": must be NEW, ACTIVE or BLOCKED`);
      }
      await saveOwnCard(c, { status: status as CardStatus }, {});
    }));
  admin.post("/customers/:id/cards/:card/move", requireChange, (c) =>
    change(c, "cards", async (body) => {
      const target = parsers.group_id(body.customer_id ?? "", "customer_id");
      if (target === null) throw new ValidationError("customer_id", 'Parameter "customer_id" is required');
      await saveOwnCard(c, {}, { customerId: target });
    }));
  /** Changes a card of the page's customer (a card of another customer is 404 here). */
  async function saveOwnCard(
    c: C,
    change: { status?: CardStatus },
    refs: { customerId?: number },
  ): Promise<void> {
    const cardId = cardIdOf(c);
    const page = await customerPage(store, c.var.actor, {
      id: customerId(c),
      timeZone: tz,
      maxAgeMs: 0,
      ledgerSize: 1,
      historySize: 1,
    });
    if (!page?.cards.some((n) => n.card.id === cardId)) {
      throw new NotFoundError(`Card "${cardId}" not found`, "card_id");
    }
    await saveCard(store, c.var.actor, { mode: "update", lookup: { card_id: cardId }, change, refs });
  }

  admin.post("/customers/:id/points", requireChange, (c) =>
    change(c, "points", async (body) => {
      const bonusId = parsers.group_id(body.bonus_id ?? "", "bonus_id");
      if (bonusId === null) throw new ValidationError("bonus_id", 'Parameter "bonus_id" is required');
      const amount = amountParser(body.amount ?? "", "amount");
      const comment = (body.comment ?? "").trim();
      if (comment === "") throw new ValidationError("comment", "A comment is required to adjust points");
      if (comment.length > MAX_COMMENT) {
        throw new ValidationError("comment", `Invalid comment: must be at most ${MAX_COMMENT} characters`);
      }
      const key = body.idempotency_key ? checkIdempotencyKey(body.idempotency_key, "idempotency_key") : null;
      await changeBonus(store, c.var.actor, {
        customer: { id: customerId(c) },
        bonusId,
        amount,
        overwrite: false,
        comment,
        orderId: null,
        idempotencyKey: key === null ? null : `admin:${c.var.session.login}:${key}`,
        timeZone: tz,
      });
    }));

  // ---- directories -----------------------------------------------------------------------------------------

  const showDirectories = async (c: C, error?: { kind: DirectoryKind; message: string } | null, status = 200) => {
    const [groups, card_types, bonus_programs] = await Promise.all(
      (["groups", "card_types", "bonus_programs"] as const).map((k) => listDirectory(store, c.var.actor, k)),
    );
    const ok = c.req.query("ok") === "saved" ? c.var.tx.t("saved") : null;
    return page(
      c,
      c.var.tx.t("directories"),
      <DirectoriesBody
        tx={c.var.tx}
        session={c.var.session}
        lists={{ groups: groups!, card_types: card_types!, bonus_programs: bonus_programs! }}
        error={error}
        ok={ok}
      />,
      status,
    );
  };
  admin.get("/directories", (c) => showDirectories(c));
  const saveDirectory = async (c: C) => {
    const kind = c.req.param("kind") as DirectoryKind;
    const spec = DIRECTORY_KINDS.find((d) => d.kind === kind);
    if (!spec) throw new NotFoundError(`No such directory: ${kind}`);
    const rawId = c.req.param("entry");
    const body = await form(c);
    try {
      const entryId = rawId === undefined ? undefined : parsers.group_id(rawId, "id") ?? undefined;
      const rules = kind === "groups" ? GROUP_SETTINGS : kind === "bonus_programs" ? PROGRAM_SETTINGS : {};
      const settingParsers = parsersOf(rules) as Record<string, (raw: string, field: string) => unknown>;
      const settings: Record<string, number | string | null> = {};
      for (const name of spec.settings) {
        if (body[name] !== undefined) {
          settings[name] = settingParsers[name]!(body[name], name) as number | string | null;
        }
      }
      await saveDirectoryEntry(store, c.var.actor, {
        kind,
        id: entryId,
        name: directoryName.parse(body.name ?? ""),
        description: text(1000).parse(body.description ?? ""),
        settings,
      });
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) {
        if (error instanceof Error && error.name === "ZodError") {
          const issue = (error as unknown as { issues: { message: string }[] }).issues[0];
          return await showDirectories(c, { kind, message: issue?.message ?? "Invalid input" }, 400);
        }
        throw error;
      }
      return await showDirectories(c, { kind, message: error.message }, error.status);
    }
    return c.redirect("/admin/directories?ok=saved", 303);
  };
  admin.post("/directories/:kind", requireChange, saveDirectory);
  admin.post("/directories/:kind/:entry", requireChange, saveDirectory);

  // ---- users and API keys (owners) -------------------------------------------------------------------------

  const showAccess = async (
    c: C,
    options: { secret?: { label: MessageId; value: string }; error?: string; status?: number } = {},
  ) => {
    const [users, keys] = await Promise.all([
      listAdminUsers(store, c.var.actor),
      listKeys(store, c.var.session.company_id),
    ]);
    return page(
      c,
      c.var.tx.t("access"),
      <AccessBody
        tx={c.var.tx}
        session={c.var.session}
        users={users}
        keys={keys}
        secret={options.secret}
        error={options.error}
      />,
      options.status,
    );
  };
  const accessChange = async (c: C, run: (body: Record<string, string>) => Promise<Response | void>) => {
    const body = await form(c);
    try {
      return (await run(body)) ?? c.redirect("/admin/access", 303);
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return await showAccess(c, { error: error.message, status: error.status });
    }
  };
  admin.get("/access", requireOwner, (c) => showAccess(c));
  admin.post("/access/users", requireOwner, (c) =>
    accessChange(c, async (body) => {
      const { password } = await createAdminUser(store, c.var.actor, {
        login: body.login ?? "",
        role: checkRole(body.role ?? ""),
      });
      // Shown once, in this reply only (no redirect, so it is not in a URL or a later page).
      return await showAccess(c, { secret: { label: "oneTimePassword", value: password } });
    }));
  admin.post("/access/users/:login/delete", requireOwner, (c) =>
    accessChange(c, async () => {
      const login = c.req.param("login");
      if (login === c.var.session.login) throw new ValidationError("login", "You cannot delete yourself");
      await removeAdminUser(store, c.var.actor, login);
    }));
  admin.post("/access/keys", requireOwner, (c) =>
    accessChange(c, async (body) => {
      const access = body.access === "read" ? "read" : body.access === "write" ? "write" : null;
      if (access === null) {
        throw new ValidationError("access", `Invalid access "${body.access ?? ""}": must be read or write`);
      }
      const label = text(100).parse(body.label ?? "") ?? undefined;
      const created = await createKey(store, {
        companyId: c.var.session.company_id,
        userId: 1,
        access,
        label,
        actorName: c.var.actor.name,
      });
      return await showAccess(c, { secret: { label: "newKey", value: created.key } });
    }));
  admin.post("/access/keys/:key/revoke", requireOwner, (c) =>
    accessChange(c, async () => {
      const id = c.req.param("key");
      const own = (await listKeys(store, c.var.session.company_id)).some((k) => k.id === id);
      if (!own || !await revokeKey(store, id, { actorName: c.var.actor.name })) {
        throw new NotFoundError(`API key "${id}" not found`, "key");
      }
    }));

  admin.all("*", (c) => {
    throw new NotFoundError(`${c.var.tx.t("notFound")}: ${c.req.path}`);
  });

  admin.onError((error, c) => {
    const status = error instanceof AppError ? error.status : 500;
    const tx = c.var.tx ?? textsOf("en", tz);
    if (!(error instanceof AppError)) logError(c as unknown as Context<AppEnv>, error, config, options.log);
    const message = error instanceof AppError ? error.message : tx.t("error");
    const title = status === 404 ? tx.t("notFound") : status === 403 ? tx.t("forbidden") : tx.t("error");
    c.set("tx", tx);
    return html(
      c,
      { session: c.var.session ?? null, path: c.req.path },
      title,
      <ErrorBody tx={tx} message={message} />,
      status,
    );
  });
  return admin;
}

/** Notices a redirect may ask the customer page to show. */
const OK_MESSAGES = new Set(["saved"]);
