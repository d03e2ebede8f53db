import type { Context } from "hono";
import type { AppError } from "../domain/errors.ts";
import type { AppEnv, Format } from "./context.ts";

import { type ReplyBody, toXml, XML_DECLARATION, xmlFields as fields, xmlItem as itemXml } from "../domain/xml.ts";

export type { ReplyBody, ReplyValue } from "../domain/xml.ts";
export { toXml };

const JSON_TYPE = "application/json; charset=UTF-8";
const XML_TYPE = "application/xml; charset=UTF-8";

/** Serialises a reply in the asked format with the right content type. */
export function render(format: Format, body: ReplyBody, status = 200): Response {
  if (format === "xml") {
    return new Response(toXml(body), { status, headers: { "content-type": XML_TYPE } });
  }
  return new Response(JSON.stringify(body), { status, headers: { "content-type": JSON_TYPE } });
}

/** The reply to a refused request (an AppError): its message, and the field it names. */
export function errorReply(format: Format, error: AppError): Response {
  const body: ReplyBody = { success: 0, info: error.message };
  if (error.field) body.field = error.field;
  return render(format, body, error.status);
}

/** The reply to a request that failed on a bug or a store error (logged with its stack where it happened). */
export function internalErrorReply(format: Format): Response {
  return render(format, { success: 0, info: "Internal error" }, 500);
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
