/** The smaller back-office pages: sign-in, search results, directories, users and API keys, and errors. */
import type { AdminSession, AdminUser } from "../../domain/admin_user.ts";
import { ADMIN_ROLES, canChange } from "../../domain/admin_user.ts";
import type { ApiKeyRecord } from "../../domain/api_key.ts";
import type { Customer } from "../../domain/customer.ts";
import type { DirectoryEntry } from "../../domain/directory.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS, settingsView } from "../../domain/program_settings.ts";
import type { DirectoryKind } from "../../storage/keys.ts";
import { isMessageId, type MessageId, type Texts } from "./i18n.ts";
import { Csrf, Notice, Table } from "./layout.tsx";

/** The sign-in form. */
export function LoginBody(props: { tx: Texts; csrf: string; error?: string | null; company?: string; login?: string }) {
  const t = props.tx.t;
  return (
    <form method="post" action="/admin/login" class="login">
      <Notice kind="error" text={props.error} />
      <input type="hidden" name="_csrf" value={props.csrf} />
      <label for="company">{t("company")}</label>
      <input id="company" name="company" required autocomplete="organization" value={props.company ?? ""} />
      <label for="login">{t("login")}</label>
      <input id="login" name="login" required autocomplete="username" value={props.login ?? ""} />
      <label for="password">{t("password")}</label>
      <input id="password" name="password" type="password" required autocomplete="current-password" />
      <button type="submit">{t("signIn")}</button>
    </form>
  );
}

/** One customer's name as a line. */
export function customerLabel(c: Customer): string {
  const name = [c.lname, c.fname, c.mname].filter((p) => p).join(" ");
  const contact = [c.phone ? `+${c.phone}` : null, c.email].filter((p) => p).join(", ");
  return `#${c.id} ${name || "—"}${contact ? ` (${contact})` : ""}`;
}

/** Search results. */
export function FindBody(props: { tx: Texts; customers: Customer[] }) {
  const t = props.tx.t;
  if (props.customers.length === 0) return <p>{t("nothingFound")}</p>;
  return (
    <ul class="results">
      {props.customers.map((c) => (
        <li>
          <a href={`/admin/customers/${c.id}`}>{customerLabel(c)}</a>
        </li>
      ))}
    </ul>
  );
}

/** The directories' kinds with their titles and settings. */
export const DIRECTORY_KINDS: { kind: DirectoryKind; title: MessageId; settings: readonly string[] }[] = [
  { kind: "groups", title: "groups", settings: Object.keys(GROUP_SETTINGS) },
  { kind: "card_types", title: "cardTypes", settings: [] },
  { kind: "bonus_programs", title: "programs", settings: Object.keys(PROGRAM_SETTINGS) },
];

function DirectoryForm(
  props: { tx: Texts; session: AdminSession; kind: DirectoryKind; settings: readonly string[]; entry?: DirectoryEntry },
) {
  const { tx, kind, entry } = props;
  const t = tx.t;
  const prefix = `${kind}-${entry?.id ?? "new"}`;
  const shown = settingsView(props.settings, entry?.settings);
  return (
    <form method="post" action={`/admin/directories/${kind}${entry ? `/${entry.id}` : ""}`}>
      <Csrf session={props.session} />
      <div class="grid">
        <div>
          <label for={`${prefix}-name`}>{t("name")}</label>
          <input id={`${prefix}-name`} name="name" value={entry?.name ?? ""} required />
        </div>
        <div>
          <label for={`${prefix}-description`}>{t("description")}</label>
          <input id={`${prefix}-description`} name="description" value={entry?.description ?? ""} />
        </div>
        {props.settings.map((s) => (
          <div>
            <label for={`${prefix}-${s}`}>{isMessageId(s) ? t(s) : s}</label>
            <input id={`${prefix}-${s}`} name={s} value={shown[s] === null ? "" : String(shown[s])} />
          </div>
        ))}
        <div>
          <button type="submit">{entry ? t("save") : t("add")}</button>
        </div>
      </div>
    </form>
  );
}

/** Every directory, with edit forms for those who may change them. */
export function DirectoriesBody(props: {
  tx: Texts;
  session: AdminSession;
  lists: Record<DirectoryKind, DirectoryEntry[]>;
  error?: { kind: DirectoryKind; message: string } | null;
  ok?: string | null;
}) {
  const { tx, session } = props;
  const t = tx.t;
  const writable = canChange(session.role);
  return (
    <div>
      <Notice kind="ok" text={props.ok} />
      {DIRECTORY_KINDS.map(({ kind, title, settings }) => (
        <section class="panel" aria-labelledby={`h-${kind}`}>
          <h2 id={`h-${kind}`}>{t(title)}</h2>
          {props.error?.kind === kind && <Notice kind="error" text={props.error.message} />}
          {writable
            ? props.lists[kind].map((entry) => (
              <DirectoryForm tx={tx} session={session} kind={kind} settings={settings} entry={entry} />
            ))
            : (
              <Table heads={[t("id"), t("name"), t("description"), ...settings.map((s) => isMessageId(s) ? t(s) : s)]}>
                {props.lists[kind].map((e) => {
                  const shown = settingsView(settings, e.settings);
                  return (
                    <tr>
                      <td>{e.id}</td>
                      <td>{e.name}</td>
                      <td>{e.description ?? ""}</td>
                      {settings.map((s) => <td key={s}>{shown[s] === null ? "" : String(shown[s])}</td>)}
                    </tr>
                  );
                })}
              </Table>
            )}
          {writable && (
            <div>
              <h3>{t("add")}</h3>
              <DirectoryForm tx={tx} session={session} kind={kind} settings={settings} />
            </div>
          )}
        </section>
      ))}
    </div>
  );
}

/** Users and API keys of the company (owners only). */
export function AccessBody(props: {
  tx: Texts;
  session: AdminSession;
  users: AdminUser[];
  keys: ApiKeyRecord[];
  secret?: { label: MessageId; value: string } | null;
  error?: string | null;
}) {
  const { tx, session } = props;
  const t = tx.t;
  return (
    <div>
      {props.secret && (
        <p class="notice ok" role="status">
          {t(props.secret.label)}: <code class="secret" id="secret">{props.secret.value}</code>
        </p>
      )}
      <Notice kind="error" text={props.error} />
      <section class="panel" aria-labelledby="h-users">
        <h2 id="h-users">{t("users")}</h2>
        <Table heads={[t("login"), t("role"), t("created"), t("actions")]}>
          {props.users.map((u) => (
            <tr>
              <td>{u.login}</td>
              <td>{u.role}</td>
              <td>{tx.dateTime(u.created_date)}</td>
              <td>
                {u.login !== session.login && (
                  <form method="post" action={`/admin/access/users/${u.login}/delete`} class="inline">
                    <Csrf session={session} />
                    <button type="submit" class="danger">
                      {t("remove")} <span class="skip">{u.login}</span>
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </Table>
        <form method="post" action="/admin/access/users">
          <Csrf session={session} />
          <h3>{t("createUser")}</h3>
          <div class="grid">
            <div>
              <label for="u-login">{t("login")}</label>
              <input id="u-login" name="login" required />
            </div>
            <div>
              <label for="u-role">{t("role")}</label>
              <select id="u-role" name="role">
                {ADMIN_ROLES.map((r) => <option key={r} value={r} selected={r === "viewer"}>{r}</option>)}
              </select>
            </div>
            <div>
              <button type="submit">{t("createUser")}</button>
            </div>
          </div>
        </form>
      </section>
      <section class="panel" aria-labelledby="h-keys">
        <h2 id="h-keys">{t("apiKeys")}</h2>
        <Table heads={[t("id"), t("label"), t("access_"), t("created"), t("revoked"), t("actions")]}>
          {props.keys.map((k) => (
            <tr>
              <td>
                <code>{k.id}</code>
              </td>
              <td>{k.label ?? ""}</td>
              <td>{k.access}</td>
              <td>{tx.dateTime(k.created_date)}</td>
              <td>{k.revoked_date === null ? "" : tx.dateTime(k.revoked_date)}</td>
              <td>
                {k.revoked_date === null && (
                  <form method="post" action={`/admin/access/keys/${k.id}/revoke`} class="inline">
                    <Csrf session={session} />
                    <button type="submit" class="danger">
                      {t("revoke")} <span class="skip">{k.id}</span>
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </Table>
        <form method="post" action="/admin/access/keys">
          <Csrf session={session} />
          <h3>{t("createKey")}</h3>
          <div class="grid">
            <div>
              <label for="k-label">{t("label")}</label>
              <input id="k-label" name="label" maxlength={100} />
            </div>
            <div>
              <label for="k-access">{t("access_")}</label>
              <select id="k-access" name="access">
                <option value="write">write</option>
                <option value="read">read</option>
              </select>
            </div>
            <div>
              <button type="submit">{t("createKey")}</button>
            </div>
          </div>
        </form>
      </section>
    </div>
  );
}

/** An error page's body. */
export function ErrorBody(props: { tx: Texts; message: string }) {
  return (
    <div>
      <p class="notice error" role="alert">{props.message}</p>
      <p>
        <a href="/admin">{props.tx.t("back")}</a>
      </p>
    </div>
  );
}
