// deno-lint-ignore-file no-console
/**
 * `deno task group|cardtype|bonusprogram list|create|update`: manages a company's customer groups, card
 * types or bonus programs in the store at KV_PATH (the same rules as the HTTP directory endpoints).
 *
 *   deno task cardtype list --company acme
 *   deno task cardtype create --company acme --name "Gold" [--description "5% off"]
 *   deno task cardtype update --company acme --id 3 [--name "Platinum"] [--description ""]
 *   deno task bonusprogram update --company acme --id 1 --accrual-percent 5 --pending-days 14 --lifetime-days 365
 *   deno task group update --company acme --id 2 --min-accumulated-sales 50000 --accrual-percent 7
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { checkCompanyId } from "../domain/api_key.ts";
import { checkDirectoryName } from "../domain/directory.ts";
import { AppError } from "../domain/errors.ts";
import { type FieldRule, parserOf } from "../domain/fields.ts";
import { GROUP_SETTINGS, PROGRAM_SETTINGS, settingsView } from "../domain/program_settings.ts";
import { createStore } from "../storage/store.ts";
import { type DirectoryKind, listDirectory, saveDirectoryEntry } from "../usecases/mod.ts";
import { openKv } from "../storage/open.ts";

const KINDS: Record<string, DirectoryKind> = {
  group: "groups",
  cardtype: "card_types",
  bonusprogram: "bonus_programs",
};

/** The settings each directory takes (program rules, tier settings), as the API names them. */
const SETTINGS: Record<DirectoryKind, Record<string, FieldRule>> = {
  groups: GROUP_SETTINGS,
  card_types: {},
  bonus_programs: PROGRAM_SETTINGS,
};

const [kindName, ...rest] = Deno.args;
const kind = KINDS[kindName ?? ""];
/** Settings options: the API's names with dashes (`--accrual-percent 3.5`; an empty value resets one). */
const settingNames = kind ? Object.keys(SETTINGS[kind]) : [];
const flag = (name: string) => name.replaceAll("_", "-");
const usage = `Usage:
  deno task ${kindName ?? "cardtype"} list --company ID
  deno task ${kindName ?? "cardtype"} create --company ID --name NAME [--description TEXT]
  deno task ${kindName ?? "cardtype"} update --company ID --id N [--name NAME] [--description TEXT]` +
  (settingNames.length === 0 ? "" : `
  create and update also take: ${settingNames.map((n) => `--${flag(n)} VALUE`).join(" ")}
  (as the API's ${settingNames.join(", ")}; an empty value resets one to its default)`);

function fail(message: string): never {
  console.error(`${message}\n\n${usage}`);
  Deno.exit(2);
}

if (!kind) fail(`Unknown directory "${kindName}": use group, cardtype or bonusprogram`);
// An unknown option, or one missing its value, is answered by the usage (exit 2), not a stack trace.
const { positionals, values } = (() => {
  try {
    return parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        company: { type: "string" },
        id: { type: "string" },
        name: { type: "string" },
        description: { type: "string" },
        ...Object.fromEntries(settingNames.map((n) => [flag(n), { type: "string" as const }])),
      },
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
})();

/** The settings the options change, parsed by the API's own rules (errors name the option). */
function settingsOf(options: Record<string, unknown>): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {};
  for (const name of settingNames) {
    const raw = options[flag(name)];
    if (typeof raw === "string") {
      out[name] = parserOf(SETTINGS[kind!][name]!)(raw, `--${flag(name)}`) as number | string | null;
    }
  }
  return out;
}
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
    console.log(["id", "name", "description", ...settingNames].join("\t"));
    for (const e of await listDirectory(store, actor(company), kind)) {
      const settings = Object.values(settingsView(settingNames, e.settings)).map((v) => v ?? "");
      console.log([e.id, e.name, e.description ?? "", ...settings].join("\t"));
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
      settings: settingsOf(values),
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
