/**
 * From the bytes of a file to batches of rows by canonical field: the format, encoding and delimiter chosen or
 * detected, the header resolved (stopping before the first row on a column that maps to nothing), values
 * normalised. CSV and NDJSON are read as a stream with flat memory; a JSON document or XML file is read whole.
 * Web streams only, so the task and tests feed it any ReadableStream.
 */
import { XMLParser } from "fast-xml-parser";
import { ValidationError } from "../errors.ts";
import { type ColumnOptions, IGNORE, recordValues, resolveColumns } from "./columns.ts";
import {
  CsvParser,
  detectDelimiter,
  detectEncoding,
  hasBom,
  type ImportEncoding,
  isEmptyRecord,
  MAX_RECORD_CHARS,
} from "./csv.ts";
import { normaliseValues } from "./values.ts";

/** File formats an import reads. */
export type ImportFormat = "csv" | "json" | "ndjson" | "xml";

/** One row ready for the import: its line (record number in JSON and XML), values by field, or why it is unreadable. */
export interface ReadRow {
  line: number;
  values: Record<string, string>;
  /** A value the row's own spreadsheet conventions could not be read in (the row is rejected). */
  error?: { field: string; info: string };
}

/** How a file is read. */
export interface ReadOptions extends ColumnOptions {
  format: ImportFormat;
  encoding?: ImportEncoding;
  delimiter?: string;
  /** Rows per batch (default 2000). */
  batchSize?: number;
  /** Hears the bytes read so far (for progress). */
  onBytes?: (bytes: number) => void;
}

/** An opened file: what was detected, the resolved columns, and the rows in batches. */
export interface OpenedFile {
  encoding: ImportEncoding;
  delimiter: string | null;
  headers: string[];
  columns: string[];
  batches: AsyncGenerator<ReadRow[]>;
}

/** The format of a file from its name's extension; null when it says nothing known. */
export function formatOfName(name: string): ImportFormat | null {
  const ext = name.toLowerCase().split(".").pop() ?? "";
  if (ext === "csv" || ext === "txt" || ext === "tsv") return "csv";
  if (ext === "json") return "json";
  if (ext === "ndjson" || ext === "jsonl") return "ndjson";
  if (ext === "xml") return "xml";
  return null;
}

/** Reads a stream's chunks, remembering the first one so the encoding can be told before decoding. */
class Source {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #head: Uint8Array[] = [];
  bytes = 0;
  constructor(stream: ReadableStream<Uint8Array>, private onBytes?: (n: number) => void) {
    this.#reader = stream.getReader();
  }
  /** At least `n` bytes from the start (fewer at the end of the stream), kept to be read again. */
  async peek(n: number): Promise<Uint8Array> {
    let have = this.#head.reduce((s, c) => s + c.length, 0);
    while (have < n) {
      const { done, value } = await this.#reader.read();
      if (done) break;
      this.#head.push(value);
      have += value.length;
    }
    const out = new Uint8Array(have);
    let at = 0;
    for (const c of this.#head) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
  async *chunks(): AsyncGenerator<Uint8Array> {
    for (const c of this.#head.splice(0)) {
      this.bytes += c.length;
      this.onBytes?.(this.bytes);
      yield c;
    }
    while (true) {
      const { done, value } = await this.#reader.read();
      if (done) return;
      this.bytes += value.length;
      this.onBytes?.(this.bytes);
      yield value;
    }
  }
  /**
   * The text, decoded in fatal mode over the whole stream: an undecodable byte is a file error naming its offset.
   * With `undecided` (the encoding was detected from an all-ASCII start), the encoding is told again from the
   * first chunk that has a non-ASCII byte (the ASCII before it reads the same in both).
   */
  async *text(encoding: ImportEncoding, options: { undecided?: boolean } = {}): AsyncGenerator<string> {
    let enc = encoding;
    let decoder = options.undecided ? null : new TextDecoder(enc, { fatal: true });
    const ascii = new TextDecoder("utf-8");
    let offset = 0;
    const fail = (): never => {
      throw new ValidationError(
        "encoding",
        `Invalid file: a byte at or after offset ${offset} is not ${enc} text; pass the file's --encoding`,
      );
    };
    for await (const c of this.chunks()) {
      if (decoder === null) {
        const i = c.findIndex((b) => b >= 0x80);
        if (i < 0) {
          offset += c.length;
          yield ascii.decode(c);
          continue;
        }
        enc = detectEncoding(c.subarray(i));
        decoder = new TextDecoder(enc, { fatal: true });
      }
      let t: string;
      try {
        t = decoder.decode(c, { stream: true });
      } catch {
        fail();
      }
      offset += c.length;
      yield t!;
    }
    let tail = "";
    try {
      tail = decoder?.decode() ?? "";
    } catch {
      fail();
    }
    if (tail) yield tail;
  }
  async all(encoding: ImportEncoding, options: { undecided?: boolean } = {}): Promise<string> {
    let out = "";
    for await (const t of this.text(encoding, options)) out += t;
    return out.replace(/^\uFEFF/, "");
  }
}

/** Bytes looked at to tell the encoding. */
const SNIFF_BYTES = 64 * 1024;

/**
 * Opens a file for import: detects what was not given, reads the header (or the first record's keys) and
 * resolves the columns, so a usage error (an unknown column, a bad map) is thrown before any row is read.
 */
export async function openRows(stream: ReadableStream<Uint8Array>, options: ReadOptions): Promise<OpenedFile> {
  const source = new Source(stream, options.onBytes);
  const head = await source.peek(SNIFF_BYTES);
  // A spreadsheet's binary (.xlsx is a zip, .xls a compound file) or any file with NUL bytes is not text.
  if ((head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) || head.includes(0)) {
    throw new ValidationError(
      "file",
      "Invalid file: it is binary (an Excel workbook?), not text: save it as CSV (UTF-8) and import that",
    );
  }
  const encoding = options.encoding ?? detectEncoding(head);
  if (hasBom(head) && encoding !== "utf-8") {
    throw new ValidationError("encoding", `Invalid encoding "${encoding}": the file starts with a UTF-8 BOM`);
  }
  const size = options.batchSize ?? 2000;
  // Detected from a start with no byte above 0x7F: told again where the first one comes.
  const undecided = options.encoding === undefined && head.every((b) => b < 0x80);
  if (options.format === "csv") return await openCsv(source, { ...options, encoding, size, undecided });
  if (options.format === "ndjson") return await openNdjson(source, { ...options, encoding, size, undecided });
  const text = await source.all(encoding, { undecided });
  const items = options.format === "json" ? jsonItems(text) : xmlItems(text);
  return openObjects(items, { ...options, encoding, size });
}

type Opened = ReadOptions & { encoding: ImportEncoding; size: number; undecided?: boolean };

function row(line: number, columns: string[], fields: string[], options: ColumnOptions): ReadRow {
  const raw = recordValues(columns, fields);
  try {
    return { line, values: normaliseValues(raw, { apostrophes: options.preset === "shopify" }) };
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    return { line, values: raw, error: { field: e.field ?? "", info: e.message } };
  }
}

async function openCsv(source: Source, options: Opened): Promise<OpenedFile> {
  const texts = source.text(options.encoding, { undecided: options.undecided });
  let parser: CsvParser | null = null;
  let pending: { line: number; fields: string[] }[] = [];
  let delimiter = options.delimiter ?? null;
  let headerRecord: { line: number; fields: string[] } | undefined;
  let buffered = "";
  // The header: the first non-empty record; the delimiter is told from its line.
  while (!headerRecord) {
    const next = await texts.next();
    if (next.done) {
      if (parser === null) {
        delimiter ??= detectDelimiter(buffered.split(/\r?\n/)[0] ?? "");
        parser = new CsvParser(delimiter);
        pending.push(...parser.push(buffered));
      }
      pending.push(...parser.end());
    } else if (parser === null) {
      buffered += next.value;
      if (!buffered.includes("\n")) {
        if (buffered.length > MAX_RECORD_CHARS) {
          throw new ValidationError("file", `Invalid file: line 1 is longer than ${MAX_RECORD_CHARS} characters`);
        }
        continue;
      }
      delimiter ??= detectDelimiter(buffered.replace(/^\uFEFF/, "").split(/\r?\n/)[0]!);
      parser = new CsvParser(delimiter);
      pending.push(...parser.push(buffered));
    } else pending.push(...parser.push(next.value));
    while (pending.length > 0 && isEmptyRecord(pending[0]!.fields)) pending.shift();
    headerRecord = pending.shift();
    if (!headerRecord && next.done) throw new ValidationError("file", "The file is empty: no header row");
  }
  const headers = headerRecord.fields;
  const columns = resolveColumns(headers, options);
  const p = parser!;
  const size = options.size;
  const batches = async function* (): AsyncGenerator<ReadRow[]> {
    const batch: ReadRow[] = [];
    const take = (recs: { line: number; fields: string[] }[]) => {
      // An empty line is handed on with empty values and counted as skipped.
      for (const r of recs) {
        if (isEmptyRecord(r.fields)) batch.push({ line: r.line, values: {} });
        else if (r.fields.slice(columns.length).some((f) => f.trim() !== "")) {
          // A cell beyond the header's columns would be dropped: the row is rejected instead.
          const info = `Invalid row: ${r.fields.length} cells, but the header has ${columns.length} columns`;
          batch.push({ line: r.line, values: {}, error: { field: "", info } });
        } else batch.push(row(r.line, columns, r.fields, options));
      }
    };
    take(pending);
    pending = [];
    for (;;) {
      while (batch.length >= size) yield batch.splice(0, size);
      const next = await texts.next();
      if (next.done) break;
      take(p.push(next.value));
    }
    take(p.end());
    if (p.unterminated) throw new ValidationError("file", "The file ends inside a quoted field");
    while (batch.length > 0) {
      yield batch.splice(0, size);
    }
  };
  return { encoding: options.encoding, delimiter, headers, columns, batches: batches() };
}

function flatten(item: unknown): Record<string, string> | null {
  if (item === null || typeof item !== "object" || Array.isArray(item)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(item)) {
    if (v === null || v === undefined) out[k] = "";
    else if (typeof v === "object") out[k] = ""; // nested lists (a customer's cards, balances) are not fields
    else out[k] = String(v);
  }
  return out;
}

/** Rows from objects: columns resolved from the first object's keys, and again for each new key met. */
class ObjectRows {
  headers: string[] = [];
  columns: string[] = [];
  #index = new Map<string, number>();
  constructor(private options: ColumnOptions) {}
  add(keys: string[]): void {
    const fresh = keys.filter((k) => !this.#index.has(k));
    if (fresh.length === 0) return;
    const resolved = resolveColumns([...this.headers, ...fresh], this.options);
    for (const k of fresh) this.#index.set(k, this.headers.push(k) - 1);
    this.columns = resolved;
  }
  row(line: number, item: unknown): ReadRow {
    const values = flatten(item);
    if (values === null) {
      return { line, values: {}, error: { field: "", info: "Invalid record: not an object" } };
    }
    if (Object.values(values).every((v) => v.trim() === "")) return { line, values: {} };
    this.add(Object.keys(values));
    const fields = this.headers.map((h) => values[h] ?? "");
    // A key absent from this object leaves its field as it is: dropped rather than sent empty.
    const out = row(line, this.columns, fields, this.options);
    this.headers.forEach((h, i) => {
      if (!(h in values) && this.columns[i] !== IGNORE) delete out.values[this.columns[i]!];
    });
    // An object or list where a field's value goes is refused (nested lists of ignored keys are left out).
    for (const [k, v] of Object.entries(item as Record<string, unknown>)) {
      const f = this.columns[this.#index.get(k)!];
      if (v !== null && typeof v === "object" && f !== undefined && f !== IGNORE) {
        return { line, values: out.values, error: { field: f, info: `Invalid ${f}: an object or list, not a value` } };
      }
    }
    return out;
  }
}

async function openNdjson(source: Source, options: Opened): Promise<OpenedFile> {
  const texts = source.text(options.encoding, { undecided: options.undecided });
  const rows = new ObjectRows(options);
  let rest = "";
  let lineNo = 0;
  const lines = async function* (): AsyncGenerator<{ line: number; text: string }> {
    for await (const t of texts) {
      rest += t;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        yield { line: ++lineNo, text: rest.slice(0, nl).replace(/\r$/, "").replace(/^\uFEFF/, "") };
        rest = rest.slice(nl + 1);
      }
    }
    if (rest !== "") yield { line: ++lineNo, text: rest.replace(/\r$/, "") };
  };
  const it = lines();
  const parse = (l: { line: number; text: string }): ReadRow => {
    if (l.text.trim() === "") return { line: l.line, values: {} };
    let item: unknown;
    try {
      item = JSON.parse(l.text);
    } catch (e) {
      return { line: l.line, values: {}, error: { field: "", info: `Invalid JSON: ${(e as Error).message}` } };
    }
    return rows.row(l.line, item);
  };
  // The first record resolves the columns before any row is handed out.
  const first: ReadRow[] = [];
  for (;;) {
    const n = await it.next();
    if (n.done) break;
    first.push(parse(n.value));
    if (Object.keys(first.at(-1)!.values).length > 0) break;
  }
  const parsed = async function* (): AsyncGenerator<ReadRow> {
    yield* first;
    for await (const l of it) yield parse(l);
  };
  return {
    encoding: options.encoding,
    delimiter: null,
    headers: rows.headers,
    columns: rows.columns,
    batches: inBatches(parsed(), options.size),
  };
}

function openObjects(items: unknown[], options: Opened): OpenedFile {
  const rows = new ObjectRows(options);
  // Every record's keys are resolved before any row is handed out (the whole file is in memory): an unknown key
  // anywhere stops the import before its first row.
  for (const item of items) {
    const values = flatten(item);
    if (values !== null && Object.values(values).some((v) => v.trim() !== "")) rows.add(Object.keys(values));
  }
  const parsed = function* (): Generator<ReadRow> {
    for (let i = 0; i < items.length; i++) yield rows.row(i + 1, items[i]);
  };
  return {
    encoding: options.encoding,
    delimiter: null,
    headers: rows.headers,
    columns: rows.columns,
    batches: inBatches(parsed(), options.size),
  };
}

/** Rows in batches of `size` (the last one shorter), made as they are consumed. */
async function* inBatches(rows: AsyncIterable<ReadRow> | Iterable<ReadRow>, size: number): AsyncGenerator<ReadRow[]> {
  let batch: ReadRow[] = [];
  for await (const row of rows) {
    batch.push(row);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

const LISTS = ["customers", "cards", "bonuses", "balances", "ledger", "items", "rows"];

/** The records of a JSON document: a top-level array, or the list of an API-shaped reply (`{"customers": [...]}`). */
export function jsonItems(text: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ValidationError("file", `Invalid JSON file: ${(e as Error).message}`);
  }
  if (Array.isArray(doc)) return doc;
  if (doc && typeof doc === "object") {
    for (const k of LISTS) {
      const v = (doc as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v;
    }
  }
  throw new ValidationError("file", 'Invalid JSON file: expected an array of records or {"customers": [...]}');
}

/** The records of an XML file in the API's shape: `<root><customers><customer>...</customer></customers></root>`. */
export function xmlItems(text: string): unknown[] {
  let doc: Record<string, unknown>;
  try {
    doc = new XMLParser({ parseTagValue: false, ignoreAttributes: true, trimValues: true, htmlEntities: true }).parse(
      text,
      true,
    );
  } catch (e) {
    throw new ValidationError("file", `Invalid XML file: ${(e as Error).message}`);
  }
  const root = (doc.root ?? Object.values(doc).find((v) => v && typeof v === "object")) as
    | Record<string, unknown>
    | undefined;
  if (root && typeof root === "object") {
    for (const k of LISTS) {
      const list = root[k];
      if (list === undefined) continue;
      if (list === "" || list === null) return [];
      const singular = k === "bonuses" ? "bonus" : k === "ledger" ? "entry" : k.replace(/s$/, "");
      const items = (list as Record<string, unknown>)[singular] ??
        Object.values(list as Record<string, unknown>)[0];
      if (items === undefined) return [];
      return (Array.isArray(items) ? items : [items]).map((i) => i === "" ? {} : i);
    }
  }
  throw new ValidationError(
    "file",
    "Invalid XML file: expected <root><customers><customer>...</customer></customers></root>",
  );
}
