// deno-lint-ignore-file no-console
/**
 * `deno task group|cardtype|bonusprogram list|create|update`: manages a company's customer groups, card
 * types or bonus programs in the store at KV_PATH (the same rules as the HTTP directory endpoints).
 *
 *   deno task cardtype list --company acme
 *   deno task cardtype create --company acme --name "Gold" [--description "5% off"]
 *   deno task cardtype update --company acme --id 3 [--name "Platinum"] [--description ""]
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { checkCompanyId } from "../domain/api_key.ts";
import { checkDirectoryName } from "../domain/directory.ts";
import { AppError } from "../domain/errors.ts";
import { createStore } from "../storage/store.ts";
import { type DirectoryKind, listDirectory, saveDirectoryEntry } from "../usecases/mod.ts";
import { openKv } from "../storage/open.ts";

const KINDS: Record<string, DirectoryKind> = {
  group: "groups",
  cardtype: "card_types",
  bonusprogram: "bonus_programs",
};

const [kindName, ...rest] = Deno.args;
const kind = KINDS[kindName ?? ""];
const usage = `Usage:
  deno task ${kindName ?? "cardtype"} list --company ID
  deno task ${kindName ?? "cardtype"} create --company ID --name NAME [--description TEXT]
  deno task ${kindName ?? "cardtype"} update --company ID --id N [--name NAME] [--description TEXT]`;

function fail(message: string): never {
  console.error(`${message}\n\n${usage}`);
  Deno.exit(2);
}

if (!kind) fail(`Unknown directory "${kindName}": use group, cardtype or bonusprogram`);
const { positionals, values } = parseArgs({
  args: rest,
  allowPositionals: true,
  options: {
    company: { type: "string" },
    id: { type: "string" },
    name: { type: "string" },
    description: { type: "string" },
  },
});
const command = positionals[0];
if (!values.company) fail("--company is required");
const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv, { auditRetentionDays: config.auditRetentionDays });
/** Changes made here are audited as `task:<directory>`. */
const actor = (companyId: string) => ({ companyId, name: `task:${Deno.args[0] ?? "directory"}`, userId: 0 });
try {
  const company = checkCompanyId(values.company, "--company");
  if (command === "list") {
    console.log(["id", "name", "description"].join("\t"));
    for (const e of await listDirectory(store, actor(company), kind)) {
      console.log([e.id, e.name, e.description ?? ""].join("\t"));
    }
  } else if (command === "create" || command === "update") {
    let id: number | undefined;
    if (command === "update") {
      id = Number(values.id);
      if (!Number.isSafeInteger(id) || id < 1) {
        fail(`Invalid --id "${values.id ?? ""}": must be a positive whole number`);
      }
    }
    if (command === "create" && values.name === undefined) fail("create needs --name");
    const { entry, isNew } = await saveDirectoryEntry(store, actor(company), {
      kind,
      id,
      name: values.name === undefined ? undefined : checkDirectoryName(values.name, "--name"),
      description: values.description === undefined ? undefined : values.description.trim() || null,
    });
    console.log(`${isNew ? "Created" : "Updated"} ${kindName} ${entry.id}: "${entry.name}"`);
  } else {
    fail(command ? `Unknown command "${command}"` : "Name a command");
  }
} catch (e) {
  if (e instanceof AppError) fail(e.message);
  throw e;
} finally {
  kv.close();
}
