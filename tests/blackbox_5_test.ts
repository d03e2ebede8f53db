/**
 * Black-box review of import re-runs (issue 10): a finished `deno task import` run that nobody else raced leaves a
 * record, and a repeat of the same file with the same options, the same day, with the company's change counter
 * unchanged, reports every row unchanged without reading. The rule these tests hold it to: a repeat reports exactly
 * what a full re-run (`--no-resume`) would report at that moment, and leaves the store as a full re-run would.
 * Each of the nine defects found is one test named "fixed: ..." (each failed on the code it was written against and
 * was restated for the fix where the fix changed what a run does); the attacks that held are tests too, so they
 * guard later changes.
 */
import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import { getBalanceRecord } from "../storage/bonuses.ts";
import { countList } from "../storage/customers.ts";
import { keys } from "../storage/keys.ts";
import { readChangeCount } from "../storage/imports.ts";
import { rawInsertCards, rawInsertLots } from "../storage/seed.ts";
import { expireDueLots } from "../storage/expiry.ts";
import { createStore, type Store } from "../storage/store.ts";
import { verifyStore } from "../storage/verify.ts";
import { Write } from "../storage/commit.ts";
import type { Card } from "../domain/card.ts";
import { changeBonus, type ImportReport, importRows, saveCustomer, saveDirectoryEntry } from "../usecases/mod.ts";
import { checkUpload, importJob, startImport, type UploadOptions } from "../usecases/admin_import.ts";
import { csvRowBatches, ROOT, runTask, startServer, tempDir } from "./kit.ts";

const TILL = { companyId: "default", name: "key:till", userId: 0 };

/** A store file with the default company's one bonus program and one customer x1 (phone 79510000001). */
async function seeded(kvPath: string): Promise<void> {
  const kv = await Deno.openKv(kvPath);
  try {
    const store = createStore(kv);
    await saveDirectoryEntry(store, TILL, { kind: "bonus_programs", name: "Main" });
    await saveCustomer(store, TILL, {
      create: true,
      patch: { external_id: "x1", fname: "Ann", phone: "79510000001" },
      timeZone: "UTC",
    });
  } finally {
    kv.close();
  }
}

async function withKv<T>(kvPath: string, fn: (kv: Deno.Kv, store: Store) => Promise<T>): Promise<T> {
  const kv = await Deno.openKv(kvPath);
  try {
    return await fn(kv, createStore(kv));
  } finally {
    kv.close();
  }
}

interface Run {
  code: number;
  report: ImportReport;
  /** Whether the task said it took the record of a finished run (read no rows). */
  repeated: boolean;
  out: string;
  err: string;
}

let reports = 0;

/** `deno task import FILE ARGS --report R.json`, with the report read back. */
async function imp(kvPath: string, args: string[], env?: Record<string, string>): Promise<Run> {
  const report = `${kvPath}.report${++reports}.json`;
  const r = await runTask("import", [...args, "--report", report], { kvPath, env });
  let parsed: ImportReport;
  try {
    parsed = JSON.parse(await Deno.readTextFile(report));
  } catch {
    throw new Error(`no report (exit ${r.code}): ${r.out}${r.err}`);
  }
  return { code: r.code, report: parsed, repeated: /imported whole at/.test(r.err), out: r.out, err: r.err };
}

/** The exit status and report of a run, as compared between a repeat and a full re-run. */
function outcome(r: Run): { code: number; report: ImportReport } {
  return { code: r.code, report: r.report };
}

async function balanceOf(kvPath: string, externalId: string): Promise<number | null> {
  return await withKv(kvPath, async (kv) => {
    const id = (await kv.get<number>(keys.customerByExternalId("default", externalId))).value;
    if (id === null) return null;
    return (await getBalanceRecord(kv, "default", { customerId: id, bonusId: 1 }))?.balance ?? null;
  });
}

async function findings(kvPath: string): Promise<unknown[]> {
  return await withKv(kvPath, async (kv) => {
    const out: unknown[] = [];
    await verifyStore(kv, { onFinding: (f) => out.push(f) });
    return out;
  });
}

// ------------------------------------------------------------------------------------------------------------------
// Defects (these fail on the code they were written against)
// ------------------------------------------------------------------------------------------------------------------

Deno.test("fixed: an order-dependent file (a reject the store decided) leaves no record; the re-run takes the row", async () => {
  // Row 2 claims a phone the stored x1 holds (refused: two people); row 3 moves x1 to another phone. After the
  // first run the phone is free, so the store is not "the file applied": a full re-run creates x2.
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/order.csv`;
  await Deno.writeTextFile(file, "external_id,fname,phone\nx2,Bob,79510000001\nx1,Ann,79510000002\n");
  const first = await imp(kvPath, [file]);
  assert.equal(first.code, 1, first.out + first.err);
  assert.equal(first.report.rejected, 1);
  const repeat = await imp(kvPath, [file]);
  assert.equal(repeat.repeated, false);
  assert.equal(repeat.report.created, 1, repeat.out); // x2 goes in now, as a full re-run does
  assert.equal(repeat.code, 0);
});

Deno.test("fixed: a renamed or touched credits file is another file key: it is read and credits again, as a full run", async () => {
  // Credits (overwrite 0) are made idempotent by the file's name, size and mtime (fileKeyOf), the record by its
  // content hash: the same content under another name is "unchanged" for the repeat, a new grant for a full run.
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/credits.csv`;
  await Deno.writeTextFile(file, "customer_external_id,amount,overwrite\nx1,7,0\n");
  const first = await imp(kvPath, [file, "--type", "bonuses"]);
  assert.equal(first.report.updated, 1, first.out + first.err);
  assert.equal(await balanceOf(kvPath, "x1"), 700);
  const copy = `${dir.path}/credits_march.csv`;
  await Deno.copyFile(file, copy);
  const repeat = await imp(kvPath, [copy, "--type", "bonuses"]);
  assert.equal(repeat.repeated, false, `repeat said: ${repeat.out} ${repeat.err}`);
  assert.equal(repeat.report.updated, 1);
  assert.equal(await balanceOf(kvPath, "x1"), 1400);
});

Deno.test("fixed: a row after an overwrite of the same balance is refused naming the line, so a re-run changes nothing", async () => {
  // docs/import.md: `b1,100,1` then `b1,5,0` leaves 105. Run again in full, the overwrite sets 100 again and the
  // credit is replayed (not granted): 100, so a full re-run of a finished file changes the store; the repeat says
  // both rows unchanged and leaves 105.
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/mixed.csv`;
  await Deno.writeTextFile(file, "customer_external_id,amount,overwrite\nx1,100,1\nx1,5,0\n");
  const first = await imp(kvPath, [file, "--type", "bonuses"]);
  assert.equal(first.code, 1, first.out + first.err);
  assert.match(first.out, /line 3: customer_external_id: Cannot import balance: line 2 of this file sets/);
  assert.equal(await balanceOf(kvPath, "x1"), 10000);
  const full = await imp(kvPath, [file, "--type", "bonuses", "--no-resume"]);
  assert.equal(full.report.updated, 0, `full said: ${full.out}`);
  assert.equal(await balanceOf(kvPath, "x1"), 10000, "a re-run of the finished file changed the balance");
});

async function runAt(store: Store, text: string, checkpoint: string | undefined, timeZone = "UTC") {
  let repeated = false;
  const report = await importRows(store, { companyId: "acme", name: "import:f.csv", userId: 0 }, {
    type: "customers",
    settings: { defaultCountryCode: "7", timeZone },
    needsProgram: text.split("\n")[0]!.includes("bonus"),
    checkpoint,
    batches: csvRowBatches(text),
    onRepeat: () => repeated = true,
  });
  return { report, repeated };
}

Deno.test("fixed: a register_date later today is refused, and that run leaves no record: the re-run takes it", async () => {
  // "today" is in the record, but register_date is checked against the instant (domain/customer.ts): a row refused
  // at 10:00 for a register_date of 12:00 goes in on a full run at 13:00 the same day.
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 30, 10, 0, 0);
    const store = createStore(kv, { clock: () => now });
    const text = "external_id,fname,register_date\nr1,Ann,2026-11-30 12:00:00\nr2,Bob,2026-11-01 09:00:00\n";
    const first = await runAt(store, text, "customers:reg");
    assert.equal(first.report.rejected, 1, JSON.stringify(first.report));
    now = Date.UTC(2026, 10, 30, 13, 0, 0);
    const repeat = await runAt(store, text, "customers:reg");
    assert.equal(repeat.repeated, false);
    assert.equal(repeat.report.created, 1, JSON.stringify(repeat.report));
  } finally {
    kv.close();
  }
});

Deno.test("fixed: a record holds only until a compared balance's next lot instant (an expiry at the service's midnight)", async () => {
  // The service (TIME_ZONE Europe/Moscow) credits points expiring at the end of its day, 21:00 UTC; the task run
  // without that setting works in UTC. At 20:00 UTC `bonus` 50 matches the balance; at 22:00 UTC, the same UTC day,
  // the lot is gone and a full run sets 50 again, while the repeat reports the row unchanged.
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 30, 20, 0, 0);
    const store = createStore(kv, { clock: () => now });
    const actor = { companyId: "acme", name: "key:till", userId: 0 };
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    const c = await saveCustomer(store, actor, {
      create: true,
      patch: { external_id: "m1", fname: "Ann" },
      timeZone: "Europe/Moscow",
    });
    await changeBonus(store, actor, {
      customer: { id: c.customer.id },
      bonusId: 1,
      amount: 5000,
      overwrite: false,
      comment: null,
      orderId: null,
      expireDate: { year: 2026, month: 11, day: 30 },
      idempotencyKey: null,
      timeZone: "Europe/Moscow",
    });
    const text = "external_id,bonus\nm1,50\n";
    const first = await runAt(store, text, "customers:lot");
    assert.equal(first.report.unchanged, 1, JSON.stringify(first.report));
    now = Date.UTC(2026, 10, 30, 20, 30, 0);
    assert.equal((await runAt(store, text, "customers:lot")).repeated, true, "before the lot ends");
    now = Date.UTC(2026, 10, 30, 22, 0, 0);
    const repeat = await runAt(store, text, "customers:lot");
    assert.equal(repeat.repeated, false);
    assert.equal(repeat.report.updated, 1, JSON.stringify(repeat.report));
  } finally {
    kv.close();
  }
});

/** Starts `tasks/import.ts FILE ARGS`, waits until `atLeast` customers are in, stops it (SIGTERM: exit 143). */
async function stopMidway(
  kvPath: string,
  args: string[],
  atLeast: number,
  signal: Deno.Signal = "SIGTERM",
): Promise<void> {
  const probe = await Deno.openKv(kvPath);
  try {
    // `atLeast` more customers than the store held before the task started.
    const target = await countList(probe, "default", "all") + atLeast;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/import.ts", ...args, "--batch-size", "100"],
      cwd: ROOT,
      env: { KV_PATH: kvPath },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    for (let i = 0; i < 2400 && await countList(probe, "default", "all") < target; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill(signal);
    const stopped = await child.output();
    if (signal === "SIGTERM") assert.equal(stopped.code, 143, new TextDecoder().decode(stopped.stderr));
    else assert.equal(stopped.signal, signal);
  } finally {
    probe.close();
  }
}

Deno.test("fixed: Ctrl-C a run with the wrong --bonus-id, re-run with the right one: it resumes, the first part stays wrong", async () => {
  // The checkpoint of an interrupted run is keyed by content and type only; the finished-run record checks the
  // options, the checkpoint does not: the corrected run skips the rows the wrong one did and reports the whole file.
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  await withKv(kvPath, async (_kv, store) => {
    await saveDirectoryEntry(store, TILL, { kind: "bonus_programs", name: "Second" });
  });
  const file = `${dir.path}/points.csv`;
  const lines = ["external_id,bonus"];
  for (let i = 1; i <= 4000; i++) lines.push(`p${i},${1 + (i % 9)}`);
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  await stopMidway(kvPath, [file, "--bonus-id", "1"], 300);
  const right = await imp(kvPath, [file, "--bonus-id", "2"]);
  assert.equal(right.code, 0, right.out + right.err);
  const missing = await withKv(kvPath, async (kv) => {
    let n = 0;
    for (let i = 1; i <= 4000; i++) {
      const id = (await kv.get<number>(keys.customerByExternalId("default", `p${i}`))).value!;
      if ((await getBalanceRecord(kv, "default", { customerId: id, bonusId: 2 }))?.balance !== 100 * (1 + (i % 9))) n++;
    }
    return n;
  });
  assert.equal(missing, 0, `${missing} customers lack their program 2 balance; the re-run said: ${right.err}`);
});

Deno.test("fixed: the expiry job's write at the mutation edge is refused whole: its points-stat sums are not budgeted", async () => {
  // expireCompany packs balances while `mutations + size <= MAX_MUTATIONS - OWN_MUTATIONS` (998) counting ledger
  // entries, records and audit entries, but the write also carries the shared points sums (total and hour) and now
  // the change counter: 4 balances of 200 due lots and one of 188 make 1001 mutations, and the run throws
  // StoreLimitError (before the counter the edge was at 189-190 lots: it moved, it was not fixed).
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    const actor = { companyId: "e", name: "expiry", userId: 0 };
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    const now = Date.UTC(2026, 10, 30, 12);
    const balances = [];
    for (const [i, lots] of [200, 200, 200, 200, 188].entries()) {
      const c = await saveCustomer(store, actor, { create: true, patch: { external_id: `e${i}` }, timeZone: "UTC" });
      balances.push({
        customerId: c.customer.id,
        bonusId: 1,
        lots: Array.from({ length: lots }, (_, j) => ({
          amount: 1,
          available_at: now - 10 * 86_400_000 - j * 1000,
          expires_at: now - 86_400_000 - j * 1000,
        })),
      });
    }
    await rawInsertLots(kv, "e", { balances, now, userId: 0 });
    const summary = await expireDueLots(store, actor, { company: "e", now });
    assert.equal(summary.lots, 988);
  } finally {
    kv.close();
  }
});

Deno.test("fixed: an import reads group names itself, not the process's 5 s cache: a rename just before is seen", async () => {
  // getEntriesCached serves group names for 5 s, and a rename by another process (a CLI task, another worker) shows
  // only after that. A back-office run in that window compares a row's group_name with the old name, finds it
  // unchanged, and is alone: its record then answers "unchanged" for the rest of the day, though a full run (with
  // the cache expired) puts the row's group back.
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 30, 9, 0, 0);
    const server = createStore(kv, { clock: () => now });
    const other = createStore(kv, { clock: () => now });
    const actor = { companyId: "acme", name: "admin:boss", userId: 1 };
    await saveDirectoryEntry(server, actor, { kind: "groups", name: "VIP" });
    const text = "external_id,fname,group_name\ng1,Ann,VIP\n";
    assert.equal((await runAt(server, text, undefined)).report.created, 1);
    assert.equal((await runAt(server, text, undefined)).report.unchanged, 1); // the server now caches group 1
    await saveDirectoryEntry(other, actor, { kind: "groups", id: 1, name: "Gold" });
    now += 1000;
    const fresh = await runAt(server, text, "customers:groups");
    assert.equal(fresh.report.updated, 1, JSON.stringify(fresh.report)); // within the cache's 5 s: the new name
    now += 60_000;
    const repeat = await runAt(server, text, "customers:groups");
    const full = await runAt(server, text, undefined);
    assert.equal(full.report.unchanged, 1, JSON.stringify(full.report));
    assert.deepEqual(repeat.report, full.report, `repeated: ${repeat.repeated}`);
  } finally {
    kv.close();
  }
});

Deno.test("fixed: --encoding utf-8 takes the record of a detected run that switched to windows-1251 after 64 KiB", async () => {
  // The fingerprint holds the encoding guessed from the first 64 KiB ("utf-8" for pure ASCII), not the one the
  // detected run read the file in: the Cyrillic after 64 KiB was read as windows-1251. A run with an explicit
  // --encoding utf-8 then has the same fingerprint and repeats "8001 unchanged, exit 0", where a full run stops at
  // the first non-UTF-8 byte with a file-level reject (exit 1).
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/late.csv`;
  const lines = ["external_id,fname"];
  for (let i = 1; i <= 8000; i++) lines.push(`e${i},Name${i}`);
  const ascii = new TextEncoder().encode(lines.join("\n") + "\ne9999,");
  const ivan = new Uint8Array([0xc8, 0xe2, 0xe0, 0xed, 0x0a]); // "Иван\n" in windows-1251
  const bytes = new Uint8Array(ascii.length + ivan.length);
  bytes.set(ascii);
  bytes.set(ivan, ascii.length);
  assert.ok(ascii.length > 65536);
  await Deno.writeFile(file, bytes);
  const first = await imp(kvPath, [file]);
  assert.equal(first.code, 0, first.out + first.err);
  const explicit = await imp(kvPath, [file, "--encoding", "utf-8"]);
  const full = await imp(kvPath, [file, "--encoding", "utf-8", "--no-resume"]);
  assert.equal(full.code, 1, full.out);
  assert.deepEqual(outcome(explicit), outcome(full), `explicit said: ${explicit.out} ${explicit.err}`);
});

// ------------------------------------------------------------------------------------------------------------------
// Attacks that held
// ------------------------------------------------------------------------------------------------------------------

/** A customers file with sprinkled rejects: every 9th row an impossible date, every 13th a duplicate phone. */
/** `other` gives other customers (external ids, phones, emails, cards of their own). */
function customersFile(n: number, tag = "Row", every = 1, other = false): string {
  const [x, p, card] = other ? ["k", "7953", "78"] : ["c", "7952", "77"];
  const lines = ["external_id,fname,phone,email,card_uid,bonus,birth_day,birth_month,birth_year"];
  for (let i = 1; i <= n; i++) {
    const day = i % (9 * every) === 0 ? "31" : "1";
    const phone = i % (13 * every) === 0 ? i - 1 : i;
    lines.push(
      `${x}${i},${tag}${i},${p}${String(phone).padStart(7, "0")},${x}${i}@example.com,${card}${i},${
        i % 5
      },${day},2,1990`,
    );
  }
  return lines.join("\n") + "\n";
}

Deno.test("held: repeat vs --no-resume: the same exit status and --report JSON (rejects, skipped) in every format", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const csv = `${dir.path}/many.csv`;
  await Deno.writeTextFile(csv, customersFile(400).replace("\nc5,", "\n\nc5,"));
  const first = await imp(kvPath, [csv]);
  assert.equal(first.code, 1);
  assert.ok(first.report.rejected > 50 && first.report.skipped === 1, JSON.stringify(first.report).slice(0, 300));
  const repeat = await imp(kvPath, [csv]);
  assert.ok(repeat.repeated, repeat.err);
  const full = await imp(kvPath, [csv, "--no-resume"]);
  assert.ok(!full.repeated);
  assert.deepEqual(outcome(repeat), outcome(full));
  assert.deepEqual(repeat.report, {
    ...first.report,
    created: 0,
    updated: 0,
    unchanged: first.report.created + first.report.updated + first.report.unchanged,
  });
  // NDJSON of other customers: the same.
  const nd = `${dir.path}/many.ndjson`;
  await Deno.writeTextFile(
    nd,
    Array.from({ length: 60 }, (_, i) => JSON.stringify({ external_id: `n${i}`, birth_day: i % 7 === 0 ? "32" : "2" }))
      .join("\n") + "\n",
  );
  await imp(kvPath, [nd]);
  const ndRepeat = await imp(kvPath, [nd]);
  assert.ok(ndRepeat.repeated);
  assert.deepEqual(outcome(ndRepeat), outcome(await imp(kvPath, [nd, "--no-resume"])));
  // A header and no rows: a repeat of nothing, exit 0.
  const header = `${dir.path}/header.csv`;
  await Deno.writeTextFile(header, "external_id,fname\n");
  await imp(kvPath, [header]);
  const empty = await imp(kvPath, [header]);
  assert.deepEqual(outcome(empty), outcome(await imp(kvPath, [header, "--no-resume"])));
  assert.equal(empty.code, 0);
  // Rejects too many for one value: no record, every run compares (and says the same).
  const bad = `${dir.path}/bad.csv`;
  const lines = ["external_id,birth_day,birth_month"];
  for (let i = 1; i <= 1500; i++) lines.push(`bad${i},31,2`);
  await Deno.writeTextFile(bad, lines.join("\n") + "\n");
  const b1 = await imp(kvPath, [bad]);
  assert.equal(b1.report.rejected, 1500);
  const b2 = await imp(kvPath, [bad]);
  assert.equal(b2.repeated, false);
  assert.deepEqual(outcome(b2), outcome(b1));
});

Deno.test("held: a change through the real server (API, remote import) makes the repeat read and put the file back", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const key = await withKv(
    kvPath,
    async (kv) => (await createApiKey(kv, { companyId: "default", userId: 5, access: "write", now: Date.now() })).key,
  );
  const file = `${dir.path}/base.csv`;
  await Deno.writeTextFile(file, customersFile(50));
  await using server = startServer({ kvPath });
  await server.ready(key);
  const first = await imp(kvPath, [file]);
  assert.equal((await imp(kvPath, [file])).repeated, true);
  // A till renames c3 through the API.
  const id = await withKv(
    kvPath,
    async (kv) => (await kv.get<number>(keys.customerByExternalId("default", "c3"))).value,
  );
  const res = await fetch(`${server.base}/api/customer/update?apikey=${key}&id=${id}&fname=Till`);
  assert.ok(res.ok, `update: ${res.status} ${await res.text()}`);
  const afterApi = await imp(kvPath, [file]);
  assert.equal(afterApi.repeated, false);
  assert.equal(afterApi.report.updated, 1, afterApi.out);
  assert.equal((await imp(kvPath, [file])).repeated, true);
  // A remote import through the bulk endpoint of the same server: the repeat reads again.
  const remoteFile = `${dir.path}/remote.csv`;
  await Deno.writeTextFile(remoteFile, "external_id,fname\nc4,Remote\n");
  const remote = await runTask("import", [remoteFile, "--url", server.base, "--apikey", key], { kvPath: ":memory:" });
  assert.equal(remote.code, 0, remote.out + remote.err);
  const afterRemote = await imp(kvPath, [file]);
  assert.equal(afterRemote.repeated, false);
  assert.equal(afterRemote.report.updated, 1);
  assert.deepEqual(afterRemote.report.rejects, first.report.rejects);
  await server.stop();
  assert.deepEqual(await findings(kvPath), []);
});

Deno.test("held: every option and setting that decides rows is part of the record (env, flags, map)", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  await withKv(kvPath, async (_kv, store) => {
    await saveDirectoryEntry(store, TILL, { kind: "bonus_programs", name: "Second" });
  });
  const file = `${dir.path}/opts.csv`;
  await Deno.writeTextFile(file, "external_id,fname,phone,Заметка\no1,Olga,9510001111,x\no2,Oleg,+79510002222,y\n");
  const map = `${dir.path}/map.json`;
  await Deno.writeTextFile(map, JSON.stringify({ "Заметка": "custom_information" }));
  const map2 = `${dir.path}/map2.json`;
  await Deno.writeTextFile(map2, JSON.stringify({ "Заметка": "" }));
  const base = [file, "--map", map];
  await imp(kvPath, base);
  assert.equal((await imp(kvPath, base)).repeated, true);
  const variants: { args: string[]; env?: Record<string, string> }[] = [
    { args: base, env: { DEFAULT_COUNTRY_CODE: "1" } },
    { args: base, env: { TIME_ZONE: "Asia/Tokyo" } },
    { args: [file, "--map", map2] },
    { args: [file, "--ignore-unknown"] },
    { args: [...base, "--match", "phone,external_id"] },
    { args: [...base, "--bonus-id", "2"] },
    { args: [...base, "--delimiter", ","] },
  ];
  for (const v of variants) {
    // Each variant is compared row by row (never the record of the base run), and the base run's record is
    // taken again only when the company did not change in between.
    const r = await imp(kvPath, v.args, v.env);
    assert.equal(r.repeated, false, `${v.args.join(" ")} ${JSON.stringify(v.env ?? {})}: ${r.err}`);
  }
  // The dry run reads too, and reports what the full run reports.
  await imp(kvPath, base);
  const dry = await imp(kvPath, [...base, "--dry-run"]);
  assert.equal(dry.repeated, false);
  assert.deepEqual(dry.report, (await imp(kvPath, [...base, "--no-resume"])).report);
});

Deno.test("held: the same customers file under another name is a repeat that matches a full run", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/a.csv`;
  await Deno.writeTextFile(file, customersFile(80));
  await imp(kvPath, [file]);
  const copy = `${dir.path}/b.txt`;
  await Deno.copyFile(file, copy);
  const repeat = await imp(kvPath, [copy]);
  assert.ok(repeat.repeated);
  assert.deepEqual(outcome(repeat), outcome(await imp(kvPath, [copy, "--no-resume"])));
});

Deno.test("held: SIGTERM or kill -9 mid-run, then re-runs: the resumed run leaves no record, the next full one does", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/big.csv`;
  // Few rejects, so that the record of a finished run fits one value.
  await Deno.writeTextFile(file, customersFile(5000, "Row", 20));
  await stopMidway(kvPath, [file], 300);
  const resumed = await imp(kvPath, [file]);
  assert.match(resumed.err, /resuming after line/);
  assert.equal(resumed.repeated, false);
  const next = await imp(kvPath, [file]);
  assert.equal(next.repeated, false, "a resumed run must not leave a record");
  assert.equal(next.report.created + next.report.updated, 0);
  const repeat = await imp(kvPath, [file]);
  assert.equal(repeat.repeated, true);
  assert.deepEqual(outcome(repeat), outcome(next));
  assert.deepEqual(outcome(repeat), outcome(await imp(kvPath, [file, "--no-resume"])));
  assert.deepEqual(await findings(kvPath), []);
  // kill -9 of the task itself mid-run (a batch's writes may be in without its checkpoint): the same.
  const other = `${dir.path}/big2.csv`;
  await Deno.writeTextFile(other, customersFile(5000, "Other", 20, true));
  await stopMidway(kvPath, [other], 300, "SIGKILL");
  const after = await imp(kvPath, [other]);
  assert.match(after.err, /resuming after line/);
  assert.equal(after.code, 1);
  const again = await imp(kvPath, [other]);
  assert.equal(again.repeated, false);
  assert.equal(again.report.created + again.report.updated, 0, again.out);
  assert.equal((await imp(kvPath, [other])).repeated, true);
  assert.deepEqual(await findings(kvPath), []);
});

Deno.test("held: two imports at once changing the same customers: afterwards a repeat never hides the other's change", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const a = `${dir.path}/a.csv`;
  const b = `${dir.path}/b.csv`;
  await Deno.writeTextFile(a, customersFile(1500, "A"));
  await Deno.writeTextFile(b, customersFile(1500, "B"));
  await Promise.all([imp(kvPath, [a, "--batch-size", "50"]), imp(kvPath, [b, "--batch-size", "50"])]);
  // Each file run again, then checked in full: the store must hold it applied (a full run changes nothing).
  for (const f of [a, b, a]) {
    await imp(kvPath, [f]);
    const full = await imp(kvPath, [f, "--no-resume"]);
    assert.equal(full.report.created + full.report.updated, 0, `${f}: ${full.out}`);
  }
  // The same file twice at once (they share one checkpoint key): whatever record is left does not lie.
  const c = `${dir.path}/c.csv`;
  await Deno.writeTextFile(c, customersFile(1500, "C"));
  await Promise.all([imp(kvPath, [c, "--batch-size", "50"]), imp(kvPath, [c, "--batch-size", "70"])]);
  const next = await imp(kvPath, [c]);
  const full = await imp(kvPath, [c, "--no-resume"]);
  assert.equal(full.report.created + full.report.updated, 0, full.out);
  assert.deepEqual(outcome(next).report.rejects, full.report.rejects);
  assert.deepEqual(await findings(kvPath), []);
});

Deno.test("held: the change counter moves with directory edits and balance changes, not with record keeping", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    const actor = { companyId: "acme", name: "key:till", userId: 0 };
    const text = "external_id,fname,bonus\nq1,Ann,5\n";
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    await runAt(store, text, "customers:k");
    assert.equal((await runAt(store, text, "customers:k")).repeated, true);
    const before = await readChangeCount(kv, "acme");
    await saveDirectoryEntry(store, actor, { kind: "groups", name: "VIP" });
    assert.equal(await readChangeCount(kv, "acme"), before + 1n);
    assert.equal((await runAt(store, text, "customers:k")).repeated, false);
    assert.equal((await runAt(store, text, "customers:k")).repeated, true);
    const id = (await kv.get<number>(keys.customerByExternalId("acme", "q1"))).value!;
    await changeBonus(store, actor, {
      customer: { id },
      bonusId: 1,
      amount: 100,
      overwrite: false,
      comment: null,
      orderId: null,
      idempotencyKey: null,
      timeZone: "UTC",
    });
    const back = await runAt(store, text, "customers:k");
    assert.equal(back.repeated, false);
    assert.equal(back.report.updated, 1);
    // Another company's writes do not count for this one.
    await saveDirectoryEntry(store, { ...actor, companyId: "other" }, { kind: "groups", name: "VIP" });
    assert.equal((await runAt(store, text, "customers:k")).repeated, true);
  } finally {
    kv.close();
  }
});

Deno.test("held: write limits with the counter: 199 fully indexed seeded cards pack exactly 1000 mutations", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    const cards = Array.from({ length: 199 }, (_, i) => ({
      id: i + 1,
      uid: `U${i + 1}`,
      barcode: `B${i + 1}`,
      external_id: `E${i + 1}`,
      customer_id: i + 1,
      uid_ean13: null,
      status: "ACTIVE",
      type_id: null,
      medium: null,
      block_date: null,
      activate_date: now,
      created_date: now,
      created_by: 0,
      last_update_date: now,
      last_update_by: 0,
    })) as unknown as Card[];
    await rawInsertCards(kv, "a", cards);
    assert.equal(await readChangeCount(kv, "a"), 1n); // one operation
    // The commit path's own mutations come on top of the caller's: 998 unique-index sets (+ epoch + counter) or
    // 999 plain ones (+ counter) go in; 1000 plain ones are refused whole, naming the count.
    const fits = new Write(createStore(kv));
    for (let i = 0; i < 998; i++) fits.set(["company", "b", "customers_by_phone", `p${i}`], i);
    assert.ok(await fits.commit());
    const plain = new Write(createStore(kv));
    for (let i = 0; i < 999; i++) plain.set(["company", "c", "scratch", i], i);
    assert.ok(await plain.commit());
    const over = new Write(createStore(kv));
    for (let i = 0; i < 1000; i++) over.set(["company", "d", "scratch", i], i);
    await assert.rejects(() => over.commit(), /1001 mutations, at most 1000/);
    assert.equal(await readChangeCount(kv, "d"), 0n);
  } finally {
    kv.close();
  }
});

Deno.test("held: the back office import: a second upload of the same bytes is a repeat that matches a full run", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    const actor = { companyId: "acme", name: "admin:boss", userId: 1 };
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    const bytes = new TextEncoder().encode(
      customersFile(120) + "", /* a credits file would be the same: its credit key is the content here */
    );
    const options: UploadOptions = {
      type: "customers",
      format: null,
      encoding: null,
      delimiter: null,
      preset: null,
      match: ["external_id", "phone", "email"],
      bonusId: null,
      ignoreUnknown: false,
    };
    const settings = { defaultCountryCode: "7", timeZone: "UTC" };
    const upload = async () => {
      const checked = await checkUpload(store, actor, { name: "shop.csv", bytes, options, settings });
      const { done, job } = await startImport(store, actor, {
        upload: checked.upload.id,
        rows: checked.rows,
        settings,
      });
      await done;
      return (await importJob(store, actor, job.id))!;
    };
    const first = await upload();
    assert.equal(first.state, "done");
    const counter = await readChangeCount(kv, "acme");
    const hash = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const record = await kv.get<{ finished?: boolean }>(["company", "acme", "import_checkpoints", `customers:${hash}`]);
    assert.equal(record.value?.finished, true, "the first back-office run left its record");
    const second = await upload();
    assert.equal(await readChangeCount(kv, "acme"), counter);
    const full = await importRows(store, actor, {
      type: "customers",
      match: options.match,
      bonusId: null,
      settings,
      needsProgram: true,
      batches: csvRowBatches(customersFile(120)),
    });
    assert.deepEqual(second.report, { ...full, rejects: full.rejects.slice(0, 100) });
    assert.equal(second.rows, first.rows);
    // Credits by the back office: the repeat grants nothing, as a full run (the credit key is the content).
    const credits = new TextEncoder().encode("customer_external_id,amount,overwrite\nc1,3,0\n");
    const creditOptions: UploadOptions = { ...options, type: "bonuses" };
    const credit = async () => {
      const checked = await checkUpload(store, actor, {
        name: "c.csv",
        bytes: credits,
        options: creditOptions,
        settings,
      });
      const started = await startImport(store, actor, { upload: checked.upload.id, rows: 1, settings });
      await started.done;
    };
    const id = (await kv.get<number>(keys.customerByExternalId("acme", "c1"))).value!;
    const balance = async () => (await getBalanceRecord(kv, "acme", { customerId: id, bonusId: 1 }))?.balance;
    const before = await balance();
    await credit();
    await credit();
    assert.equal(await balance(), before! + 300);
  } finally {
    kv.close();
  }
});

Deno.test("held: deno task verify is clean after imports, repeats, API-style writes and an expiry run", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  await seeded(kvPath);
  const file = `${dir.path}/v.csv`;
  await Deno.writeTextFile(file, customersFile(300));
  await imp(kvPath, [file]);
  await imp(kvPath, [file]);
  await withKv(kvPath, async (kv, store) => {
    const id = (await kv.get<number>(keys.customerByExternalId("default", "c2"))).value!;
    await saveCustomer(store, TILL, { id, create: false, patch: { fname: "Changed" }, timeZone: "UTC" });
  });
  const expire = await runTask("expire", [], { kvPath });
  assert.equal(expire.code, 0, expire.out + expire.err);
  const back = await imp(kvPath, [file]);
  assert.equal(back.repeated, false);
  assert.equal(back.report.updated, 1);
  assert.equal((await imp(kvPath, [file])).repeated, true);
  const verify = await runTask("verify", [], { kvPath });
  assert.equal(verify.code, 0, verify.out + verify.err);
});
