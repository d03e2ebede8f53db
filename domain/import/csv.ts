/**
 * Reading text files of rows, pure: the encoding and delimiter a file most likely uses, and a CSV parser fed in
 * chunks so a file of any size is read with flat memory (quoted fields, doubled quotes, CRLF, newlines in quotes).
 */
import { ValidationError } from "../errors.ts";

/** Text encodings an import understands. */
export type ImportEncoding = "utf-8" | "windows-1251";

/** Delimiters CSV detection chooses between. */
export const DELIMITERS = [",", ";", "\t"] as const;

/** Whether bytes start with the UTF-8 byte order mark. */
export function hasBom(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

/**
 * The encoding of a file from its first bytes: UTF-8 when it has a BOM or decodes as UTF-8 (a character cut at the
 * end of the sample is allowed), else Windows-1251, the other encoding Russian spreadsheets are saved in.
 */
export function detectEncoding(sample: Uint8Array): ImportEncoding {
  if (hasBom(sample)) return "utf-8";
  // A multi-byte character may be cut by the end of the sample: drop up to 3 trailing bytes of one.
  let end = sample.length;
  for (let back = 1; back <= 3 && end - back >= 0; back++) {
    const b = sample[end - back]!;
    if ((b & 0xc0) === 0x80) continue;
    if (b >= 0xc0) end = end - back;
    break;
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(sample.subarray(0, end));
    return "utf-8";
  } catch {
    return "windows-1251";
  }
}

/** The delimiter of a CSV file from its header line: the most frequent of `,` `;` and tab outside quotes. */
export function detectDelimiter(headerLine: string): string {
  const counts = new Map<string, number>(DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best = ",";
  for (const d of DELIMITERS) if (counts.get(d)! > counts.get(best)!) best = d;
  return best;
}

/** The longest field a file may have (1 MiB of characters): a longer one is a file error, not memory spent. */
export const MAX_FIELD_CHARS = 1024 * 1024;
/** The longest record a file may have (4 MiB of characters). */
export const MAX_RECORD_CHARS = 4 * 1024 * 1024;

/** One record of a file: its fields and the (1-based) line it starts on. */
export interface CsvRecord {
  line: number;
  fields: string[];
}

/**
 * A streaming CSV parser (RFC 4180 plus CRLF or LF line ends): `push` text chunks, take the complete records it
 * returns, then `end` for the last one. A leading BOM is dropped.
 */
export class CsvParser {
  #delimiter: string;
  #field = "";
  #fields: string[] = [];
  #quoted = false;
  /** The quote just seen inside a quoted field may be the first of a doubled quote or the closing one. */
  #quoteSeen = false;
  #line = 1;
  #recordLine = 1;
  #started = false;
  #first = true;
  /** Characters of the current record so far. */
  #recordChars = 0;

  constructor(delimiter: string) {
    this.#delimiter = delimiter;
  }

  /** Parses a chunk; returns the records it completed. Fields are built from slices of the chunk. */
  push(chunk: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    let text = chunk;
    if (this.#first && text.length > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const d = this.#delimiter;
    const n = text.length;
    let i = 0;
    while (i < n) {
      if (this.#quoted) {
        if (this.#quoteSeen) {
          this.#quoteSeen = false;
          if (text[i] === '"') {
            this.#append('"');
            i++;
            continue;
          }
          this.#quoted = false; // the quote closed the field; read text[i] unquoted below
        } else {
          const q = text.indexOf('"', i);
          const stop = q < 0 ? n : q;
          for (let nl = text.indexOf("\n", i); nl >= 0 && nl < stop; nl = text.indexOf("\n", nl + 1)) this.#line++;
          this.#append(text.slice(i, stop));
          if (q < 0) break;
          this.#quoteSeen = true;
          i = q + 1;
          continue;
        }
      }
      const ch = text[i]!;
      if (ch === '"' && this.#field === "" && !this.#started) {
        this.#quoted = true;
        this.#started = true;
        i++;
      } else if (ch === d) {
        this.#fields.push(this.#field);
        this.#field = "";
        this.#started = false;
        i++;
      } else if (ch === "\n") {
        this.#fields.push(this.#field.endsWith("\r") ? this.#field.slice(0, -1) : this.#field);
        out.push({ line: this.#recordLine, fields: this.#fields });
        this.#fields = [];
        this.#field = "";
        this.#started = false;
        this.#recordChars = 0;
        this.#line++;
        this.#recordLine = this.#line;
        i++;
      } else {
        // A run of plain characters (a quote inside it is kept as it is), up to the next delimiter or line end.
        let j = i;
        while (j < n) {
          const c = text[j]!;
          if (c === d || c === "\n") break;
          if (c !== "\r") this.#started = true;
          j++;
        }
        this.#append(text.slice(i, j));
        i = j;
      }
    }
    return out;
  }

  /** Adds text to the current field, within the field and record caps (a file error naming the line). */
  #append(part: string): void {
    this.#recordChars += part.length;
    if (this.#field.length + part.length > MAX_FIELD_CHARS) {
      throw new ValidationError(
        "file",
        `Invalid file: line ${this.#recordLine} has a field longer than ${MAX_FIELD_CHARS} characters (an unclosed quote?)`,
      );
    }
    if (this.#recordChars > MAX_RECORD_CHARS) {
      throw new ValidationError(
        "file",
        `Invalid file: the record of line ${this.#recordLine} is longer than ${MAX_RECORD_CHARS} characters`,
      );
    }
    this.#field += part;
  }

  /** Completes the parse: the last record when the text did not end with a newline. */
  end(): CsvRecord[] {
    if (this.#quoteSeen) {
      this.#quoteSeen = false;
      this.#quoted = false;
    }
    if (this.#field === "" && this.#fields.length === 0) return [];
    this.#fields.push(this.#field.endsWith("\r") ? this.#field.slice(0, -1) : this.#field);
    const record = { line: this.#recordLine, fields: this.#fields };
    this.#fields = [];
    this.#field = "";
    this.#recordChars = 0;
    return [record];
  }

  /** Whether the text ended inside a quoted field (an unclosed quote). */
  get unterminated(): boolean {
    return this.#quoted && !this.#quoteSeen;
  }
}

/** Whether a record is empty (an empty line, or only delimiters and blanks): skipped. */
export function isEmptyRecord(fields: string[]): boolean {
  return fields.every((f) => f.trim() === "");
}
