import { Hono } from "hono";
import { type DirectoryEntry, directoryName } from "../domain/directory.ts";
import { formatDateTime } from "../domain/dates.ts";
import { ValidationError } from "../domain/errors.ts";
import { directoryListReply, directoryWriteReply } from "../domain/replies.ts";
import { type FieldRule, id, nonEmpty, text } from "../domain/fields.ts";
import { settingsView } from "../domain/program_settings.ts";
import { type DirectoryKind, listDirectory, saveDirectoryEntry } from "../usecases/mod.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { reply, type ReplyBody } from "./reply.ts";
import { input } from "./request.ts";

/** How one directory shows on the wire. */
export interface DirectoryShape {
  kind: DirectoryKind;
  /** Value of `type` in list replies, e.g. "card_type". */
  type: string;
  /** Name of the id parameter and field, e.g. "type_id" or "id". */
  idField: string;
  /** Name of the name parameter and field, e.g. "type_name" or "name". */
  nameField: string;
  /** Settings the entries take (program rules, tier settings), by parameter name. */
  settings?: Record<string, FieldRule>;
}

/** Renders a directory entry with the shape's field names. */
export function directoryView(entry: DirectoryEntry, shape: DirectoryShape, timeZone: string): ReplyBody {
  return {
    [shape.idField]: entry.id,
    [shape.nameField]: entry.name,
    description: entry.description,
    ...settingsView(Object.keys(shape.settings ?? {}), entry.settings),
    created_date: formatDateTime(entry.created_date, timeZone),
    last_update_date: formatDateTime(entry.last_update_date, timeZone),
  };
}

/** The settings a request changes: those it names, an empty value resetting one. */
function settingsOf(shape: DirectoryShape, fields: Record<string, unknown>): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {};
  for (const name of Object.keys(shape.settings ?? {})) {
    if (fields[name] !== undefined) out[name] = fields[name] as number | string | null;
  }
  return out;
}

/**
 * A directory sub-app: `GET /` lists every entry, `GET|POST /update` creates one (no id) or renames /
 * re-describes the entry whose id is given in the query.
 */
export function directoryRoutes(deps: Deps, shape: DirectoryShape) {
  const listKey = `${shape.type}s`;
  const updateInput = input({
    query: { [shape.idField]: nonEmpty(id).describe("Change the entry with this id; without it, create one.") },
    fields: {
      [shape.nameField]: directoryName.describe("The name: required to create; unique per company in any case."),
      description: text(1000).describe("Free text."),
      ...shape.settings,
    },
    summary: `Create or change a ${shape.type.replace("_", " ")}`,
    reply: directoryWriteReply(shape),
    tags: [shape.type],
  });
  return new Hono<AppEnv>()
    .get(
      "/",
      input({
        query: {},
        fields: {},
        summary: `List every ${shape.type.replace("_", " ")}`,
        reply: directoryListReply(shape),
        tags: [shape.type],
      }),
      async (c) => {
        const entries = await listDirectory(deps.store, actorOf(c.var.caller), shape.kind);
        const items = entries.map((e) => directoryView(e, shape, deps.config.timeZone));
        return reply(c, { success: 1, type: shape.type, count: items.length, [listKey]: items });
      },
    )
    .on(["GET", "POST"], "/update", requireWrite, updateInput, async (c) => {
      const { query, fields } = c.var.input;
      const entryId = query[shape.idField] as number | null | undefined;
      const name = fields[shape.nameField] as string | undefined;
      if (entryId == null && name === undefined) {
        throw new ValidationError(shape.nameField, `Parameter "${shape.nameField}" is required to create an entry`);
      }
      const { entry, isNew } = await saveDirectoryEntry(deps.store, actorOf(c.var.caller), {
        kind: shape.kind,
        id: entryId ?? undefined,
        name,
        description: fields.description as string | null | undefined,
        settings: settingsOf(shape, fields),
        fields: { id: shape.idField, name: shape.nameField },
      });
      return reply(c, { success: 1, [shape.idField]: entry.id, isnew: isNew ? 1 : 0 });
    });
}
