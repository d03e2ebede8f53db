// deno-lint-ignore-file no-console
/**
 * `deno task apikey create|list|revoke`: manages API keys (and companies) in the store at KV_PATH.
 *
 *   deno task apikey create --company acme [--name "Acme LLC"] [--user 1] [--access write|read] [--label text]
 *                           [--rate N [--burst N]]
 *   deno task apikey list [--company acme]
 *   deno task apikey revoke <key id>
 *   deno task apikey limit <key id> --rate N [--burst N] | --rate default
 */
import { parseCommand, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { checkCompanyId, type RateLimit } from "../domain/api_key.ts";
import { createStore } from "../storage/store.ts";
import { createKey, listKeys, revokeKey, setKeyRateLimit } from "../usecases/mod.ts";
import { openKv } from "../storage/open.ts";

const USAGE = `Usage:
  deno task apikey create --company ID [--name NAME] [--user N] [--access write|read] [--label TEXT]
                          [--rate N [--burst N]]
  deno task apikey list [--company ID]
  deno task apikey revoke KEY_ID
  deno task apikey limit KEY_ID --rate N [--burst N]   (N requests/s for this key, 0 for none; burst 2N)
  deno task apikey limit KEY_ID --rate default         (back to RATE_LIMIT_PER_SECOND/RATE_LIMIT_BURST)`;

function fail(message: string): never {
  usageError(message, `\n${USAGE}`);
}

// An unknown option, or one missing its value, is answered by the usage (exit 2), not a stack trace.
const { positionals, values } = parseCommand({
  company: { type: "string" },
  name: { type: "string" },
  user: { type: "string", default: "1" },
  access: { type: "string", default: "write" },
  label: { type: "string" },
  rate: { type: "string" },
  burst: { type: "string" },
}, USAGE);

/** The --rate/--burst options as a key's own limit; undefined when --rate is not given, null for "default". */
function rateOption(): RateLimit | null | undefined {
  if (values.rate === undefined) {
    if (values.burst !== undefined) fail("--burst needs --rate");
    return undefined;
  }
  if (values.rate === "default") return null;
  const perSecond = Number(values.rate);
  if (values.rate.trim() === "" || !Number.isFinite(perSecond) || perSecond < 0) {
    fail(`Invalid --rate "${values.rate}": must be a number of requests per second (0 for no limit) or default`);
  }
  const burst = values.burst === undefined ? Math.max(1, Math.ceil(perSecond * 2)) : Number(values.burst);
  if (!Number.isSafeInteger(burst) || burst < 1) {
    fail(`Invalid --burst "${values.burst}": must be a whole number from 1`);
  }
  return { per_second: perSecond, burst };
}

/** How a key's limit is listed. */
function rateText(limit: RateLimit | null | undefined): string {
  if (!limit) return "default";
  return limit.per_second === 0 ? "none" : `${limit.per_second}/s burst ${limit.burst}`;
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
    const rateLimit = rateOption();
    const created = await createKey(store, {
      rateLimit,
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
    console.log(["id", "company", "user", "access", "created", "revoked", "label", "rate"].join("\t"));
    for (const r of records) {
      const row = [r.id, r.company_id, r.user_id, r.access, fmt(r.created_date), fmt(r.revoked_date), r.label ?? ""];
      console.log([...row, rateText(r.rate_limit)].join("\t"));
    }
  } else if (command === "revoke") {
    const id = rest[0];
    if (!id) fail("revoke needs a key id (see `deno task apikey list`)");
    const revoked = await revokeKey(store, id, { actorName: "task:apikey" });
    if (!revoked) fail(`No key with id "${id}"`);
    console.log(
      `Revoked key ${revoked.id} of company "${revoked.company_id}" (running servers stop taking it within their AUTH_CACHE_MS).`,
    );
  } else if (command === "limit") {
    const id = rest[0];
    if (!id) fail("limit needs a key id (see `deno task apikey list`)");
    const limit = rateOption();
    if (limit === undefined) fail("limit needs --rate N (requests per second, 0 for no limit) or --rate default");
    const updated = await setKeyRateLimit(store, id, limit, { actorName: "task:apikey" });
    if (!updated) fail(`No key with id "${id}"`);
    console.log(
      `Key ${updated.id} of company "${updated.company_id}": rate limit ${rateText(updated.rate_limit)} ` +
        `(running servers apply it within their AUTH_CACHE_MS).`,
    );
  } else {
    fail(command ? `Unknown command "${command}"` : "Name a command");
  }
} finally {
  kv.close();
}
