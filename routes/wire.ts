import { ValidationError } from "../domain/errors.ts";

/** Strict UTF-8: one invalid byte fails the whole text instead of turning into U+FFFD. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });
/** Strict UTF-8 for escaped text: a U+FEFF there is a character of the text, kept as decodeURIComponent keeps it. */
const ESCAPED_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Maps every byte to one character, so ASCII markers can be found by index in any body. */
const BYTES = new TextDecoder("latin1");
/** Runs of percent escapes: each run must decode to whole UTF-8 characters on its own. */
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
/** A "%" that does not start an escape. */
const LONE_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/** The 400 for a parameter whose text is not valid UTF-8 (bad bytes, bad escapes or a lone surrogate). */
export function notUtf8(field: string): ValidationError {
  return new ValidationError(field, `Invalid ${field}: must be valid UTF-8 text`);
}

/** The 400 for a parameter name that is not valid UTF-8; `where` is "query" or "body". */
function badName(where: string): ValidationError {
  return new ValidationError(where, `Invalid ${where}: parameter names must be valid UTF-8 text`);
}

/** Decodes bytes as strict UTF-8 (by default a leading BOM dropped); null when they are not. */
export function decodeUtf8(bytes: Uint8Array, decoder: TextDecoder = UTF8): string | null {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Decodes one query or form component: "+" is a space and %XX escapes are UTF-8 bytes; null when the escapes are
 * not valid UTF-8 (where URLSearchParams would put U+FFFD and Hono would keep the escape as text). A "%" not followed
 * by two hex digits stays as it is, as both of them do.
 */
export function decodeComponent(text: string): string | null {
  const spaced = text.includes("+") ? text.replaceAll("+", " ") : text;
  if (!spaced.includes("%")) return spaced;
  // Every "%" starts an escape (the usual case): the built-in decoder, which refuses bad UTF-8 just as strictly.
  if (!LONE_PERCENT.test(spaced)) {
    try {
      return decodeURIComponent(spaced);
    } catch {
      return null;
    }
  }
  let ok = true;
  const out = spaced.replace(ESCAPE_RUN, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
    const decoded = decodeUtf8(bytes, ESCAPED_UTF8);
    if (decoded === null) ok = false;
    return decoded ?? "";
  });
  return ok ? out : null;
}

/**
 * Splits a query string or form body into decoded name/value pairs, in order, duplicates kept. A bad value names its
 * parameter; a bad name names `where` ("query" or "body").
 */
export function parsePairs(source: string, where: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const part of source.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    if (name === null) throw badName(where);
    const value = eq === -1 ? "" : decodeComponent(part.slice(eq + 1));
    if (value === null) throw notUtf8(name);
    pairs.push([name, value]);
  }
  return pairs;
}

/** The query string of a request URL, without "?" and fragment. */
export function queryString(url: string): string {
  const start = url.indexOf("?");
  if (start === -1) return "";
  const hash = url.indexOf("#", start);
  return url.slice(start + 1, hash === -1 ? undefined : hash);
}

/** Names the form parameter whose raw bytes are not UTF-8 (form bodies split on "&" bytes, which UTF-8 never hides). */
export function formBytesError(bytes: Uint8Array): ValidationError {
  let start = 0;
  while (start < bytes.length) {
    const amp = bytes.indexOf(0x26, start);
    const end = amp === -1 ? bytes.length : amp;
    const part = bytes.subarray(start, end);
    if (decodeUtf8(part) === null) {
      const eq = part.indexOf(0x3d);
      const raw = eq === -1 ? null : decodeUtf8(part.subarray(0, eq));
      const name = raw === null ? null : decodeComponent(raw);
      return name === null ? badName("body") : notUtf8(name);
    }
    start = end + 1;
  }
  return notUtf8("body");
}

/** Where a scan of a JSON object's text stopped. */
interface JsonScan {
  /** The object's own keys, decoded, in order, duplicates kept. */
  keys: string[];
  /** The key whose value the text ended in (a text cut short), if it ended inside a value's string. */
  openValueOf: string | undefined;
}

/**
 * Scans the text of a JSON object for its top-level keys, which JSON.parse would let the last duplicate win. Keys
 * are decoded by JSON.parse itself, so escapes (`"\u0061"` is `"a"`) count as what they mean. On a text cut short
 * (the valid part before a bad byte) it also tells in which key's value string the text ended.
 */
export function scanJsonObject(text: string): JsonScan {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  let current: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const isKey = depth === 1 && expectKey;
      if (j >= text.length) return { keys, openValueOf: isKey || depth === 0 ? undefined : current };
      if (isKey) {
        current = JSON.parse(text.slice(i, j + 1)) as string;
        keys.push(current);
        expectKey = false;
      }
      i = j;
    } else if (ch === "{" || ch === "[") {
      depth++;
      if (depth === 1) expectKey = ch === "{";
    } else if (ch === "}" || ch === "]") {
      depth--;
    } else if (ch === "," && depth === 1) {
      expectKey = true;
    }
  }
  return { keys, openValueOf: undefined };
}

/** The longest prefix of bytes that holds no invalid UTF-8 (a cut-off last character is not invalid yet), decoded. */
function validPrefix(bytes: Uint8Array): string {
  const ok = (n: number) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  // Invalid bytes stay invalid in every longer prefix, so the boundary can be found by bisection.
  let lo = 0;
  let hi = bytes.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return new TextDecoder("utf-8").decode(bytes.subarray(0, lo), { stream: true });
}

/** Names the JSON parameter whose string holds the first invalid UTF-8 byte, or "body" when it is not in a value. */
export function jsonBytesError(bytes: Uint8Array): ValidationError {
  const field = scanJsonObject(validPrefix(bytes)).openValueOf;
  return notUtf8(field ?? "body");
}

/** The boundary of a multipart content type, if it names one. */
export function multipartBoundary(contentType: string): string | undefined {
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match ? match[1] ?? match[2] : undefined;
}

/** Whether a multipart body ends with its closing delimiter, so that no last part was cut off in transit. */
export function hasClosingBoundary(bytes: Uint8Array, boundary: string): boolean {
  return BYTES.decode(bytes).includes(`--${boundary}--`);
}

/** Names the multipart field whose value holds the first invalid UTF-8 byte, or "body" when it is not in a value. */
export function multipartBytesError(bytes: Uint8Array, boundary: string): ValidationError {
  const text = validPrefix(bytes);
  const part = text.slice(text.lastIndexOf(`--${boundary}`));
  const headersEnd = part.indexOf("\r\n\r\n");
  const name = headersEnd === -1 ? null : /;\s*name="([^"]*)"/i.exec(part.slice(0, headersEnd));
  return notUtf8(name?.[1] ?? "body");
}
