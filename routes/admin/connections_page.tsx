/**
 * The connections page: the shops connected by webhook with the URL to give each platform, their deliveries per
 * topic, the dead letters with a retry button, and forms to connect a shop or change a connection (the secret is
 * write-only: never shown back, empty keeps it).
 */
import { type AdminSession, canChange } from "../../domain/admin_user.ts";
import type { DirectoryEntry } from "../../domain/directory.ts";
import { moneyToNumber } from "../../domain/money.ts";
import { PLATFORMS } from "../../domain/webhooks.ts";
import type { DeadLetter, PublicConnection } from "../../usecases/mod.ts";
import type { MessageId, Texts } from "./i18n.ts";
import { Csrf, Notice, Table } from "./layout.tsx";

/** One connection as the page shows it. */
export interface ConnectionView {
  connection: PublicConnection;
  /** The full URL to give the platform. */
  url: string;
  stats: Record<string, Record<string, number>>;
}

/** The kinds of counts per topic, in the order shown. */
export const STAT_KINDS: { kind: string; label: MessageId }[] = [
  { kind: "received", label: "received" },
  { kind: "processed", label: "processed" },
  { kind: "duplicate", label: "duplicate" },
  { kind: "ignored", label: "ignored_" },
  { kind: "failed", label: "failed_" },
];

/** What a refused form sent, to show again beside the message (never the secret). */
export interface ConnectionFormState {
  /** "new" or the connection's id. */
  target: string;
  message: string;
  values: Record<string, string>;
}

function ConnectionForm(props: {
  tx: Texts;
  session: AdminSession;
  programs: DirectoryEntry[];
  connection?: PublicConnection;
  values?: Record<string, string>;
}) {
  const { tx, connection: c } = props;
  const t = tx.t;
  const prefix = `c-${c?.id ?? "new"}`;
  const v = props.values ?? {
    platform: c?.platform ?? "shopify",
    shop: c?.shop ?? "",
    name: c?.name ?? "",
    bonus_id: c ? String(c.bonus_id) : "",
    percent: c?.percent_bp == null ? "" : String(moneyToNumber(c.percent_bp)),
    min_order: c?.min_order == null ? "" : String(moneyToNumber(c.min_order)),
  };
  return (
    <form method="post" action={c ? `/admin/connections/${c.id}` : "/admin/connections"}>
      <Csrf session={props.session} />
      <div class="grid">
        <div>
          <label for={`${prefix}-platform`}>{t("platform")}</label>
          <select id={`${prefix}-platform`} name="platform">
            {PLATFORMS.map((p) => <option key={p} value={p} selected={v.platform === p}>{p}</option>)}
          </select>
        </div>
        <div>
          <label for={`${prefix}-shop`}>{t("shop")}</label>
          <input id={`${prefix}-shop`} name="shop" value={v.shop ?? ""} required maxlength={300} />
        </div>
        <div>
          <label for={`${prefix}-name`}>{t("connectionName")}</label>
          <input id={`${prefix}-name`} name="name" value={v.name ?? ""} maxlength={200} />
        </div>
        <div>
          <label for={`${prefix}-secret`}>{t("secret")}</label>
          <input
            id={`${prefix}-secret`}
            name="secret"
            type="password"
            autocomplete="new-password"
            required={!c}
            aria-describedby={c ? `${prefix}-secret-hint` : undefined}
          />
          {c && <small id={`${prefix}-secret-hint`}>{t("secretKeep")}</small>}
        </div>
        <div>
          <label for={`${prefix}-bonus`}>{t("bonusProgram")}</label>
          <select id={`${prefix}-bonus`} name="bonus_id" required>
            {props.programs.map((p) => (
              <option value={String(p.id)} selected={v.bonus_id === String(p.id)}>{`${p.id}: ${p.name}`}</option>
            ))}
          </select>
        </div>
        <div>
          <label for={`${prefix}-percent`}>{t("percent")}</label>
          <input id={`${prefix}-percent`} name="percent" value={v.percent ?? ""} inputmode="decimal" />
        </div>
        <div>
          <label for={`${prefix}-min`}>{t("minOrder")}</label>
          <input id={`${prefix}-min`} name="min_order" value={v.min_order ?? ""} inputmode="decimal" />
        </div>
        <div>
          <button type="submit">{c ? t("save") : t("newConnection")}</button>
        </div>
      </div>
    </form>
  );
}

function Stats(props: { tx: Texts; stats: Record<string, Record<string, number>>; id: string }) {
  const { tx, stats } = props;
  const t = tx.t;
  const topics = Object.keys(stats).sort();
  if (topics.length === 0) return <p>{`${t("counts")}: ${t("none")}`}</p>;
  return (
    <Table
      id={props.id}
      caption={t("counts")}
      heads={[t("topic"), ...STAT_KINDS.map((k) => ({ text: t(k.label), num: true as const }))]}
    >
      {topics.map((topic) => (
        <tr>
          <td>{topic}</td>
          {STAT_KINDS.map((k) => <td key={k.kind} class="num">{tx.num(stats[topic]?.[k.kind] ?? 0)}</td>)}
        </tr>
      ))}
    </Table>
  );
}

/** The whole connections page. */
export function ConnectionsBody(props: {
  tx: Texts;
  session: AdminSession;
  connections: ConnectionView[];
  deadLetters: DeadLetter[];
  programs: DirectoryEntry[];
  refused?: ConnectionFormState | null;
  ok?: string | null;
}) {
  const { tx, session, refused } = props;
  const t = tx.t;
  const writable = canChange(session.role);
  const shopOf = new Map(props.connections.map((c) => [c.connection.id, c.connection.shop]));
  return (
    <div>
      <Notice kind="ok" text={props.ok} id="connections-ok" />
      <section class="panel" aria-labelledby="h-shops">
        <h2 id="h-shops">{t("shops")}</h2>
        {props.connections.length === 0 && <p>{t("noConnections")}</p>}
        {props.connections.map(({ connection: c, url, stats }) => (
          <article class="connection" id={`connection-${c.id}`} aria-labelledby={`h-c-${c.id}`}>
            <h3 id={`h-c-${c.id}`}>{`${c.name ?? c.shop} (${c.platform})`}</h3>
            <p>
              {`${t("shop")}: ${c.shop}`}
              <br />
              {`${t("callbackUrl")}: `}
              <code class="callback">{url}</code>
            </p>
            <Stats tx={tx} stats={stats} id={`stats-${c.id}`} />
            {writable && (
              <details open={refused?.target === c.id}>
                <summary>{t("editConnection")}</summary>
                {refused?.target === c.id && <Notice kind="error" text={refused.message} />}
                <ConnectionForm
                  tx={tx}
                  session={session}
                  programs={props.programs}
                  connection={c}
                  values={refused?.target === c.id ? refused.values : undefined}
                />
              </details>
            )}
          </article>
        ))}
      </section>
      <section class="panel" aria-labelledby="h-dead">
        <h2 id="h-dead">{t("deadLetters")}</h2>
        {props.deadLetters.length === 0 ? <p>{t("noDeadLetters")}</p> : (
          <Table
            id="dead-letters"
            heads={[
              t("when"),
              t("shop"),
              t("topic"),
              { text: t("attempts"), num: true },
              t("reason"),
              writable && t("actions"),
            ]}
          >
            {props.deadLetters.map((d) => (
              <tr data-dead={d.id}>
                <td>{tx.dateTime(d.date)}</td>
                <td>{shopOf.get(d.connection_id) ?? d.connection_id}</td>
                <td>{d.topic}</td>
                <td class="num">{tx.num(d.attempts)}</td>
                <td>{d.error}</td>
                {writable && (
                  <td>
                    <form method="post" action={`/admin/connections/dead/${d.id}/retry`} class="inline">
                      <Csrf session={session} />
                      <button type="submit">
                        {t("retry")} <span class="skip">{d.id}</span>
                      </button>
                    </form>
                  </td>
                )}
              </tr>
            ))}
          </Table>
        )}
      </section>
      {writable && (
        <section class="panel" aria-labelledby="h-new-connection">
          <h2 id="h-new-connection">{t("newConnection")}</h2>
          {refused?.target === "new" && <Notice kind="error" text={refused.message} />}
          <ConnectionForm
            tx={tx}
            session={session}
            programs={props.programs}
            values={refused?.target === "new" ? refused.values : undefined}
          />
        </section>
      )}
    </div>
  );
}
