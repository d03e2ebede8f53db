/**
 * The XML writer of replies and exports: a value tree written in the specification's layout. Pure, so that both
 * routes/reply.ts and the export formatters use the one writer.
 */

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

/** The declaration that opens every XML document written. */
export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** The element name of one item of a list element. */
export function itemName(list: string): string {
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
export function xmlElement(name: string, value: ReplyValue): string {
  if (value === null || value === "") return `<${name}/>\n`;
  if (Array.isArray(value)) {
    if (value.length === 0) return `<${name}/>\n`;
    const item = itemName(name);
    let out = `<${name}>\n`;
    for (const v of value) out += xmlElement(item, v);
    return out + `</${name}>\n`;
  }
  if (typeof value === "object") {
    let out = `<${name}>\n`;
    for (const key in value) out += xmlElement(key, value[key]!);
    return out + `</${name}>\n`;
  }
  return `<${name}>${typeof value === "number" ? value : escapeText(value)}</${name}>\n`;
}

/** Writes a reply body as an XML document in the specification's shape. */
export function toXml(body: ReplyBody): string {
  return XML_DECLARATION + xmlElement("root", body);
}

/** Writes the fields of a body as sibling elements. */
export function xmlFields(body: ReplyBody): string {
  let out = "";
  for (const key in body) out += xmlElement(key, body[key]!);
  return out;
}

/** Writes one list item as an XML fragment, for streamed lists. */
export function xmlItem(list: string, item: ReplyBody): string {
  return xmlElement(itemName(list), item);
}
