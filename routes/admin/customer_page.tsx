/** The customer page: profile form, cards, balances with ledgers, the points adjustment form and the history. */
import type { AdminSession } from "../../domain/admin_user.ts";
import { canChange } from "../../domain/admin_user.ts";
import { auditValue } from "../../domain/audit.ts";
import { formatDateTime } from "../../domain/dates.ts";
import type { CustomerPage } from "../../usecases/back_office.ts";
import type { Texts } from "./i18n.ts";
import { Csrf, Notice, Table } from "./layout.tsx";

/** The profile fields in form order: the parameter names of the API. */
export const PROFILE_FIELDS = [
  "lname",
  "fname",
  "mname",
  "phone",
  "email",
  "external_id",
  "gender",
  "birth_day",
  "birth_month",
  "birth_year",
  "register_date",
  "accumulated_sales",
  "group_id",
  "send_sms",
  "send_email",
  "send_push",
  "custom_information",
] as const;

/** Where a refusal is shown on the page. */
export type Section = "profile" | "cards" | "points";

/** A refusal to show next to its form. */
export interface PageError {
  section: Section;
  message: string;
  field?: string;
}

const LABELS: Record<string, [string, string]> = {
  lname: ["Last name", "Фамилия"],
  fname: ["First name", "Имя"],
  mname: ["Middle name", "Отчество"],
  phone: ["Phone", "Телефон"],
  email: ["Email", "Email"],
  external_id: ["External id", "Внешний id"],
  gender: ["Gender", "Пол"],
  birth_day: ["Birth day", "День рождения"],
  birth_month: ["Birth month", "Месяц рождения"],
  birth_year: ["Birth year", "Год рождения"],
  register_date: ["Registered (YYYY-MM-DD HH:MM:SS)", "Регистрация (ГГГГ-ММ-ДД ЧЧ:ММ:СС)"],
  accumulated_sales: ["Accumulated sales", "Сумма покупок"],
  group_id: ["Group", "Группа"],
  send_sms: ["SMS", "SMS"],
  send_email: ["Emails", "Письма"],
  send_push: ["Push", "Push"],
  custom_information: ["Notes", "Заметки"],
};

/** A field's label in the page's language. */
export function fieldLabel(tx: Texts, field: string): string {
  return LABELS[field]?.[tx.lang === "ru" ? 1 : 0] ?? field;
}

/** The form values of a customer as the API writes them, so an unchanged field is sent back unchanged. */
export function profileValues(page: CustomerPage, timeZone: string): Record<string, string> {
  const c = page.customer;
  const s = (v: string | number | null) => v === null ? "" : String(v);
  return {
    lname: s(c.lname),
    fname: s(c.fname),
    mname: s(c.mname),
    phone: s(c.phone),
    email: s(c.email),
    external_id: s(c.external_id),
    gender: s(c.gender),
    birth_day: s(c.birth_day),
    birth_month: s(c.birth_month),
    birth_year: s(c.birth_year),
    register_date: formatDateTime(c.register_date, timeZone),
    accumulated_sales: (c.accumulated_sales / 100).toFixed(2),
    group_id: s(c.group_id),
    send_sms: c.send_sms ? "1" : "0",
    send_email: c.send_email ? "1" : "0",
    send_push: c.send_push ? "1" : "0",
    custom_information: s(c.custom_information),
  };
}

function FieldInput(
  props: { tx: Texts; name: string; value: string; page: CustomerPage; error?: PageError | null },
) {
  const { tx, name, value, page } = props;
  const id = `f-${name}`;
  const invalid = props.error?.field === name;
  const common = {
    id,
    name,
    "aria-invalid": invalid ? "true" : undefined,
    "aria-describedby": invalid ? "profile-error" : undefined,
  };
  let control;
  if (name === "gender") {
    control = (
      <select {...common}>
        {[["", tx.t("none")], ["M", "M"], ["F", "F"]].map(([v, l]) => (
          <option value={v} selected={v === value}>{l}</option>
        ))}
      </select>
    );
  } else if (name.startsWith("send_")) {
    control = (
      <select {...common}>
        <option value="1" selected={value === "1"}>{tx.t("yes")}</option>
        <option value="0" selected={value !== "1"}>{tx.t("no")}</option>
      </select>
    );
  } else if (name === "group_id") {
    control = (
      <select {...common}>
        <option value="" selected={value === ""}>{tx.t("none")}</option>
        {page.groups.map((g) => (
          <option key={g.id} value={String(g.id)} selected={String(g.id) === value}>{g.name}</option>
        ))}
      </select>
    );
  } else if (name === "custom_information") {
    control = <textarea {...common} rows={3}>{value}</textarea>;
  } else {
    const type = name === "email" ? "email" : name === "phone" ? "tel" : "text";
    const mode = name.startsWith("birth_") ? "numeric" : name === "accumulated_sales" ? "decimal" : undefined;
    // type=email would let the browser refuse before the server; the API's own message is wanted.
    control = <input {...common} type={type === "email" ? "text" : type} inputmode={mode} value={value} />;
  }
  return (
    <div>
      <label for={id}>{fieldLabel(tx, name)}</label>
      {control}
    </div>
  );
}

/** The whole customer page body. */
export function CustomerBody(props: {
  tx: Texts;
  session: AdminSession;
  page: CustomerPage;
  timeZone: string;
  values: Record<string, string>;
  error?: PageError | null;
  ok?: string | null;
  /** The points form's values typed before a refusal (bonus_id, amount, comment). */
  points?: Record<string, string>;
  idempotencyKey: string;
}) {
  const { tx, session, page, error } = props;
  const t = tx.t;
  const c = page.customer;
  const writable = canChange(session.role);
  const base = `/admin/customers/${c.id}`;
  return (
    <div>
      <Notice kind="ok" text={props.ok} />
      <section class="panel" aria-labelledby="h-profile">
        <h2 id="h-profile">{t("profile")} #{c.id}</h2>
        {error?.section === "profile" && <Notice kind="error" text={error.message} id="profile-error" />}
        <form method="post" action={base}>
          <Csrf session={session} />
          <fieldset disabled={!writable} style="border:0;padding:0;margin:0">
            <legend class="skip">{t("profile")}</legend>
            <div class="grid">
              {PROFILE_FIELDS.map((name) => (
                <FieldInput tx={tx} name={name} value={props.values[name] ?? ""} page={page} error={error} />
              ))}
            </div>
          </fieldset>
          {writable && (
            <p>
              <button type="submit" id="save-profile">{t("save")}</button>
            </p>
          )}
        </form>
      </section>

      <section class="panel" aria-labelledby="h-cards">
        <h2 id="h-cards">{t("cards")}</h2>
        {error?.section === "cards" && <Notice kind="error" text={error.message} />}
        <Table heads={[t("uid"), t("barcode"), t("type"), t("status"), writable && t("actions")]}>
          {page.cards.map(({ card, typeName }) => (
            <tr id={`card-${card.id}`}>
              <td>{card.uid}</td>
              <td>{card.barcode ?? t("none")}</td>
              <td>{typeName ?? t("none")}</td>
              <td class="card-status">{card.status}</td>
              {writable && (
                <td>
                  <form method="post" action={`${base}/cards/${card.id}/status`} class="inline">
                    <Csrf session={session} />
                    {card.status === "BLOCKED"
                      ? (
                        <button type="submit" name="status" value="ACTIVE">
                          {t("activate")} <span class="skip">{card.uid}</span>
                        </button>
                      )
                      : (
                        <button type="submit" name="status" value="BLOCKED" class="danger">
                          {t("block")} <span class="skip">{card.uid}</span>
                        </button>
                      )}
                    {card.status === "NEW" && (
                      <button type="submit" name="status" value="ACTIVE">
                        {t("activate")} <span class="skip">{card.uid}</span>
                      </button>
                    )}
                  </form>{" "}
                  <form method="post" action={`${base}/cards/${card.id}/move`} class="inline">
                    <Csrf session={session} />
                    <label for={`move-${card.id}`}>{t("move")}</label>{" "}
                    <input id={`move-${card.id}`} name="customer_id" inputmode="numeric" size={6} required />{" "}
                    <button type="submit">{t("moveButton")}</button>
                  </form>
                </td>
              )}
            </tr>
          ))}
        </Table>
        {writable && (
          <form method="post" action={`${base}/cards`}>
            <Csrf session={session} />
            <h3>{t("issueCard")}</h3>
            <div class="grid">
              <div>
                <label for="new-uid">{t("uid")}</label>
                <input id="new-uid" name="uid" placeholder={t("uidHint")} />
              </div>
              <div>
                <label for="new-type">{t("type")}</label>
                <select id="new-type" name="type_id">
                  <option value="">{t("none")}</option>
                  {page.cardTypes.map((ct) => <option key={ct.id} value={String(ct.id)}>{ct.name}</option>)}
                </select>
              </div>
              <div>
                <button type="submit">{t("issue")}</button>
              </div>
            </div>
          </form>
        )}
      </section>

      <section class="panel" aria-labelledby="h-balances">
        <h2 id="h-balances">{t("balances")}</h2>
        {error?.section === "points" && <Notice kind="error" text={error.message} id="points-error" />}
        {page.programs.length === 0 ? <p>{t("noPrograms")}</p> : (
          <Table
            heads={[
              t("program"),
              { text: t("balance"), num: true },
              { text: t("pending"), num: true },
              t("nextExpiry"),
            ]}
          >
            {page.programs.map(({ balance }) => (
              <tr>
                <td>{balance.program.name}</td>
                <td class="num">{tx.num(balance.balance.balance, { minor: true })}</td>
                <td class="num">{tx.num(balance.balance.pending, { minor: true })}</td>
                <td>
                  {balance.balance.nextExpireDate === null
                    ? t("none")
                    : `${tx.day(balance.balance.nextExpireDate)}: ${
                      tx.num(balance.balance.nextExpireAmount, { minor: true })
                    }`}
                </td>
              </tr>
            ))}
          </Table>
        )}
        {writable && page.programs.length > 0 && (
          <form method="post" action={`${base}/points`}>
            <Csrf session={session} />
            <input type="hidden" name="idempotency_key" value={props.idempotencyKey} />
            <h3>{t("adjust")}</h3>
            <div class="grid">
              <div>
                <label for="adj-program">{t("program")}</label>
                <select id="adj-program" name="bonus_id">
                  {page.programs.map(({ balance }) => (
                    <option
                      value={String(balance.program.id)}
                      selected={props.points?.bonus_id === String(balance.program.id)}
                    >
                      {balance.program.name}
                    </option>
                  ))}
                </select>
              </div>
              <div>
                <label for="adj-amount">{t("amount")}</label>
                <input
                  id="adj-amount"
                  name="amount"
                  inputmode="decimal"
                  required
                  aria-describedby="adj-hint"
                  value={props.points?.amount ?? ""}
                  aria-invalid={error?.section === "points" && error.field === "amount" ? "true" : undefined}
                />
                <small id="adj-hint">{t("adjustHint")}</small>
              </div>
              <div>
                <label for="adj-comment">{t("comment")}</label>
                <input
                  id="adj-comment"
                  name="comment"
                  required
                  maxlength={500}
                  value={props.points?.comment ?? ""}
                  aria-invalid={error?.section === "points" && error.field === "comment" ? "true" : undefined}
                />
              </div>
              <div>
                <button type="submit" id="apply-points">{t("apply")}</button>
              </div>
            </div>
          </form>
        )}
        {page.programs.map(({ balance, entries }) => (
          <div>
            <h3>{t("ledger")}: {balance.program.name}</h3>
            <Table
              class="ledger"
              heads={[
                "#",
                t("when"),
                { text: t("amount"), num: true },
                { text: t("balance"), num: true },
                t("order"),
                t("comment"),
              ]}
            >
              {entries.map((e) => (
                <tr>
                  <td>{e.transaction_id}</td>
                  <td>{tx.dateTime(e.created_date)}</td>
                  <td class="num">{tx.num(e.amount, { minor: true })}</td>
                  <td class="num">{tx.num(e.balance, { minor: true })}</td>
                  <td>{e.order_id ?? ""}{e.return_id ? ` / ${e.return_id}` : ""}</td>
                  <td>{e.comment ?? (e.kind ?? "")}</td>
                </tr>
              ))}
            </Table>
          </div>
        ))}
      </section>

      <section class="panel" aria-labelledby="h-history">
        <h2 id="h-history">{t("history")}</h2>
        <Table id="history" heads={[t("when"), t("who"), t("what"), t("field"), t("oldValue"), t("newValue")]}>
          {page.history.flatMap(({ entry }) => {
            const show = (field: string, v: unknown) => {
              const out = auditValue(field, v, (ms) => tx.dateTime(ms));
              return out === null ? "" : String(out);
            };
            const rows = entry.changes.length > 0 ? entry.changes : [{ field: "", old: null, new: null }];
            return rows.map((ch) => (
              <tr>
                <td>{tx.dateTime(entry.at)}</td>
                <td>{entry.actor}</td>
                <td>{entry.entity} {entry.action}</td>
                <td>{ch.field}</td>
                <td>{show(ch.field, ch.old)}</td>
                <td>{show(ch.field, ch.new)}</td>
              </tr>
            ));
          })}
        </Table>
      </section>
    </div>
  );
}
