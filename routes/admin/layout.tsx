/**
 * The frame of every back-office page: the header with the navigation (one list, so later pages add one entry),
 * the search box, the language switch and sign-out, and shared bits (CSRF field, error box).
 */
import type { Child } from "hono/jsx";
import type { AdminRole, AdminSession } from "../../domain/admin_user.ts";
import type { MessageId, Texts } from "./i18n.ts";

/** One navigation entry: its path under /admin, its title, and who sees it. */
export interface NavEntry {
  path: string;
  title: MessageId;
  roles?: readonly AdminRole[];
}

/** The navigation of the back office, in order. */
export const NAV: NavEntry[] = [
  { path: "/admin", title: "dashboard" },
  { path: "/admin/directories", title: "directories" },
  { path: "/admin/import", title: "importTitle" },
  { path: "/admin/connections", title: "connectionsTitle" },
  { path: "/admin/access", title: "access", roles: ["owner"] },
];

/** What every page gets: the texts, the session (null on the sign-in page) and the current path. */
export interface PageContext {
  tx: Texts;
  session: AdminSession | null;
  path: string;
  /** The search text, to keep it in the box. */
  query?: string;
  /** The query string of the page (without "?"), kept by the language switch. */
  search?: string;
}

/** The hidden CSRF field every form of a signed-in page carries. */
export function Csrf(props: { session: AdminSession }) {
  return <input type="hidden" name="_csrf" value={props.session.csrf} />;
}

/** A column heading of a Table: its text, right-aligned when `num`; false leaves the column out. */
export type Head = string | { text: string; num: true } | false;

/**
 * A data table as every back-office page shows one: scrollable on a narrow screen, an optional caption, one row of
 * column headings (scope col), and the rows given as children.
 */
export function Table(
  props: { heads: Head[]; id?: string; class?: string; caption?: string; children?: unknown },
) {
  return (
    <div class="table">
      <table id={props.id} class={props.class}>
        {props.caption !== undefined && <caption>{props.caption}</caption>}
        <thead>
          <tr>
            {props.heads.map((h, i) =>
              h === false
                ? null
                : typeof h === "string"
                ? <th key={i} scope="col">{h}</th>
                : <th key={i} scope="col" class="num">{h.text}</th>
            )}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

/** A message box: an error (role alert) or a notice (role status). */
export function Notice(props: { kind: "error" | "ok"; text: string | null | undefined; id?: string }) {
  if (!props.text) return null;
  return (
    <p class={`notice ${props.kind}`} role={props.kind === "error" ? "alert" : "status"} id={props.id}>
      {props.text}
    </p>
  );
}

/** A whole page. */
export function Layout(props: { ctx: PageContext; title: string; children?: Child }) {
  const { tx, session, path } = props.ctx;
  const t = tx.t;
  const other = tx.lang === "ru" ? "en" : "ru";
  const params = new URLSearchParams(props.ctx.search ?? "");
  params.delete("ok");
  params.set("lang", other);
  return (
    <html lang={tx.lang}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · ${t("title")}`}</title>
        <link rel="stylesheet" href="/admin/static/admin.css" />
        <script src="/admin/static/admin.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">{t("skip")}</a>
        <header>
          <div class="bar">
            <a class="brand" href="/admin">{t("title")}</a>
            {session && (
              <nav aria-label={t("title")}>
                <ul>
                  {NAV.filter((n) => !n.roles || n.roles.includes(session.role)).map((n) => (
                    <li>
                      <a href={n.path} aria-current={n.path === path ? "page" : undefined}>{t(n.title)}</a>
                    </li>
                  ))}
                </ul>
              </nav>
            )}
            <div class="tools">
              <a href={`?${params}`} hreflang={other} lang={other}>
                {other === "ru" ? "Русский" : "English"}
              </a>
              {session && (
                <form method="post" action="/admin/logout" class="inline">
                  <Csrf session={session} />
                  <span class="who">{session.login} ({session.role})</span>{" "}
                  <button type="submit">{t("signOut")}</button>
                </form>
              )}
            </div>
          </div>
          {session && (
            <form method="get" action="/admin/find" class="search" role="search">
              <label for="q">{t("searchLabel")}</label>
              <div class="row">
                <input
                  id="q"
                  name="q"
                  type="search"
                  value={props.ctx.query ?? ""}
                  autocomplete="off"
                  aria-controls="suggest"
                  data-suggest="/admin/suggest"
                />
                <button type="submit">{t("search")}</button>
              </div>
              <ul id="suggest" class="suggest" aria-live="polite"></ul>
            </form>
          )}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {session?.role === "viewer" && <p class="notice info">{t("readOnly")}</p>}
          {props.children}
        </main>
      </body>
    </html>
  );
}
