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
import { invalid, nonEmpty, parserOf, parsersOf, text } from "../../domain/fields.ts";
import type { ImportPreset, ImportType } from "../../domain/import/columns.ts";
import type { ImportEncoding } from "../../domain/import/csv.ts";
import type { ImportFormat } from "../../domain/import/read.ts";
import { moneyField } from "../../domain/money.ts";
import { isPlatform, PLATFORMS } from "../../domain/webhooks.ts";
import { directoryName } from "../../domain/directory.ts";
import { GROUP_SETTINGS, percentField, PROGRAM_SETTINGS } from "../../domain/program_settings.ts";
import type { DirectoryKind } from "../../storage/keys.ts";
import {
  adminActor,
  changeBonus,
  checkLoginCsrf,
  checkUpload,
  type ConnectionPatch,
  createAdminUser,
  createKey,
  customerPage,
  dashboardStats,
  importJob,
  listAdminUsers,
  listConnections,
  listDeadLetters,
  listDirectory,
  listImports,
  listKeys,
  loginCsrfToken,
  MATCH_FIELDS,
  type MatchField,
  removeAdminUser,
  retryDeadLetter,
  revokeKey,
  saveCard,
  saveConnection,
  saveCustomer,
  saveDirectoryEntry,
  searchCustomers,
  sessionOf,
  signIn,
  signOut,
  startImport,
  TooManySignInsError,
  type UploadOptions,
  webhookPath,
  webhookStats,
} from "../../usecases/mod.ts";
import type { AppEnv, Deps } from "../context.ts";
import { logError } from "../log.ts";
import { CustomerBody, type PageError, PROFILE_FIELDS, profileValues } from "./customer_page.tsx";
import { type ConnectionFormState, ConnectionsBody } from "./connections_page.tsx";
import { type DeliveryTotals, WIDGETS } from "./dashboard.tsx";
import { CheckBody, ImportBody, JobBody, type UploadValues } from "./import_page.tsx";
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
import { parseMultipart } from "./multipart.ts";
import { ADMIN_CSS, ADMIN_JS } from "./static.ts";

/** Largest accepted form body: forms are small; uploads (import) get their own limit. */
export const ADMIN_BODY_LIMIT = 64 * 1024;

/** The path of the import page's upload form (its body limit is the import setting's, not ADMIN_BODY_LIMIT). */
export const ADMIN_UPLOAD_PATH = "/admin/import/check";

/** Whether a path belongs to the back office. */
export function isAdminPath(path: string): boolean {
  return path === "/admin" || path.startsWith("/admin/");
}

/** The session cookie. */
const SESSION_COOKIE = "bo_session";
/**
 * The sign-in form's pre-session cookie: a random nonce the form's CSRF token is bound to (by an HMAC under a
 * server secret). Over https it is a `__Host-` cookie, so no other host or path (a subdomain) can plant one.
 */
const LOGIN_CSRF_COOKIE = "bo_login_csrf";
const LOGIN_CSRF_HOST_COOKIE = "__Host-bo_login_csrf";
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

const bodies = new WeakMap<Request, Promise<Record<string, string | File>>>();

/**
 * The posted form, read once per request: urlencoded by Hono, multipart by our own reader (the runtime's cuts a
 * file name at "="); any other body is an empty form.
 */
function bodyOf(c: C): Promise<Record<string, string | File>> {
  let body = bodies.get(c.req.raw);
  if (!body) {
    const type = c.req.header("content-type") ?? "";
    body = type.startsWith("application/x-www-form-urlencoded")
      ? c.req.parseBody() as Promise<Record<string, string | File>>
      : type.startsWith("multipart/form-data")
      ? c.req.arrayBuffer().then((buf) => parseMultipart(new Uint8Array(buf), type))
      : Promise.resolve({});
    bodies.set(c.req.raw, body);
  }
  return body;
}

/** A posted form as plain strings; files are refused. */
async function form(c: C): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(await bodyOf(c))) {
    if (typeof value !== "string") throw new ValidationError(name, `Parameter "${name}" must be text`);
    out[name] = value;
  }
  return out;
}

/** The CSRF field of a posted form (a form with a file included). */
async function csrfOf(c: C): Promise<string | undefined> {
  const sent = (await bodyOf(c))._csrf;
  return typeof sent === "string" ? sent : undefined;
}

/** The message of an upload over the limit. */
function fileTooLarge(max: number): string {
  return `File is too large: at most ${max} bytes (setting IMPORT_MAX_BODY_BYTES)`;
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

  const formLimit = bodyLimit({
    maxSize: ADMIN_BODY_LIMIT,
    onError: () => {
      throw new PayloadTooLargeError(`Request body is too large: at most ${ADMIN_BODY_LIMIT} bytes`);
    },
  });
  // The upload's body is the file and a few fields: the file's limit plus room for the fields and multipart framing.
  const uploadLimit = bodyLimit({
    maxSize: config.importMaxBodyBytes + ADMIN_BODY_LIMIT,
    onError: () => {
      throw new PayloadTooLargeError(fileTooLarge(config.importMaxBodyBytes));
    },
  });
  admin.use((c, next) => c.req.path === ADMIN_UPLOAD_PATH ? uploadLimit(c, next) : formLimit(c, next));
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

  /** The pre-session cookie: `__Host-` (path /, Secure) over https, a plain one on /admin over http. */
  const loginCookie = (c: C) =>
    isHttps(c)
      ? { name: LOGIN_CSRF_HOST_COOKIE, path: "/", secure: true }
      : { name: LOGIN_CSRF_COOKIE, path: "/admin", secure: false };
  const loginPage = async (
    c: C,
    options: { error?: string | null; status?: number; company?: string; login?: string },
  ) => {
    const cookie = loginCookie(c);
    // The nonce is kept while it lasts, so two sign-in tabs both work.
    const sent = getCookie(c, cookie.name) ?? "";
    const nonce = /^[A-Za-z0-9_-]{32}$/.test(sent) ? sent : randomToken();
    const csrf = await loginCsrfToken(store, nonce);
    setCookie(c, cookie.name, nonce, {
      path: cookie.path,
      httpOnly: true,
      sameSite: "Strict",
      secure: cookie.secure,
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
    const cookie = loginCookie(c);
    if (!await checkLoginCsrf(store, { nonce: getCookie(c, cookie.name) ?? "", token: body._csrf ?? "" })) {
      checkCsrf(undefined, undefined);
    }
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
    deleteCookie(c, cookie.name, { path: cookie.path, secure: cookie.secure });
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
    if (c.req.method === "POST") checkCsrf(await csrfOf(c), session.csrf);
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
    const [stats, hooks, dead, imports] = await Promise.all([
      dashboardStats(store, c.var.actor, { timeZone: tz, fresh: c.req.query("fresh") === "1" }),
      webhookStats(store, c.var.actor),
      listDeadLetters(store, c.var.actor),
      listImports(store, c.var.session.company_id, { limit: 5 }),
    ]);
    const deliveries: DeliveryTotals = {
      connections: hooks.length,
      received: 0,
      processed: 0,
      failed: 0,
      deadLetters: 0,
    };
    for (const { stats: byTopic } of hooks) {
      for (const counts of Object.values(byTopic)) {
        deliveries.received += counts.received ?? 0;
        deliveries.processed += counts.processed ?? 0;
        deliveries.failed += counts.failed ?? 0;
      }
    }
    deliveries.deadLetters = dead.length;
    const parts = await Promise.all(WIDGETS.map((w) => w.render({ tx: c.var.tx, stats, deliveries, imports })));
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
    const raw = idParam(c, "id", "Customer", /^\d{1,15}$/);
    if (Number(raw) < 1) throw new NotFoundError(`Customer "${raw}" not found`, "id");
    return Number(raw);
  };
  const showCustomer = async (
    c: C,
    options: {
      error?: PageError | null;
      values?: Record<string, string>;
      /** What was typed in the points form, shown again with its refusal. */
      points?: Record<string, string>;
      status?: number;
    } = {},
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
        points={options.points}
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
        points: section === "points" ? body : undefined,
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
    return Number(idParam(c, "card", "Card", /^\d{1,15}$/));
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
      // A zero adjustment changes nothing: refused rather than shown as saved.
      if (amount === 0) throw invalid("amount", body.amount ?? "", "must not be 0");
      const comment = (body.comment ?? "").trim();
      // Zero-width and other format characters (\p{Cf}) and white space alone are no comment.
      if (comment.replace(/[\p{Cf}\s]/gu, "") === "") {
        throw new ValidationError("comment", "A comment is required to adjust points");
      }
      if (comment.length > MAX_COMMENT) {
        throw new ValidationError("comment", `Invalid comment: must be at most ${MAX_COMMENT} characters`);
      }
      // The form's key is required: without it every submit of the form would credit again.
      if (!body.idempotency_key) {
        throw new ValidationError(
          "idempotency_key",
          'Parameter "idempotency_key" is required: reload the page and try again',
        );
      }
      const key = checkIdempotencyKey(body.idempotency_key, "idempotency_key");
      await changeBonus(store, c.var.actor, {
        customer: { id: customerId(c) },
        bonusId,
        amount,
        overwrite: false,
        comment,
        orderId: null,
        idempotencyKey: `admin:${c.var.session.login}:${key}`,
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
    const rawId = c.req.param("entry") === undefined ? undefined : idParam(c, "entry", "Entry", /^\d{1,15}$/);
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

  // ---- import ----------------------------------------------------------------------------------------------

  const programsOf = (c: C) => listDirectory(store, c.var.actor, "bonus_programs").then((l) => l ?? []);
  const showImport = async (c: C, options: { error?: string; values?: UploadValues; status?: number } = {}) => {
    const [programs, runs] = await Promise.all([
      programsOf(c),
      listImports(store, c.var.session.company_id, { limit: 20 }),
    ]);
    return page(
      c,
      c.var.tx.t("importTitle"),
      <ImportBody
        tx={c.var.tx}
        session={c.var.session}
        programs={programs}
        runs={runs}
        values={options.values}
        error={options.error}
        maxBytes={config.importMaxBodyBytes}
      />,
      options.status,
    );
  };
  admin.get("/import", (c) => showImport(c));
  admin.post("/import/check", requireChange, async (c) => {
    const body = await bodyOf(c);
    const values: UploadValues = {};
    for (const [k, v] of Object.entries(body)) if (typeof v === "string" && k !== "_csrf") values[k] = v;
    try {
      const file = body.file;
      if (!(file instanceof File) || file.name === "") {
        throw new ValidationError("file", 'Parameter "file" is required: choose a file to import');
      }
      if (file.size > config.importMaxBodyBytes) {
        throw new ValidationError("file", fileTooLarge(config.importMaxBodyBytes));
      }
      const check = await checkUpload(store, c.var.actor, {
        name: file.name.slice(0, 200),
        bytes: new Uint8Array(await file.arrayBuffer()),
        options: uploadOptions(values),
        settings: config,
      });
      return page(c, c.var.tx.t("importTitle"), <CheckBody tx={c.var.tx} session={c.var.session} check={check} />);
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
      return await showImport(c, { error: error.message, values, status: error.status });
    }
  });
  admin.post("/import/run", requireChange, async (c) => {
    const body = await form(c);
    const upload = body.upload ?? "";
    if (!RUN_ID_SHAPE.test(upload)) throw new ValidationError("upload", `Invalid upload "${upload}"`);
    const { job, done } = await startImport(store, c.var.actor, {
      upload,
      rows: Number(body.rows) || 0,
      settings: config,
    });
    const finished = done.catch((error) => logError(c as unknown as Context<AppEnv>, error, config, options.log));
    // A small file is done in a moment: wait that long, so the page shows its report (no JavaScript needed).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([finished, new Promise((resolve) => timer = setTimeout(resolve, IMPORT_WAIT_MS))]);
    clearTimeout(timer);
    return c.redirect(`/admin/import/jobs/${job.id}`, 303);
  });
  const jobOf = async (c: C) => {
    const id = idParam(c, "job", "Import", RUN_ID_SHAPE);
    const job = await importJob(store, c.var.actor, id);
    if (!job) throw new NotFoundError(`Import "${id}" not found`, "job");
    return job;
  };
  admin.get("/import/jobs/:job", async (c) => {
    const job = await jobOf(c);
    return page(c, c.var.tx.t("importTitle"), <JobBody tx={c.var.tx} job={job} now={store.clock()} />);
  });
  admin.get("/import/jobs/:job/progress", async (c) => {
    const job = await jobOf(c);
    return c.json({ state: job.state, rows: job.rows, total: job.total });
  });

  // ---- connections -----------------------------------------------------------------------------------------

  const showConnections = async (
    c: C,
    options: { refused?: ConnectionFormState; ok?: string | null; status?: number } = {},
  ) => {
    const [hooks, dead, programs] = await Promise.all([
      webhookStats(store, c.var.actor),
      listDeadLetters(store, c.var.actor),
      programsOf(c),
    ]);
    const origin = originOf(c);
    const connections = hooks.map(({ connection, stats }) => {
      const { secret: _secret, ...shown } = connection;
      return { connection: shown, stats, url: origin + webhookPath(connection) };
    });
    const okId = c.req.query("ok");
    const ok = options.ok ??
      (okId === "saved" ? c.var.tx.t("saved") : okId === "retried" ? c.var.tx.t("retried") : null);
    return page(
      c,
      c.var.tx.t("connectionsTitle"),
      <ConnectionsBody
        tx={c.var.tx}
        session={c.var.session}
        connections={connections}
        deadLetters={dead}
        programs={programs}
        refused={options.refused}
        ok={ok}
      />,
      options.status,
    );
  };
  admin.get("/connections", (c) => showConnections(c));
  const saveConnectionForm = async (c: C) => {
    const id = c.req.param("connection") === undefined ? null : idParam(c, "connection", "Connection");
    const body = await form(c);
    try {
      if (id !== null && !(await listConnections(store, c.var.actor)).some((x) => x.id === id)) {
        throw new NotFoundError(`Connection "${id}" not found`, "connection_id");
      }
      await saveConnection(store, c.var.actor, { id, patch: connectionPatch(body, id === null) });
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500 || error.status === 404) throw error;
      const { secret: _secret, _csrf, ...values } = body;
      return await showConnections(c, {
        refused: { target: id ?? "new", message: error.message, values },
        status: error.status,
      });
    }
    return c.redirect("/admin/connections?ok=saved", 303);
  };
  admin.post("/connections", requireChange, saveConnectionForm);
  admin.post("/connections/dead/:dead/retry", requireChange, async (c) => {
    const id = idParam(c, "dead", "Dead letter");
    if (!await retryDeadLetter(store, c.var.actor, id)) throw new NotFoundError(`Dead letter "${id}" not found`, "id");
    return c.redirect("/admin/connections?ok=retried", 303);
  });
  admin.post("/connections/:connection", requireChange, saveConnectionForm);

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
      const login = idParam(c, "login", "User", LOGIN_SHAPE);
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
      const id = idParam(c, "key", "API key");
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

/** The shape of opaque ids in URLs (dead letters, connections, API keys): bounded, so no key gets too large. */
const OPAQUE_ID_SHAPE = /^[A-Za-z0-9._~-]{1,100}$/;

/** The shape of a login in a URL (checkLogin's, any case). */
const LOGIN_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

/**
 * An id from the URL, checked for its shape before it goes near a use case or a key: anything else is a 404 page
 * (naming at most the first 40 characters), never a 500 from a KV key over its size limit.
 */
function idParam(c: C, name: string, what: string, shape = OPAQUE_ID_SHAPE): string {
  const raw = c.req.param(name) ?? "";
  if (!shape.test(raw)) {
    const shown = raw.length > 40 ? `${raw.slice(0, 40)}...` : raw;
    throw new NotFoundError(`${what} "${shown}" not found`, name);
  }
  return raw;
}

/** How long a run's form waits for the run before showing its progress page. */
const IMPORT_WAIT_MS = 3000;

/** The shape of upload and job ids. */
const RUN_ID_SHAPE = /^\d{15}-[0-9a-f]{8}$/;

/** The origin the request came to (behind a proxy: the one it names), for the full callback URLs. */
function originOf(c: C): string {
  const url = new URL(c.req.url);
  const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  const host = c.req.header("x-forwarded-host")?.split(",")[0]?.trim() || c.req.header("host") || url.host;
  return `${proto === "https" || proto === "http" ? proto : url.protocol.replace(":", "")}://${host}`;
}

const optionalText = (field: string, max: number) => (raw: string | undefined): string | null =>
  parserOf(text(max))(raw ?? "", field);

/** The upload form's options, read as `deno task import` reads its flags (a bad one is refused by name). */
function uploadOptions(v: Record<string, string>): UploadOptions {
  const type = (v.type ?? "customers").trim().toLowerCase();
  if (type !== "customers" && type !== "cards" && type !== "bonuses") {
    throw invalid("type", v.type ?? "", "must be customers, cards or bonuses");
  }
  const format = (v.format ?? "").trim().toLowerCase();
  if (format !== "" && !["csv", "json", "ndjson", "xml"].includes(format)) {
    throw invalid("format", v.format ?? "", "must be csv, json, ndjson or xml");
  }
  const encoding = (v.encoding ?? "").trim().toLowerCase().replace(/^utf8$/, "utf-8").replace(
    /^cp1251$/,
    "windows-1251",
  );
  if (encoding !== "" && encoding !== "utf-8" && encoding !== "windows-1251") {
    throw invalid("encoding", v.encoding ?? "", "must be utf-8 or windows-1251");
  }
  const delimiter = v.delimiter === "tab" || v.delimiter === "\\t" ? "\t" : (v.delimiter ?? "");
  if (delimiter.length > 1) throw invalid("delimiter", v.delimiter ?? "", "must be one character");
  const preset = (v.preset ?? "").trim().toLowerCase();
  if (preset !== "" && preset !== "shopify" && preset !== "woocommerce") {
    throw invalid("preset", v.preset ?? "", "must be shopify or woocommerce");
  }
  const matchText = (v.match ?? "").trim();
  const match = matchText === "" ? [...MATCH_FIELDS] : matchText.split(",").map((s) => s.trim()).filter(Boolean);
  for (const m of match) {
    if (!(MATCH_FIELDS as readonly string[]).includes(m)) {
      throw invalid("match", v.match ?? "", "each of external_id, phone, email");
    }
  }
  const bonusText = (v.bonus_id ?? "").trim();
  let bonusId: number | null = null;
  if (bonusText !== "") {
    bonusId = Number(bonusText);
    if (!/^\d{1,15}$/.test(bonusText) || bonusId < 1) throw invalid("bonus_id", bonusText, "must be a program id");
  }
  return {
    type: type as ImportType,
    format: format === "" ? null : format as ImportFormat,
    encoding: encoding === "" ? null : encoding as ImportEncoding,
    delimiter: delimiter === "" ? null : delimiter,
    preset: preset === "" ? null : preset as ImportPreset,
    match: match as MatchField[],
    bonusId,
    ignoreUnknown: v.ignore_unknown === "1" || v.ignore_unknown === "on",
  };
}

/** A connection form as a change: every field is sent; an empty secret keeps the current one. */
function connectionPatch(v: Record<string, string>, create: boolean): ConnectionPatch {
  const platform = (v.platform ?? "").trim().toLowerCase();
  if (!isPlatform(platform)) throw invalid("platform", v.platform ?? "", `must be one of ${PLATFORMS.join(", ")}`);
  const shop = parserOf(nonEmpty(text(300)))(v.shop ?? "", "shop");
  const secret = v.secret ?? "";
  if (secret === "" && create) {
    throw new ValidationError("secret", 'Parameter "secret" is required to create a connection');
  }
  if (secret !== "" && (secret.length < 8 || secret.length > 500)) {
    throw invalid("secret", "(hidden)", "must be 8 to 500 characters");
  }
  const bonusId = parserOf(nonEmpty(text(20)))(v.bonus_id ?? "", "bonus_id");
  if (!/^\d{1,15}$/.test(bonusId) || Number(bonusId) < 1) throw invalid("bonus_id", bonusId, "must be a program id");
  return {
    platform,
    shop,
    secret: secret === "" ? undefined : secret,
    bonusId: Number(bonusId),
    percentBp: parserOf(percentField)(v.percent ?? "", "percent"),
    minOrder: parserOf(moneyField)(v.min_order ?? "", "min_order"),
    name: optionalText("name", 200)(v.name),
  };
}

/** Notices a redirect may ask the customer page to show. */
const OK_MESSAGES = new Set(["saved"]);
