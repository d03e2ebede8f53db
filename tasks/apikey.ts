// deno-lint-ignore-file no-console
/**
 * `deno task apikey create|list|revoke`: manages API keys (and companies) in the store at KV_PATH.
 *
 *   deno task apikey create --company acme [--name "Acme LLC"] [--user 1] [--access write|read] [--label text]
 *   deno task apikey list [--company acme]
 *   deno task apikey revoke <key id>
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { checkCompanyId } from "../domain/api_key.ts";
import { createStore } from "../storage/store.ts";
import { createKey, listKeys, revokeKey } from "../usecases/mod.ts";
import { openKv } from "../storage/open.ts";

const USAGE = `Usage:
  deno task apikey create --company ID [--name NAME] [--user N] [--access write|read] [--label TEXT]
  deno task apikey list [--company ID]
  deno task apikey revoke KEY_ID`;

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  Deno.exit(2);
}

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    company: { type: "string" },
    name: { type: "string" },
    user: { type: "string", default: "1" },
    access: { type: "string", default: "write" },
    label: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}

const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv, { auditRetentionDays: config.auditRetentionDays });
const fmt = (ms: number | null) => ms === null ? "-" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);
try {
  const [command, ...rest] = positionals;
  if (command === "create") {
    if (!values.company) fail("create needs --company");
    let company: string;
    try {
      company = checkCompanyId(values.company, "--company");
    } catch (e) {
      fail((e as Error).message);
    }
    const user = Number(values.user);
    if (!Number.isSafeInteger(user) || user < 1) {
      fail(`Invalid --user "${values.user}": must be a positive whole number`);
    }
    if (values.access !== "write" && values.access !== "read") {
      fail(`Invalid --access "${values.access}": must be write or read`);
    }
    const created = await createKey(store, {
      companyId: company,
      companyName: values.name,
      userId: user,
      access: values.access,
      label: values.label,
      actorName: "task:apikey",
    });
    if (created.companyCreated) console.log(`Created company "${company}".`);
    console.log(`Created ${values.access} key ${created.record.id} for company "${company}", user ${user}.`);
    console.log(`Key (shown only now, store it safely): ${created.key}`);
  } else if (command === "list") {
    const records = await listKeys(store, values.company);
    console.log(["id", "company", "user", "access", "created", "revoked", "label"].join("\t"));
    for (const r of records) {
      console.log(
        [r.id, r.company_id, r.user_id, r.access, fmt(r.created_date), fmt(r.revoked_date), r.label ?? ""].join("\t"),
      );
    }
  } else if (command === "revoke") {
    const id = rest[0];
    if (!id) fail("revoke needs a key id (see `deno task apikey list`)");
    const revoked = await revokeKey(store, id, { actorName: "task:apikey" });
    if (!revoked) fail(`No key with id "${id}"`);
    console.log(
      `Revoked key ${revoked.id} of company "${revoked.company_id}" (running servers stop taking it within their AUTH_CACHE_MS).`,
    );
  } else {
    fail(command ? `Unknown command "${command}"` : "Name a command");
  }
} finally {
  kv.close();
}
