import type { Context } from "hono";
import type { AppEnv, Format } from "./context.ts";

/** A value in a reply: the same tree is written as JSON or as XML. */
export type ReplyValue = string | number | null | ReplyValue[] | { [key: string]: ReplyValue };

/** A reply body: the fields under `<root>` in XML, the top-level object in JSON. */
export type ReplyBody = Record<string, ReplyValue>;

/** XML element names of the items of each list (JSON arrays carry no item name). */
const ITEM_NAMES: Record<string, string> = {
  customers: "customer",
  cards: "card",
  bonuses: "bonus",
  groups: "group",
  card_types: "card_type",
  bonus_programs: "bonus_program",
  transactions: "transaction",
  history: "entry",
  changes: "change",
};

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';
const JSON_TYPE = "application/json; charset=UTF-8";
const XML_TYPE = "application/xml; charset=UTF-8";

function itemName(list: string): string {
  return ITEM_NAMES[list] ?? (list.endsWith("s") ? list.slice(0, -1) : "item");
}

/** `\r` as a character reference: a raw CR is read back as a line feed by every XML parser. */
const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;" };
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /[&<>\r\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
// deno-lint-ignore no-control-regex
const ESCAPE_ALL = /[&<>\r\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/**
 * Escapes element text (attributes are never written, so quotes need no escaping). Characters XML 1.0 forbids
 * (input refuses them, but older data might hold them) become U+FFFD, so a reply is always well-formed.
 */
function escapeText(text: string): string {
  return NEEDS_ESCAPE.test(text) ? text.replace(ESCAPE_ALL, (ch) => ESCAPES[ch] ?? "\ufffd") : text;
}

/**
 * Writes one element in the specification's layout: every element on its own line, no indentation,
 * an empty value as `<name/>`, a list as `<names><name>...</name></names>`.
 */
function element(name: string, value: ReplyValue): string {
  if (value === null || value === "") return `<${name}/>\n`;
  if (Array.isArray(value)) {
    if (value.length === 0) return `<${name}/>\n`;
    const item = itemName(name);
    let out = `<${name}>\n`;
    for (const v of value) out += element(item, v);
    return out + `</${name}>\n`;
  }
  if (typeof value === "object") {
    let out = `<${name}>\n`;
    for (const key in value) out += element(key, value[key]!);
    return out + `</${name}>\n`;
  }
  return `<${name}>${typeof value === "number" ? value : escapeText(value)}</${name}>\n`;
}

/** Writes a reply body as an XML document in the specification's shape. */
export function toXml(body: ReplyBody): string {
  return XML_DECLARATION + element("root", body);
}

/** Writes the fields of a body as sibling elements. */
function fields(body: ReplyBody): string {
  let out = "";
  for (const key in body) out += element(key, body[key]!);
  return out;
}

/** Writes one list item as an XML fragment, for streamed lists. */
function itemXml(list: string, item: ReplyBody): string {
  return element(itemName(list), item);
}

/** Serialises a reply in the asked format with the right content type. */
export function render(format: Format, body: ReplyBody, status = 200): Response {
  if (format === "xml") {
    return new Response(toXml(body), { status, headers: { "content-type": XML_TYPE } });
  }
  return new Response(JSON.stringify(body), { status, headers: { "content-type": JSON_TYPE } });
}

/** Replies in the format the request asked for. */
export function reply<E extends AppEnv>(c: Context<E>, body: ReplyBody, status = 200): Response {
  // c.get, not c.var: Hono rebuilds the whole c.var object on every access.
  return render((c as unknown as Context<AppEnv>).get("format") ?? "json", body, status);
}

/** Header that marks a reply replayed from an earlier request (same idempotency key, order or return). */
const REPLAYED_HEADER = "Idempotent-Replayed";

/** Replies in the asked format, marked `Idempotent-Replayed: true` when it repeats the first reply of a request. */
export function replayableReply<E extends AppEnv>(c: Context<E>, body: ReplyBody, replayed: boolean): Response {
  const res = reply(c, body);
  if (replayed) res.headers.set(REPLAYED_HEADER, "true");
  return res;
}

/**
 * Streams a reply whose list is too long to hold in memory: `head` fields, then the list fed batch by
 * batch, then `tail` fields. A failure mid-stream aborts the connection, so a client never takes a cut
 * list for a whole one.
 */
export function streamReply(
  format: Format,
  parts: { head: ReplyBody; list: string; items: AsyncIterable<ReplyBody[]>; tail?: ReplyBody },
): Response {
  const encoder = new TextEncoder();
  const { head, list, items, tail = {} } = parts;
  let iterator: AsyncIterator<ReplyBody[]> | null = null;
  let first = true;
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (format === "xml") {
        controller.enqueue(encoder.encode(`${XML_DECLARATION}<root>\n${fields(head)}<${list}>\n`));
      } else {
        const open = JSON.stringify(head).slice(0, -1);
        controller.enqueue(encoder.encode(`${open}${open.length > 1 ? "," : ""}${JSON.stringify(list)}:[`));
      }
      iterator = items[Symbol.asyncIterator]();
    },
    async pull(controller) {
      if (done) return;
      const next = await iterator!.next();
      if (next.done) {
        done = true;
        if (format === "xml") {
          controller.enqueue(encoder.encode(`</${list}>\n${fields(tail)}</root>\n`));
        } else {
          const rest = JSON.stringify(tail).slice(1);
          controller.enqueue(encoder.encode(`]${rest.length > 1 ? "," : ""}${rest}`));
        }
        controller.close();
        return;
      }
      let chunk = "";
      for (const item of next.value) {
        if (format === "xml") chunk += itemXml(list, item);
        else {
          chunk += (first ? "" : ",") + JSON.stringify(item);
          first = false;
        }
      }
      controller.enqueue(encoder.encode(chunk));
    },
    async cancel() {
      await iterator?.return?.();
    },
  });
  return new Response(stream, { headers: { "content-type": format === "xml" ? XML_TYPE : JSON_TYPE } });
}
