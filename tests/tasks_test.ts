import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { request, runTask, snapshot, type TaskResult, tempDir } from "./kit.ts";

/** Asserts a task refused its arguments: exit code 2, the message and the usage on stderr, nothing on stdout. */
function assertUsageError(r: TaskResult, message: string, usage: string): void {
  assert.equal(r.code, 2, r.err);
  assert.equal(r.out, "");
  assert.ok(r.err.startsWith(`${message}\n\nUsage:\n`), r.err);
  assert.ok(r.err.includes(usage), r.err);
}

/** What differs between the three directory tasks. */
const DIRECTORIES = [
  {
    task: "group",
    label: "customer group",
    path: "/api/customergroup",
    list: "groups",
    name: "group_name",
    settings: ["accrual_percent", "min_accumulated_sales"],
  },
  { task: "cardtype", label: "card type", path: "/api/cardtype", list: "card_types", name: "type_name", settings: [] },
  {
    task: "bonusprogram",
    label: "bonus program",
    path: "/api/bonusprogram",
    list: "bonus_programs",
    name: "name",
    settings: ["accrual_percent", "max_spend_percent", "pending_days", "lifetime_days", "rounding"],
  },
] as const;

for (const d of DIRECTORIES) {
  const capital = d.label[0]!.toUpperCase() + d.label.slice(1);
  Deno.test(`deno task ${d.task} list|create|update: exit codes, output, and the service sees the result`, async (t) => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/store.kv`;
    const run = (...args: string[]) => runTask(d.task, args, { kvPath });
    const usage = `  deno task ${d.task} list --company ID\n  deno task ${d.task} create --company ID --name NAME`;

    await t.step("create, update and list", async () => {
      const created = await run("create", "--company", "acme", "--name", "  Gold   Plus ", "--description", "5% off");
      assert.deepEqual(created, { code: 0, out: `Created ${d.task} 1: "Gold Plus"\n`, err: "" });
      const second = await run("create", "--company", "acme", "--name", "Silver");
      assert.deepEqual(second, { code: 0, out: `Created ${d.task} 2: "Silver"\n`, err: "" });
      const renamed = await run("update", "--company", "acme", "--id", "1", "--name", "Platinum");
      assert.deepEqual(renamed, { code: 0, out: `Updated ${d.task} 1: "Platinum"\n`, err: "" });
      const cleared = await run("update", "--company", "acme", "--id", "2", "--description", "");
      assert.equal(cleared.code, 0, cleared.err);
      const list = await run("list", "--company", "acme");
      const header = ["id", "name", "description", ...d.settings].join("\t");
      const empty = d.settings.map(() => "\t").join("");
      assert.deepEqual(list, {
        code: 0,
        out: `${header}\n1\tPlatinum\t5% off${empty}\n2\tSilver\t${empty}\n`,
        err: "",
      });
      const other = await run("list", "--company", "globex");
      assert.deepEqual(other, { code: 0, out: `${header}\n`, err: "" });
    });

    await t.step("refused arguments exit 2 with the reason and the usage, and change nothing", async () => {
      const kv = await Deno.openKv(kvPath);
      const before = await snapshot(kv, { versionstamps: true });
      kv.close();
      assertUsageError(await run("list"), "--company is required", usage);
      assertUsageError(
        await run("list", "--company", "Bad Name"),
        'Invalid --company "Bad Name": use 1 to 40 lower-case letters, digits, - or _',
        usage,
      );
      assertUsageError(await run("create", "--company", "acme"), "create needs --name", usage);
      assertUsageError(
        await run("create", "--company", "acme", "--name", "platinum"),
        `Cannot create ${d.label}: name "platinum" is already taken`,
        usage,
      );
      assertUsageError(
        await run("update", "--company", "acme", "--id", "2", "--name", "PLATINUM"),
        `Cannot rename ${d.label}: name "PLATINUM" is already taken`,
        usage,
      );
      assertUsageError(
        await run("update", "--company", "acme", "--name", "X"),
        'Invalid --id "": must be a positive whole number',
        usage,
      );
      assertUsageError(
        await run("update", "--company", "acme", "--id", "0", "--name", "X"),
        'Invalid --id "0": must be a positive whole number',
        usage,
      );
      assertUsageError(
        await run("update", "--company", "acme", "--id", "9", "--name", "X"),
        `${capital} "9" not found`,
        usage,
      );
      assertUsageError(await run("frob", "--company", "acme"), 'Unknown command "frob"', usage);
      assertUsageError(await run("--company", "acme"), "Name a command", usage);
      const after = await Deno.openKv(kvPath);
      try {
        assert.equal(await snapshot(after, { versionstamps: true }), before);
      } finally {
        after.close();
      }
    });

    await t.step("the service reads what the task wrote", async () => {
      const made = await runTask("apikey", ["create", "--company", "acme"], { kvPath });
      const key = /Key \(shown only now, store it safely\): (lk_\S+)/.exec(made.out)![1]!;
      const kv = await Deno.openKv(kvPath);
      try {
        const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath, logRequests: false } });
        const r = await request(app, "GET", d.path, { key });
        assert.equal(r.status, 200, r.text);
        const entries = r.body[d.list] as Record<string, unknown>[];
        assert.deepEqual(entries.map((e) => [e[d.name], e.description]), [["Platinum", "5% off"], ["Silver", null]]);
      } finally {
        kv.close();
      }
    });
  });
}

Deno.test("deno task apikey: usage, refused arguments, listing and revoking", async (t) => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/keys.kv`;
  const run = (...args: string[]) => runTask("apikey", args, { kvPath });
  const usage =
    "  deno task apikey create --company ID [--name NAME] [--user N] [--access write|read] [--label TEXT]\n" +
    "                          [--rate N [--burst N]]\n" +
    "  deno task apikey list [--company ID]\n  deno task apikey revoke KEY_ID\n" +
    "  deno task apikey limit KEY_ID --rate N [--burst N]   (N requests/s for this key, 0 for none; burst 2N)\n" +
    "  deno task apikey limit KEY_ID --rate default         (back to RATE_LIMIT_PER_SECOND/RATE_LIMIT_BURST)";

  await t.step("--help prints the usage and exits 0", async () => {
    assert.deepEqual(await run("--help"), { code: 0, out: `Usage:\n${usage}\n`, err: "" });
  });

  await t.step("refused arguments exit 2 with the reason and the usage", async () => {
    assertUsageError(await run(), "Name a command", usage);
    assertUsageError(await run("frob"), 'Unknown command "frob"', usage);
    assertUsageError(await run("create"), "create needs --company", usage);
    assertUsageError(
      await run("create", "--company", "acme", "--user", "0"),
      'Invalid --user "0": must be a positive whole number',
      usage,
    );
    assertUsageError(
      await run("create", "--company", "acme", "--user", "1.5"),
      'Invalid --user "1.5": must be a positive whole number',
      usage,
    );
    assertUsageError(
      await run("create", "--company", "acme", "--access", "admin"),
      'Invalid --access "admin": must be write or read',
      usage,
    );
    assertUsageError(await run("revoke"), "revoke needs a key id (see `deno task apikey list`)", usage);
    const listed = await run("list");
    assert.deepEqual(listed, { code: 0, out: "id\tcompany\tuser\taccess\tcreated\trevoked\tlabel\trate\n", err: "" });
  });

  await t.step("create defaults to a write key of user 1; list filters by company and shows labels", async () => {
    const acme = await run("create", "--company", "acme", "--label", "till 1");
    assert.equal(acme.code, 0, acme.err);
    const lines = acme.out.split("\n");
    assert.equal(lines[0], 'Created company "acme".');
    const id = /^Created write key ([0-9a-f]{12}) for company "acme", user 1\.$/.exec(lines[1]!)![1]!;
    assert.match(lines[2]!, /^Key \(shown only now, store it safely\): lk_[A-Za-z0-9_-]{32}$/);
    const globex = await run("create", "--company", "globex", "--access", "read", "--user", "5");
    const otherId = /Created read key (\w+) for company "globex", user 5\./.exec(globex.out)![1]!;

    const all = await run("list");
    const rows = all.out.split("\n").filter((l) => l !== "").map((l) => l.split("\t"));
    assert.equal(rows.length, 3);
    const time = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
    const [acmeRow, globexRow] = [rows.find((r) => r[0] === id)!, rows.find((r) => r[0] === otherId)!];
    assert.deepEqual([...acmeRow.slice(0, 4), acmeRow[5], acmeRow[6]], [id, "acme", "1", "write", "-", "till 1"]);
    assert.match(acmeRow[4]!, time);
    assert.deepEqual([...globexRow.slice(0, 4), globexRow[5], globexRow[6]], [otherId, "globex", "5", "read", "-", ""]);
    const only = await run("list", "--company", "globex");
    assert.equal(only.out.trim().split("\n").length, 2);
    assert.ok(only.out.includes(otherId) && !only.out.includes(id));

    const revoked = await run("revoke", id);
    assert.equal(revoked.code, 0, revoked.err);
    assert.equal(
      revoked.out,
      `Revoked key ${id} of company "acme" (running servers stop taking it within their AUTH_CACHE_MS).\n`,
    );
    const after = (await run("list", "--company", "acme")).out.trim().split("\n")[1]!.split("\t");
    assert.match(after[5]!, time, "the list shows when the key was revoked");
  });
});

Deno.test("deno task bonusprogram and group take the program rules and tier settings by the API's rules", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/rules.kv`;
  const program = (...args: string[]) => runTask("bonusprogram", args, { kvPath });
  const group = (...args: string[]) => runTask("group", args, { kvPath });
  const made = await program(
    "create",
    "--company",
    "acme",
    "--name",
    "Points",
    "--accrual-percent",
    "3.5",
    "--pending-days",
    "14",
    "--lifetime-days",
    "365",
    "--rounding",
    "nearest",
  );
  assert.equal(made.code, 0, made.err);
  const listed = await program("list", "--company", "acme");
  assert.equal(
    listed.out,
    "id\tname\tdescription\taccrual_percent\tmax_spend_percent\tpending_days\tlifetime_days\trounding\n" +
      "1\tPoints\t\t3.5\t\t14\t365\tnearest\n",
  );
  const reset = await program("update", "--company", "acme", "--id", "1", "--lifetime-days", "");
  assert.equal(reset.code, 0, reset.err);
  assert.match((await program("list", "--company", "acme")).out, /\n1\tPoints\t\t3\.5\t\t14\t\tnearest\n$/);
  const bad = await program("update", "--company", "acme", "--id", "1", "--accrual-percent", "120");
  assert.equal(bad.code, 2);
  assert.ok(bad.err.startsWith('Invalid --accrual-percent "120": must be from 0 to 100'), bad.err);
  const tier = await group("create", "--company", "acme", "--name", "Gold", "--min-accumulated-sales", "50000");
  assert.equal(tier.code, 0, tier.err);
  assert.match((await group("list", "--company", "acme")).out, /\n1\tGold\t\t\t50000\n$/);
});

Deno.test("an unknown option is a usage error (exit 2), never a stack trace", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/opts.kv`;
  for (const [task, args] of [["group", ["list", "--bogus"]], ["apikey", ["create", "--read"]]] as const) {
    const r = await runTask(task, [...args], { kvPath });
    assert.equal(r.code, 2, r.err);
    assert.ok(r.err.startsWith(`Unknown option '${args[1]}'`), r.err);
    assert.ok(r.err.includes("Usage:"), r.err);
    assert.ok(!r.err.includes("    at "), r.err);
  }
});
