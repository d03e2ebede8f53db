/**
 * The dashboard: one list of widgets, each a function of what the dashboard read (figures, the daily points chart
 * drawn as inline SVG on the server, webhook deliveries, the latest imports).
 */
import type { Child } from "hono/jsx";
import type { CompanyStats } from "../../storage/admin_stats.ts";
import type { ImportRun } from "../../usecases/mod.ts";
import type { Texts } from "./i18n.ts";
import { Table } from "./layout.tsx";

/** Webhook deliveries of a company, over every connection. */
export interface DeliveryTotals {
  connections: number;
  received: number;
  processed: number;
  /** Failed attempts (each retry that failed counts). */
  failed: number;
  deadLetters: number;
}

/** What a widget is given. */
export interface WidgetInput {
  tx: Texts;
  stats: CompanyStats;
  deliveries: DeliveryTotals;
  imports: ImportRun[];
}

/** One dashboard widget: a name (for tests and ordering) and how it renders. */
export interface Widget {
  name: string;
  render: (input: WidgetInput) => Child | Promise<Child>;
}

function Figure(props: { label: string; value: string; id: string }) {
  return (
    <div class="card" id={props.id}>
      <div>{props.label}</div>
      <div class="big">{props.value}</div>
    </div>
  );
}

/** A bar chart of points accrued and spent per day, with a table of the same figures for screen readers. */
export function DailyChart(props: { tx: Texts; days: CompanyStats["days"] }) {
  const { tx, days } = props;
  const width = 760;
  const height = 220;
  const left = 56;
  const bottom = 28;
  const top = 10;
  const plotH = height - bottom - top;
  const max = Math.max(100, ...days.map((d) => Math.max(d.accrued, d.spent)));
  const slot = (width - left - 8) / Math.max(1, days.length);
  const bar = Math.max(2, slot / 2 - 2);
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const ticks = [0, 0.5, 1].map((f) => Math.round(max * f));
  return (
    <figure>
      <figcaption>
        {tx.t("chartTitle")}
        <span class="legend">
          <span style="background:#2f7d32"></span>
          {tx.t("accrued")}
          <span style="background:#c0392b"></span>
          {tx.t("spent")}
        </span>
      </figcaption>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        width="100%"
        role="img"
        aria-label={tx.t("chartTitle")}
        preserveAspectRatio="xMidYMid meet"
      >
        {ticks.map((v) => (
          <g>
            <line x1={left} x2={width - 4} y1={y(v)} y2={y(v)} stroke="#d0d4da" />
            <text x={left - 6} y={y(v) + 4} text-anchor="end">{tx.num(v, { minor: true })}</text>
          </g>
        ))}
        {days.map((d, i) => {
          const x = left + i * slot + 1;
          return (
            <g>
              <rect x={x} y={y(d.accrued)} width={bar} height={top + plotH - y(d.accrued)} fill="#2f7d32">
                <title>{`${tx.day(d.day)}: ${tx.t("accrued")} ${tx.num(d.accrued, { minor: true })}`}</title>
              </rect>
              <rect x={x + bar} y={y(d.spent)} width={bar} height={top + plotH - y(d.spent)} fill="#c0392b">
                <title>{`${tx.day(d.day)}: ${tx.t("spent")} ${tx.num(d.spent, { minor: true })}`}</title>
              </rect>
              {i % 5 === 0 && <text x={x} y={height - 8}>{tx.day(d.day).replace(/\s?\d{4}\s?г?\.?$/, "")}</text>}
            </g>
          );
        })}
      </svg>
      <details>
        <summary>{tx.t("chartTitle")}</summary>
        <Table heads={[tx.t("when"), { text: tx.t("accrued"), num: true }, { text: tx.t("spent"), num: true }]}>
          {days.map((d) => (
            <tr>
              <td>{tx.day(d.day)}</td>
              <td class="num">{tx.num(d.accrued, { minor: true })}</td>
              <td class="num">{tx.num(d.spent, { minor: true })}</td>
            </tr>
          ))}
        </Table>
      </details>
    </figure>
  );
}

/** The widgets of the dashboard, in order. */
export const WIDGETS: Widget[] = [
  {
    name: "totals",
    render: ({ tx, stats }) => (
      <div class="cards">
        <Figure id="stat-customers" label={tx.t("customers")} value={tx.num(stats.customers)} />
        <Figure id="stat-cards" label={tx.t("cards")} value={tx.num(stats.cards)} />
        <Figure id="stat-outstanding" label={tx.t("outstanding")} value={tx.num(stats.outstanding, { minor: true })} />
        <Figure id="stat-pending" label={tx.t("pending")} value={tx.num(stats.pending, { minor: true })} />
      </div>
    ),
  },
  {
    name: "daily_points",
    render: ({ tx, stats }) => (
      <section class="panel">
        <DailyChart tx={tx} days={stats.days} />
      </section>
    ),
  },
  {
    name: "webhooks",
    render: ({ tx, deliveries: d }) => (
      <section class="panel" aria-labelledby="h-webhooks">
        <h2 id="h-webhooks">
          <a href="/admin/connections">{tx.t("webhooks")}</a>
        </h2>
        <div class="cards">
          <Figure id="stat-deliveries" label={tx.t("deliveries")} value={tx.num(d.received)} />
          <Figure id="stat-processed" label={tx.t("processed")} value={tx.num(d.processed)} />
          <Figure id="stat-delivery-failures" label={tx.t("deliveryFailures")} value={tx.num(d.failed)} />
          <Figure id="stat-dead-letters" label={tx.t("deadLetters")} value={tx.num(d.deadLetters)} />
        </div>
      </section>
    ),
  },
  {
    name: "imports",
    render: ({ tx, imports }) => (
      <section class="panel" aria-labelledby="h-latest-imports">
        <h2 id="h-latest-imports">
          <a href="/admin/import">{tx.t("latestImports")}</a>
        </h2>
        {imports.length === 0 ? <p>{tx.t("noImports")}</p> : (
          <Table
            id="latest-imports"
            heads={[tx.t("when"), tx.t("file"), tx.t("kind"), { text: tx.t("created_"), num: true }, {
              text: tx.t("updated_"),
              num: true,
            }, { text: tx.t("rejected"), num: true }]}
          >
            {imports.map((r) => (
              <tr>
                <td>{tx.dateTime(r.started)}</td>
                <td>{`${r.file} (${r.type})`}</td>
                <td>{r.dry_run ? tx.t("check") : tx.t("run")}</td>
                <td class="num">{tx.num(r.created)}</td>
                <td class="num">{tx.num(r.updated)}</td>
                <td class="num">{tx.num(r.rejected)}</td>
              </tr>
            ))}
          </Table>
        )}
      </section>
    ),
  },
];
