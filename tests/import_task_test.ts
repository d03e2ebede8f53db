/**
 * `deno task import` as a user runs it: exit codes and the report, the Shopify and WooCommerce presets on their real
 * header rows, a killed import re-run to completion, and remote mode against a real server process.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import type { Customer } from "../domain/customer.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { getBalanceRecord } from "../storage/bonuses.ts";
import { findCard } from "../storage/cards.ts";
import { countList } from "../storage/customers.ts";
import { keys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { verifyStore } from "../storage/verify.ts";
import { listImports, saveDirectoryEntry } from "../usecases/mod.ts";
import { ROOT, runTask, snapshot, startServer, tempDir } from "./kit.ts";

const FIXTURES = new URL("../../../shared/fixtures/import/", import.meta.url).pathname;
const fixture = async (name: string) => {
  const candidates = [`${FIXTURES}${name}`, `/work/shared/fixtures/import/${name}`];
  for (const path of candidates) {
    try {
      await Deno.stat(path);
      return path;
    } catch { /* try the next */ }
  }
  throw new Error(`fixture ${name} not found`);
};

async function withKv<T>(path: string, fn: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const kv = await Deno.openKv(path);
  try {
    return await fn(kv);
  } finally {
    kv.close();
  }
}

async function customerBy(kv: Deno.Kv, cid: string, field: "external_id" | "email", value: string) {
  const key = field === "email" ? keys.customerByEmail(cid, value) : keys.customerByExternalId(cid, value);
  const id = (await kv.get<number>(key)).value;
  return id === null ? null : (await kv.get<Customer>(keys.customer(cid, id))).value;
}

Deno.test("deno task import: exit 0 / 1 / 2, the report as text and JSON, dry run, the run recorded", async (t) => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  const good = `${dir.path}/good.csv`;
  const bad = `${dir.path}/bad.csv`;
  await Deno.writeTextFile(good, "external_id;Имя;Телефон\nk1;Анна;+7 900 111-11-11\nk2;Олег;89001111112\n");
  await Deno.writeTextFile(bad, "external_id,Дата рождения\nk3,31.02.1987\nk4,01.02.1990\n");

  await t.step("a usage error: exit 2, nothing written", async () => {
    const r = await runTask("import", [good, "--type", "pets"], { kvPath });
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /Invalid --type "pets"/);
    const unknown = `${dir.path}/unknown.csv`;
    await Deno.writeTextFile(unknown, "external_id,Цвет\nx,red\n");
    const u = await runTask("import", [unknown], { kvPath });
    assert.equal(u.code, 2);
    assert.match(u.err, /Unknown column "Цвет": map it with --map, or pass --ignore-unknown to skip it/);
    const missing = await runTask("import", [`${dir.path}/nope.csv`], { kvPath });
    assert.equal(missing.code, 2);
    assert.match(missing.err, /Cannot read/);
  });

  await t.step("a dry run reports what would happen and writes nothing", async () => {
    const r = await runTask("import", [good, "--dry-run"], { kvPath });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Dry run \(nothing written\) 2 rows of good.csv: 2 created, 0 updated/);
    await withKv(kvPath, async (kv) => assert.equal(await countList(kv, "default", "all"), 0));
  });

  await t.step("every row in: exit 0; a second run: all unchanged", async () => {
    const r = await runTask("import", [good], { kvPath });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Imported 2 rows of good.csv: 2 created, 0 updated, 0 unchanged, 0 rejected, 0 skipped/);
    const again = await runTask("import", [good], { kvPath });
    assert.match(again.out, /0 created, 0 updated, 2 unchanged/);
  });

  await t.step("a rejected row: exit 1, named in the text and in the JSON report", async () => {
    const report = `${dir.path}/report.json`;
    const r = await runTask("import", [bad, "--report", report], { kvPath });
    assert.equal(r.code, 1, r.err);
    assert.match(r.out, /line 2: birth_day: Invalid birth_day "31": 1987-02 has no day 31/);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(report)), {
      created: 1,
      updated: 0,
      unchanged: 0,
      rejected: 1,
      skipped: 0,
      rejects: [{ line: 2, field: "birth_day", info: 'Invalid birth_day "31": 1987-02 has no day 31' }],
    });
    await withKv(kvPath, async (kv) => {
      const runs = await listImports(createStore(kv), "default", { limit: 1 });
      assert.equal(runs[0]?.file, "bad.csv");
      assert.equal(runs[0]?.actor, "import:bad.csv");
      assert.deepEqual(runs[0]?.rejects.map((x) => x.line), [2]);
    });
  });
});

Deno.test("deno task import --preset shopify and woocommerce read the shops' real exports", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  const shopify = await runTask("import", [await fixture("shopify_customers_export.csv"), "--preset", "shopify"], {
    kvPath,
  });
  assert.equal(shopify.code, 0, shopify.out + shopify.err);
  assert.match(shopify.out, /3 created/);
  await withKv(kvPath, async (kv) => {
    const anna = await customerBy(kv, "default", "external_id", "6917384472601");
    assert.equal(anna?.fname, "Анна");
    assert.equal(anna?.phone, "79123456780");
    assert.equal(anna?.send_email, true);
    assert.equal(anna?.send_sms, false);
    assert.equal(anna?.accumulated_sales, 288050);
    const dmitry = await customerBy(kv, "default", "external_id", "6917384505369");
    assert.equal(dmitry?.email, "D.Kuznetsov@gmail.com");
    assert.equal(dmitry?.custom_information, "Оптовый покупатель, счёт по e-mail");
  });
  // The WooCommerce export of the same shop: matched by phone and email, so it merges instead of doubling.
  const woo = await runTask("import", [await fixture("woocommerce_customers_export.csv"), "--preset", "woocommerce"], {
    kvPath,
  });
  assert.equal(woo.code, 0, woo.out + woo.err);
  assert.match(woo.out, /1 created, 2 updated/);
  await withKv(kvPath, async (kv) => {
    assert.equal(await countList(kv, "default", "all"), 4);
    const anna = await customerBy(kv, "default", "email", "anna.smirnova@yandex.ru");
    assert.equal(anna?.external_id, "6917384472601");
    assert.equal(anna?.accumulated_sales, 864150, "Total Spend of the later export");
    assert.equal(anna?.register_date, Date.UTC(2023, 10, 2, 10, 15, 40));
    const olga = await customerBy(kv, "default", "email", "popova.olga@yandex.ru");
    assert.deepEqual([olga?.fname, olga?.lname], ["Ольга", "Попова"]);
  });
});

Deno.test("a killed import re-run to completion leaves exactly the expected data", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await withKv(kvPath, async (kv) => {
    await saveDirectoryEntry(createStore(kv), { companyId: "default", name: "test", userId: 0 }, {
      kind: "bonus_programs",
      name: "Main",
    });
  });
  const n = 3000;
  const lines = ["external_id,phone,email,card_uid,bonus"];
  for (let i = 1; i <= n; i++) {
    lines.push(`e${i},7901${String(i).padStart(7, "0")},u${i}@example.com,${String(i).padStart(8, "0")},"${i},5"`);
  }
  const file = `${dir.path}/big.csv`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  // The task's own process (not `deno task`, whose child would live on after a kill).
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/import.ts", file, "--batch-size", "100"],
    cwd: ROOT,
    env: { KV_PATH: kvPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Killed once some rows are in and before the end.
  const probe = await Deno.openKv(kvPath);
  try {
    for (let i = 0; i < 2400; i++) {
      const count = await countList(probe, "default", "all");
      if (count >= 250) break; // inside the third batch of 100
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await child.status;
    const partial = await countList(probe, "default", "all");
    assert.ok(partial > 0 && partial < n, `killed part-way (${partial} of ${n} in)`);
  } finally {
    probe.close();
  }
  const rerun = await runTask("import", [file], { kvPath });
  assert.equal(rerun.code, 0, rerun.out + rerun.err);
  // Resumed from the checkpoint of the killed run: the report covers the whole file, every row once.
  assert.match(rerun.err, /import: resuming after line \d+, where an interrupted run of this file stopped/);
  const counts = /Imported (\d+) rows of big.csv: (\d+) created, (\d+) updated, (\d+) unchanged, 0 rejected/.exec(
    rerun.out,
  );
  assert.ok(counts, rerun.out);
  assert.equal(Number(counts[1]), n);
  assert.equal(Number(counts[2]) + Number(counts[3]) + Number(counts[4]), n, rerun.out);
  await withKv(kvPath, async (kv) => {
    assert.equal(await countList(kv, "default", "all"), n);
    for (const i of [1, 777, 1500, n]) {
      const c = await customerBy(kv, "default", "external_id", `e${i}`);
      assert.equal(c?.phone, `7901${String(i).padStart(7, "0")}`);
      const card = await findCard(kv, "default", { uid: String(i).padStart(8, "0") });
      assert.equal(card?.customer_id, c?.id);
      assert.equal((await getBalanceRecord(kv, "default", { customerId: c!.id, bonusId: 1 }))?.balance, i * 100 + 50);
    }
    const findings: unknown[] = [];
    await verifyStore(kv, {
      onFinding: (f) => findings.push(f),
    });
    assert.deepEqual(findings, [], "indexes, counters and sequences consistent");
  });
  // A finished run leaves no checkpoint: the next run compares every row.
  const third = await runTask("import", [file], { kvPath });
  assert.doesNotMatch(third.err, /resuming/);
  assert.match(third.out, new RegExp(`0 created, 0 updated, ${n} unchanged`));
});

Deno.test("remote mode: --url --apikey imports through POST /api/import of a real server", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  const key = await withKv(kvPath, async (kv) => {
    const store = createStore(kv);
    await saveDirectoryEntry(store, { companyId: "shop", name: "test", userId: 0 }, {
      kind: "bonus_programs",
      name: "Main",
    });
    return (await createApiKey(kv, { companyId: "shop", userId: 5, access: "write", now: Date.now() })).key;
  });
  await using server = startServer({ kvPath });
  await server.ready(key);
  const file = `${dir.path}/remote.ndjson`;
  await Deno.writeTextFile(
    file,
    [
      { external_id: "r1", fname: "Анна", phone: "+79005550001", card_uid: "0042", bonus: "12,5" },
      { external_id: "r2", phone: "+79005550001" },
      {},
      { external_id: "r3", birth_day: "30", birth_month: "2" },
      { external_id: "r1", fname: "Другая" },
    ].map((o) => JSON.stringify(o)).join("\n") + "\n",
  );
  const args = [file, "--url", server.base, "--apikey", key, "--batch-size", "2"];
  const dry = await runTask("import", [...args, "--dry-run"], { kvPath: ":memory:" });
  assert.equal(dry.code, 1, dry.out + dry.err);
  const r = await runTask("import", [...args, "--report", `${dir.path}/r.json`], { kvPath: ":memory:" });
  assert.equal(r.code, 1, r.out + r.err);
  const report = JSON.parse(await Deno.readTextFile(`${dir.path}/r.json`));
  assert.deepEqual(report, {
    created: 1,
    updated: 0,
    unchanged: 0,
    rejected: 3,
    skipped: 1,
    rejects: [
      { line: 2, field: "phone", info: 'phone "79005550001" is already in line 1 of this file' },
      { line: 4, field: "birth_day", info: 'Invalid birth_day "30": month 2 has no day 30' },
      { line: 5, field: "external_id", info: 'external_id "r1" is already in line 1 of this file' },
    ],
  });
  const again = await runTask("import", args, { kvPath: ":memory:" });
  assert.match(again.out, /0 created, 0 updated, 1 unchanged, 3 rejected, 1 skipped/);
  // A local import into the same store file while the service runs on it: the service sees the row at once.
  const local = `${dir.path}/local.csv`;
  await Deno.writeTextFile(local, "external_id,Имя\nl1,Локальный\n");
  const direct = await runTask("import", [local, "--company", "shop"], { kvPath });
  assert.equal(direct.code, 0, direct.out + direct.err);
  const seen = await fetch(`${server.base}/api/customer?external_id=l1&apikey=${key}`);
  assert.equal((await seen.json()).customers[0]?.fname, "Локальный");
  await server.stop();
  await withKv(kvPath, async (kv) => {
    const c = await customerBy(kv, "shop", "external_id", "r1");
    assert.equal(c?.fname, "Анна");
    assert.equal((await findCard(kv, "shop", { uid: "0042" }))?.customer_id, c?.id);
    assert.equal((await getBalanceRecord(kv, "shop", { customerId: c!.id, bonusId: 1 }))?.balance, 1250);
    assert.equal(await countList(kv, "shop", "all"), 2);
    const runs = await listImports(createStore(kv), "shop");
    assert.deepEqual(
      runs.map((run) => run.actor.split(":")[0]),
      ["import", "key", "key"],
      "the task's run, then the two remote imports, each one run of all its batches",
    );
    assert.deepEqual([runs[2]!.created, runs[2]!.rejected, runs[2]!.skipped], [1, 3, 1]);
  });
  void DEFAULT_CONFIG;
  void snapshot;
});
