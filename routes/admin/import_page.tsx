/**
 * The import page: the upload form (with the options of `deno task import` that make sense here), the dry run's
 * report with the run button, a run's progress and report, and the past imports.
 */
import { type AdminSession, canChange } from "../../domain/admin_user.ts";
import type { DirectoryEntry } from "../../domain/directory.ts";
import { IGNORE } from "../../domain/import/columns.ts";
import type { ImportJob, ImportReport, ImportRun, UploadCheck } from "../../usecases/mod.ts";
import type { MessageId, Texts } from "./i18n.ts";
import { Csrf, Notice, Table } from "./layout.tsx";

/** Rejected rows shown on a page (the run record keeps up to 100). */
export const REJECTS_SHOWN = 20;

/** The values of the upload form (as sent, to show them again after a refusal). */
export type UploadValues = Record<string, string>;

const TYPES: { value: string; label: MessageId }[] = [
  { value: "customers", label: "typeCustomers" },
  { value: "cards", label: "typeCards" },
  { value: "bonuses", label: "typeBonuses" },
];

function Select(
  props: { id: string; name: string; label: string; value: string; options: { value: string; label: string }[] },
) {
  return (
    <div>
      <label for={props.id}>{props.label}</label>
      <select id={props.id} name={props.name}>
        {props.options.map((o) => (
          <option key={o.value} value={o.value} selected={o.value === props.value}>{o.label}</option>
        ))}
      </select>
    </div>
  );
}

function UploadForm(
  props: { tx: Texts; session: AdminSession; programs: DirectoryEntry[]; values: UploadValues; maxBytes: number },
) {
  const { tx, values: v } = props;
  const t = tx.t;
  return (
    <form method="post" action="/admin/import/check" enctype="multipart/form-data">
      <Csrf session={props.session} />
      <div class="grid">
        <div>
          <label for="i-file">{t("importFile")}</label>
          <input
            id="i-file"
            name="file"
            type="file"
            required
            accept=".csv,.txt,.tsv,.json,.ndjson,.jsonl,.xml"
            aria-describedby="i-file-hint"
          />
          <small id="i-file-hint">{`${t("importMax")} ${tx.num(Math.floor(props.maxBytes / 1024))} KiB`}</small>
        </div>
        <Select
          id="i-type"
          name="type"
          label={t("importType")}
          value={v.type ?? "customers"}
          options={TYPES.map((o) => ({ value: o.value, label: t(o.label) }))}
        />
        <Select
          id="i-format"
          name="format"
          label={t("format")}
          value={v.format ?? ""}
          options={[
            { value: "", label: t("fromName") },
            ...["csv", "json", "ndjson", "xml"].map((f) => ({
              value: f,
              label: f.toUpperCase(),
            })),
          ]}
        />
        <Select
          id="i-encoding"
          name="encoding"
          label={t("encoding")}
          value={v.encoding ?? ""}
          options={[{ value: "", label: t("detect") }, { value: "utf-8", label: "UTF-8" }, {
            value: "windows-1251",
            label: "Windows-1251",
          }]}
        />
        <Select
          id="i-delimiter"
          name="delimiter"
          label={t("delimiter")}
          value={v.delimiter ?? ""}
          options={[{ value: "", label: t("detect") }, { value: ",", label: ", (comma)" }, {
            value: ";",
            label: "; (semicolon)",
          }, { value: "tab", label: "Tab" }]}
        />
        <Select
          id="i-preset"
          name="preset"
          label={t("preset")}
          value={v.preset ?? ""}
          options={[{ value: "", label: t("presetNone") }, { value: "shopify", label: "Shopify" }, {
            value: "woocommerce",
            label: "WooCommerce",
          }]}
        />
        <div>
          <label for="i-match">{t("match")}</label>
          <input id="i-match" name="match" value={v.match ?? "external_id,phone,email"} />
        </div>
        <Select
          id="i-bonus"
          name="bonus_id"
          label={t("bonusProgram")}
          value={v.bonus_id ?? ""}
          options={[
            { value: "", label: t("onlyProgram") },
            ...props.programs.map((p) => ({ value: String(p.id), label: `${p.id}: ${p.name}` })),
          ]}
        />
        <div>
          <input id="i-ignore" name="ignore_unknown" type="checkbox" value="1" checked={v.ignore_unknown === "1"} />
          {" "}
          <label for="i-ignore" style="display:inline">{t("ignoreUnknown")}</label>
        </div>
        <div>
          <button type="submit">{t("dryRun")}</button>
        </div>
      </div>
    </form>
  );
}

/** The counts of a report as a one-row table. */
export function Counts(props: { tx: Texts; report: Omit<ImportReport, "rejects">; id?: string }) {
  const { tx, report } = props;
  const t = tx.t;
  const names = ["created", "updated", "unchanged", "rejected", "skipped"] as const;
  const labels: Record<typeof names[number], MessageId> = {
    created: "created_",
    updated: "updated_",
    unchanged: "unchanged",
    rejected: "rejected",
    skipped: "skipped",
  };
  return (
    <Table id={props.id} heads={names.map((n) => ({ text: t(labels[n]), num: true as const }))}>
      <tr>{names.map((n) => <td key={n} class="num" data-count={n}>{tx.num(report[n])}</td>)}</tr>
    </Table>
  );
}

/** The first rejected rows: line, field and the API's message. */
export function Rejects(props: { tx: Texts; rejects: ImportReport["rejects"]; total: number }) {
  const { tx, rejects } = props;
  const t = tx.t;
  if (rejects.length === 0) return null;
  return (
    <Table
      class="rejects"
      caption={`${t("firstRejects")} (${tx.num(Math.min(rejects.length, REJECTS_SHOWN))} / ${tx.num(props.total)})`}
      heads={[{ text: t("line"), num: true }, t("field"), t("reason")]}
    >
      {rejects.slice(0, REJECTS_SHOWN).map((r) => (
        <tr data-line={r.line}>
          <td class="num">{r.line}</td>
          <td>{r.field}</td>
          <td>{r.info}</td>
        </tr>
      ))}
    </Table>
  );
}

function PastImports(props: { tx: Texts; runs: ImportRun[] }) {
  const { tx, runs } = props;
  const t = tx.t;
  if (runs.length === 0) return <p>{t("noImports")}</p>;
  return (
    <Table
      id="past-imports"
      heads={[
        t("when"),
        t("file"),
        t("type"),
        t("kind"),
        t("who"),
        { text: t("created_"), num: true },
        { text: t("updated_"), num: true },
        { text: t("unchanged"), num: true },
        { text: t("rejected"), num: true },
        { text: t("skipped"), num: true },
      ]}
    >
      {runs.map((r) => (
        <tr>
          <td>{tx.dateTime(r.started)}</td>
          <td>
            {r.file}
            {r.rejects.length > 0 && (
              <details>
                <summary>{t("details")}</summary>
                <ul>
                  {r.rejects.slice(0, REJECTS_SHOWN).map((x) => (
                    <li>{`${t("line")} ${x.line}: ${x.field}: ${x.info}`}</li>
                  ))}
                </ul>
              </details>
            )}
          </td>
          <td>{r.type}</td>
          <td>{r.dry_run ? t("check") : t("run")}</td>
          <td>{r.actor}</td>
          <td class="num">{tx.num(r.created)}</td>
          <td class="num">{tx.num(r.updated)}</td>
          <td class="num">{tx.num(r.unchanged)}</td>
          <td class="num">{tx.num(r.rejected)}</td>
          <td class="num">{tx.num(r.skipped)}</td>
        </tr>
      ))}
    </Table>
  );
}

/** The import page: the upload form (owner, manager), a refusal next to it, and the past imports. */
export function ImportBody(props: {
  tx: Texts;
  session: AdminSession;
  programs: DirectoryEntry[];
  runs: ImportRun[];
  values?: UploadValues;
  error?: string | null;
  maxBytes: number;
}) {
  const { tx, session } = props;
  const t = tx.t;
  return (
    <div>
      {canChange(session.role) && (
        <section class="panel" aria-labelledby="h-upload">
          <h2 id="h-upload">{t("importUpload")}</h2>
          <Notice kind="error" text={props.error} id="import-error" />
          <UploadForm
            tx={tx}
            session={session}
            programs={props.programs}
            values={props.values ?? {}}
            maxBytes={props.maxBytes}
          />
        </section>
      )}
      <section class="panel" aria-labelledby="h-past">
        <h2 id="h-past">{t("pastImports")}</h2>
        <PastImports tx={tx} runs={props.runs} />
      </section>
    </div>
  );
}

/** The dry run's report: how the file was read, the counts, the first rejects, and the run button. */
export function CheckBody(props: { tx: Texts; session: AdminSession; check: UploadCheck }) {
  const { tx, session, check } = props;
  const t = tx.t;
  const r = check.report;
  const wouldWrite = r.created + r.updated > 0;
  return (
    <div>
      <section class="panel" aria-labelledby="h-check">
        <h2 id="h-check">{`${t("dryRunReport")}: ${check.upload.name}`}</h2>
        <p>
          {`${t("detected")}: ${check.format.toUpperCase()}, ${check.encoding}`}
          {check.delimiter !== null && `, ${t("delimiter")} "${check.delimiter === "\t" ? "tab" : check.delimiter}"`}
          {`; ${t("rows")}: ${tx.num(check.rows)}`}
        </p>
        <details>
          <summary>{t("columnsMap")}</summary>
          <ul>
            {check.headers.map((h, i) => (
              <li>{`${h} → ${check.columns[i] === IGNORE ? t("ignored") : check.columns[i] ?? t("ignored")}`}</li>
            ))}
          </ul>
        </details>
        <Counts tx={tx} report={r} id="check-counts" />
        <Rejects tx={tx} rejects={r.rejects} total={r.rejected} />
        {wouldWrite
          ? (
            <form method="post" action="/admin/import/run">
              <Csrf session={session} />
              <input type="hidden" name="upload" value={check.upload.id} />
              <input type="hidden" name="rows" value={String(check.rows)} />
              <button type="submit" id="run-import">{t("runImport")}</button>
            </form>
          )
          : <Notice kind="error" text={t("nothingToRun")} />}
      </section>
      <p>
        <a href="/admin/import">{t("anotherImport")}</a>
      </p>
    </div>
  );
}

/** Whether a running job has shown no progress for long enough that its process may be gone. */
export function isStalled(job: ImportJob<ImportReport>, now: number): boolean {
  return job.state === "running" && now - job.updated > 5 * 60_000;
}

/** A run's progress (refreshing by itself while it runs), then its report. */
export function JobBody(props: { tx: Texts; job: ImportJob<ImportReport>; now: number }) {
  const { tx, job } = props;
  const t = tx.t;
  const state = job.state === "running" ? t("running") : job.state === "done" ? t("done") : t("failed");
  return (
    <div>
      <section
        class="panel"
        aria-labelledby="h-job"
        id="import-job"
        data-state={job.state}
        data-progress={job.state === "running" ? `/admin/import/jobs/${job.id}/progress` : undefined}
      >
        <h2 id="h-job">{`${job.file}: ${state}`}</h2>
        <label for="job-progress">{t("progress")}</label>{" "}
        <progress id="job-progress" max={Math.max(job.total, job.rows, 1)} value={job.rows}></progress>{" "}
        <span id="job-rows" aria-live="polite">{`${tx.num(job.rows)} / ${tx.num(Math.max(job.total, job.rows))}`}</span>
        {isStalled(job, props.now) && <Notice kind="error" text={t("stalled")} />}
        {job.error && <Notice kind="error" text={job.error} />}
        {job.report && (
          <div>
            <Counts tx={tx} report={job.report} id="job-counts" />
            <Rejects tx={tx} rejects={job.report.rejects} total={job.report.rejected} />
          </div>
        )}
        {job.state === "running" && (
          <p>
            <a href={`/admin/import/jobs/${job.id}`}>{t("refresh")}</a>
          </p>
        )}
      </section>
      <p>
        <a href="/admin/import">{t("anotherImport")}</a>
      </p>
    </div>
  );
}
