/**
 * Streaming encoders of export files: CSV (RFC 4180), NDJSON, JSON and XML. Each writes a document in three parts
 * (head, rows batch by batch, tail) so that an export of any size is written as it is read. Pure: no I/O.
 */
import { type ReplyBody, XML_DECLARATION, xmlFields, xmlItem } from "./xml.ts";

/** The file formats of exports. */
export const EXPORT_FORMATS = ["csv", "json", "ndjson", "xml"] as const;

/** One file format of exports. */
export type ExportFormat = typeof EXPORT_FORMATS[number];

/** One exported record: flat fields, in column order. */
export type ExportRecord = Record<string, string | number | null>;

/** How a document is named: `type` of the API's list replies and the list element (`customers`, `cards`, ...). */
export interface DocumentShape {
  /** The `type` field of the reply, e.g. "customer". */
  type: string;
  /** The list element, e.g. "customers" (XML items are named by routes' rules: `customer`). */
  list: string;
  /** The columns, in order: the CSV header; every record has exactly these fields. */
  columns: readonly string[];
}

/** Writes one document: `head()` once, `rows()` per batch, `tail()` once with the number of records written. */
export interface ExportEncoder {
  head(): string;
  rows(records: ExportRecord[]): string;
  tail(count: number): string;
}

/** Characters that make a CSV field quoted. */
const CSV_SPECIAL = /[",\r\n]/;

/**
 * One CSV field as RFC 4180 writes it: empty for null, quoted (quotes doubled) when it holds a comma, a quote or a
 * line break; nothing is prefixed, so a value starting with `=` stays exactly that text.
 */
export function csvField(value: string | number | null): string {
  if (value === null) return "";
  const text = String(value);
  return CSV_SPECIAL.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV record line, CRLF-terminated. */
function csvLine(values: (string | number | null)[]): string {
  return values.map(csvField).join(",") + "\r\n";
}

function csvEncoder(shape: DocumentShape): ExportEncoder {
  return {
    head: () => csvLine([...shape.columns]),
    rows: (records) => records.map((r) => csvLine(shape.columns.map((c) => r[c] ?? null))).join(""),
    tail: () => "",
  };
}

function ndjsonEncoder(): ExportEncoder {
  return {
    head: () => "",
    rows: (records) => records.map((r) => JSON.stringify(r) + "\n").join(""),
    tail: () => "",
  };
}

/** JSON: `{"success":1,"type":...,"<list>":[...],"count":N}`, the API's list reply with the count after the list. */
function jsonEncoder(shape: DocumentShape): ExportEncoder {
  let first = true;
  return {
    head: () => `{"success":1,"type":${JSON.stringify(shape.type)},${JSON.stringify(shape.list)}:[`,
    rows: (records) => {
      let out = "";
      for (const r of records) {
        out += (first ? "\n" : ",\n") + JSON.stringify(r);
        first = false;
      }
      return out;
    },
    tail: (count) => `${first ? "" : "\n"}],"count":${count}}\n`,
  };
}

/** XML: `<root><success>1</success><type>..</type><list><item>...</item></list><count>N</count></root>`. */
function xmlEncoder(shape: DocumentShape): ExportEncoder {
  return {
    head: () => `${XML_DECLARATION}<root>\n${xmlFields({ success: 1, type: shape.type })}<${shape.list}>\n`,
    rows: (records) => records.map((r) => xmlItem(shape.list, r as ReplyBody)).join(""),
    tail: (count) => `</${shape.list}>\n${xmlFields({ count })}</root>\n`,
  };
}

/** The encoder of one document in a format. */
export function exportEncoder(format: ExportFormat, shape: DocumentShape): ExportEncoder {
  switch (format) {
    case "csv":
      return csvEncoder(shape);
    case "ndjson":
      return ndjsonEncoder();
    case "json":
      return jsonEncoder(shape);
    case "xml":
      return xmlEncoder(shape);
  }
}

/** The format a file name's extension names (`.csv`, `.json`, `.ndjson`/`.jsonl`, `.xml`), or null. */
export function formatOfPath(path: string): ExportFormat | null {
  const ext = /\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase();
  if (ext === "jsonl") return "ndjson";
  return (EXPORT_FORMATS as readonly string[]).includes(ext ?? "") ? ext as ExportFormat : null;
}
