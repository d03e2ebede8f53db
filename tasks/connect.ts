// deno-lint-ignore-file no-console
/**
 * `deno task connect list|create|update|delete`: manages a company's shop connections (Shopify, WooCommerce) in the
 * store at KV_PATH, with the same rules as `POST /api/connection/update`. Secrets are never printed.
 *
 *   deno task connect list --company acme
 *   deno task connect create --company acme --platform shopify --shop my.myshopify.com --secret S --bonus-id 1
 *                            [--percent 5] [--min-order 10] [--name "Main shop"]
 *   deno task connect update ID --company acme [--secret S] [--percent ""] ...
 *   deno task connect delete ID --company acme
 */
import { parseCommand, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { checkCompanyId } from "../domain/api_key.ts";
import { AppError } from "../domain/errors.ts";
import { parseMoney } from "../domain/money.ts";
import { parserOf } from "../domain/fields.ts";
import { percentField } from "../domain/program_settings.ts";
import { isPlatform } from "../domain/webhooks.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import {
  type ConnectionPatch,
  deleteConnection,
  listConnections,
  saveConnection,
  webhookPath,
} from "../usecases/mod.ts";

const USAGE = `Usage:
  deno task connect list --company ID
  deno task connect create --company ID --platform shopify|woocommerce --shop DOMAIN --secret SECRET --bonus-id N
                           [--percent P] [--min-order MONEY] [--name TEXT]
  deno task connect update CONNECTION_ID --company ID [the same options; an empty value clears percent, min-order, name]
  deno task connect delete CONNECTION_ID --company ID`;

function fail(message: string): never {
  usageError(message, `\n${USAGE}`);
}

// An unknown option, or one missing its value, is answered by the usage (exit 2), not a stack trace.
const { positionals, values } = parseCommand({
  company: { type: "string" },
  platform: { type: "string" },
  shop: { type: "string" },
  secret: { type: "string" },
  "bonus-id": { type: "string" },
  percent: { type: "string" },
  "min-order": { type: "string" },
  name: { type: "string" },
}, USAGE);
const [command, id, ...extra] = positionals;
if (extra.length > 0) fail(`Unexpected argument "${extra[0]}"`);
if (!values.company) fail("--company is required");
try {
  checkCompanyId(values.company);
} catch (error) {
  fail((error as Error).message);
}

function patchOf(): ConnectionPatch {
  const patch: ConnectionPatch = {};
  if (values.platform !== undefined) {
    const p = values.platform.toLowerCase();
    if (!isPlatform(p)) fail(`Invalid --platform "${values.platform}": must be shopify or woocommerce`);
    patch.platform = p;
  }
  if (values.shop !== undefined) patch.shop = values.shop;
  if (values.secret !== undefined) patch.secret = values.secret;
  if (values["bonus-id"] !== undefined) {
    const n = Number(values["bonus-id"]);
    if (!Number.isSafeInteger(n) || n < 1) fail(`Invalid --bonus-id "${values["bonus-id"]}": must be a program id`);
    patch.bonusId = n;
  }
  if (values.percent !== undefined) patch.percentBp = parserOf(percentField)(values.percent, "percent");
  if (values["min-order"] !== undefined) {
    patch.minOrder = values["min-order"].trim() === "" ? null : parseMoney(values["min-order"], "min_order");
  }
  if (values.name !== undefined) patch.name = values.name.trim() === "" ? null : values.name;
  return patch;
}

const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv);
const actor = { companyId: values.company, name: "task:connect", userId: 0 };
try {
  switch (command) {
    case "list": {
      const list = await listConnections(store, actor);
      if (list.length === 0) console.log("No connections.");
      for (const c of list) {
        const percent = c.percent_bp === null ? "program rules" : `${c.percent_bp / 100}%`;
        console.log(
          `${c.id}  ${c.platform}  ${c.shop}  program ${c.bonus_id}  ${percent}  ${webhookPath(c)}` +
            (c.name ? `  "${c.name}"` : ""),
        );
      }
      break;
    }
    case "create":
    case "update": {
      if (command === "update" && !id) fail("update needs the connection id");
      if (command === "create" && id) fail("create takes no connection id");
      const r = await saveConnection(store, actor, { id: id ?? null, patch: patchOf() });
      console.log(`${r.isNew ? "Created" : "Updated"} connection ${r.connection.id}; webhook URL: ${r.webhookPath}`);
      break;
    }
    case "delete": {
      if (!id) fail("delete needs the connection id");
      if (!await deleteConnection(store, actor, id)) {
        console.error(`Connection "${id}" not found`);
        Deno.exit(1);
      }
      console.log(`Deleted connection ${id}`);
      break;
    }
    default:
      fail(command ? `Unknown command "${command}"` : "A command is required");
  }
} catch (error) {
  if (error instanceof AppError) {
    console.error(error.message);
    Deno.exit(1);
  }
  throw error;
} finally {
  kv.close();
}
