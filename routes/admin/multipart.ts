/**
 * A multipart/form-data reader (RFC 7578) for the back office's forms. The runtime's `Request.formData()` cuts a
 * quoted file name at its first "=" (`filename="report v=2.csv"` reads as `"report v`), so part headers are read
 * here with a Content-Disposition parser that follows RFC 6266: tokens, quoted-strings with their escapes, and
 * `filename*` (RFC 8187, UTF-8 or Latin-1, percent-encoded), which wins over `filename`.
 */
import { ValidationError } from "../../domain/errors.ts";

/** One parsed form: text fields as strings, file fields as Files; a repeated name keeps its last value. */
export type MultipartForm = Record<string, string | File>;

/** The parameters of a Content-Disposition header value (names lower case), and its type. */
export function parseContentDisposition(value: string): { type: string; params: Record<string, string> } {
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !/[\s;=",]/.test(value[i]!)) i++;
    return value.slice(start, i);
  };
  skipSpace();
  const type = token().toLowerCase();
  const params: Record<string, string> = {};
  while (i < n) {
    skipSpace();
    if (value[i] !== ";") {
      i++;
      continue;
    }
    i++;
    skipSpace();
    const name = token().toLowerCase();
    skipSpace();
    if (value[i] !== "=") continue;
    i++;
    skipSpace();
    let v = "";
    if (value[i] === '"') {
      i++;
      while (i < n && value[i] !== '"') {
        // quoted-pair: a backslash escapes the next character (RFC 9110 5.6.4); browsers escape none but `"`.
        if (value[i] === "\\" && i + 1 < n && (value[i + 1] === '"' || value[i + 1] === "\\")) i++;
        v += value[i];
        i++;
      }
      i++;
      // The HTML standard has browsers write `"`, CR and LF in names as %22, %0D and %0A.
      v = v.replaceAll("%22", '"').replaceAll("%0D", "\r").replaceAll("%0A", "\n");
    } else {
      v = token();
    }
    if (name !== "" && !(name in params)) params[name] = v;
  }
  const extended = params["filename*"];
  if (extended !== undefined) {
    const decoded = decodeExtValue(extended);
    if (decoded !== null) params.filename = decoded;
  }
  return { type, params };
}

/** An RFC 8187 ext-value (`UTF-8''report%20v%3D2.csv`), or null when it is not one. */
function decodeExtValue(raw: string): string | null {
  const m = /^([A-Za-z0-9!#$%&+^_`{}~-]+)'[A-Za-z0-9-]*'(.*)$/.exec(raw);
  if (!m) return null;
  const charset = m[1]!.toLowerCase();
  const bytes: number[] = [];
  const text = m[2]!;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(text.charCodeAt(i) & 0xff);
  }
  if (charset !== "utf-8" && charset !== "iso-8859-1") return null;
  try {
    return new TextDecoder(charset === "utf-8" ? "utf-8" : "latin1", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

/** The boundary of a multipart Content-Type, or null. */
export function boundaryOf(contentType: string): string | null {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;,]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  const last = hay.length - needle.length;
  for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

const CRLF2 = new Uint8Array([13, 10, 13, 10]);

/** Reads a multipart/form-data body; a body that is not one is refused (400) by name. */
export function parseMultipart(body: Uint8Array, contentType: string): MultipartForm {
  const boundary = boundaryOf(contentType);
  const bad = () => new ValidationError("body", "Invalid form: the multipart body cannot be read");
  if (boundary === null) throw bad();
  const enc = new TextEncoder();
  const delimiter = enc.encode(`\r\n--${boundary}`);
  // The first boundary may start the body (no CRLF before it).
  const open = enc.encode(`--${boundary}`);
  let pos = indexOf(body, open, 0);
  if (pos === -1) throw bad();
  pos += open.length;
  const out: MultipartForm = {};
  const decoder = new TextDecoder();
  for (;;) {
    // After a boundary: "--" ends the body; else CRLF and a part.
    if (body[pos] === 45 && body[pos + 1] === 45) return out;
    const headStart = indexOf(body, new Uint8Array([13, 10]), pos);
    if (headStart === -1) throw bad();
    // The blank line after the headers (right after the boundary's CRLF for a part without headers).
    const headerEnd = indexOf(body, CRLF2, headStart);
    if (headerEnd === -1) throw bad();
    const dataStart = headerEnd + 4;
    const next = indexOf(body, delimiter, dataStart);
    if (next === -1) throw bad();
    const headers = new Map<string, string>();
    for (const line of decoder.decode(body.subarray(headStart + 2, headerEnd)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const disposition = parseContentDisposition(headers.get("content-disposition") ?? "");
    const name = disposition.params.name;
    if (disposition.type === "form-data" && name !== undefined) {
      const data = body.subarray(dataStart, next);
      const filename = disposition.params.filename;
      out[name] = filename === undefined ? decoder.decode(data) : new File([data.slice()], filename, {
        type: headers.get("content-type") ?? "application/octet-stream",
      });
    }
    pos = next + delimiter.length;
  }
}
