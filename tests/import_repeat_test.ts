/**
 * A repeat of a finished import: with the same file, options and the company unchanged since, the run reports every
 * row unchanged (and the same rejects) without reading a batch; any change to the company since (or during the first
 * run, by anyone else) makes it read and compare every row again. The company's change counter counts every commit
 * of the commit path.
 */
import assert from "node:assert/strict";
import { Write } from "../storage/commit.ts";
import { readChangeCount } from "../storage/imports.ts";
import { claimKeys, keys } from "../storage/keys.ts";
import { createStore, type Store } from "../storage/store.ts";
import { verifyStore } from "../storage/verify.ts";
import { type ImportReport, importRows, saveCustomer, saveDirectoryEntry } from "../usecases/mod.ts";
import { csvRowBatches, runTask, tempDir } from "./kit.ts";

const SETTINGS = { defaultCountryCode: "7", timeZone: "UTC" };
const actor = { companyId: "acme", name: "import:repeat.csv", userId: 0 };
const api = { companyId: "acme", name: "key:till", userId: 0 };
const KEY = "customers:test-file-hash";

function fileText(n: number, options: { dupes?: boolean } = {}): string {
  const lines = ["external_id,fname,phone,email,card_uid,bonus,birth_day,birth_month,birth_year"];
  for (let i = 1; i <= n; i++) {
    // Every 25th row names an impossible date; every 40th repeats the phone of the row before it.
    const day = i % 25 === 0 ? "31" : "1";
    const phone = i % 40 === 0 && options.dupes !== false ? i - 1 : i;
    lines.push(
      `x${i},Row${i},7951${String(phone).padStart(7, "0")},r${i}@example.com,${88000 + i},${i % 7},${day},2,1990`,
    );
  }
  return lines.join("\n") + "\n";
}

interface RunOptions {
  checkpoint?: string;
  fingerprint?: string;
  match?: ("external_id" | "phone" | "email")[];
  onBatch?: () => Promise<void>;
}

async function run(store: Store, text: string, options: RunOptions = {}) {
  let batchesRead = 0;
  let repeated = false;
  const report = await importRows(store, actor, {
    type: "customers",
    settings: SETTINGS,
    needsProgram: true,
    checkpoint: options.checkpoint,
    fingerprint: options.fingerprint,
    match: options.match,
    batches: csvRowBatches(text, () => batchesRead++),
    onBatch: options.onBatch,
    onRepeat: () => repeated = true,
  });
  return { report, batchesRead, repeated };
}

/** What a full re-run reports: every row that went in is unchanged, the rejects are the same. */
function asRepeat(first: ImportReport): ImportReport {
  return {
    created: 0,
    updated: 0,
    unchanged: first.created + first.updated + first.unchanged,
    rejected: first.rejected,
    skipped: first.skipped,
    rejects: first.rejects,
  };
}

async function withStore(fn: (store: Store, kv: Deno.Kv) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    await fn(store, kv);
  } finally {
    kv.close();
  }
}

Deno.test("a repeat with nothing changed reads no batch and reports what a full re-run reports", async () => {
  await withStore(async (store) => {
    const text = fileText(600);
    const first = await run(store, text, { checkpoint: KEY });
    assert.equal(first.repeated, false);
    assert.ok(first.report.created > 500 && first.report.rejected > 20, JSON.stringify(first.report));
    const repeat = await run(store, text, { checkpoint: KEY });
    assert.equal(repeat.repeated, true);
    assert.equal(repeat.batchesRead, 0);
    // The same as a full comparison of every row (no checkpoint), which reads them all.
    const full = await run(store, text);
    assert.ok(full.batchesRead > 0);
    assert.deepEqual(full.report, asRepeat(first.report));
    assert.deepEqual(repeat.report, full.report);
  });
});

Deno.test("a change to the company after the import makes the repeat compare every row (and put the file back)", async () => {
  await withStore(async (store, kv) => {
    const text = fileText(300);
    await run(store, text, { checkpoint: KEY });
    const id = (await kv.get<number>(keys.customerByExternalId("acme", "x7"))).value!;
    await saveCustomer(store, api, { id, create: false, patch: { fname: "Changed" }, timeZone: "UTC" });
    const repeat = await run(store, text, { checkpoint: KEY });
    assert.equal(repeat.repeated, false);
    assert.ok(repeat.batchesRead > 0);
    assert.equal(repeat.report.updated, 1);
    assert.equal((await kv.get<{ fname: string }>(keys.customer("acme", id))).value?.fname, "Row7");
    // That run was alone again: the next repeat needs no reads.
    const again = await run(store, text, { checkpoint: KEY });
    assert.equal(again.repeated, true);
    assert.equal(again.report.updated, 0);
  });
});

Deno.test("a change by someone else while the import runs leaves no record: the repeat compares every row", async () => {
  await withStore(async (store, kv) => {
    const text = fileText(300);
    let raced = false;
    await run(store, text, {
      checkpoint: KEY,
      onBatch: async () => {
        if (raced) return;
        raced = true;
        // A till's change to a customer the first batch wrote, between two batches of the import.
        const id = (await kv.get<number>(keys.customerByExternalId("acme", "x3"))).value!;
        await saveCustomer(store, api, { id, create: false, patch: { fname: "Till" }, timeZone: "UTC" });
      },
    });
    assert.ok(raced);
    const repeat = await run(store, text, { checkpoint: KEY });
    assert.equal(repeat.repeated, false);
    assert.equal(repeat.report.updated, 1, JSON.stringify(repeat.report));
  });
});

Deno.test("other options, or no checkpoint, do not take the record of a finished run", async () => {
  await withStore(async (store) => {
    // No phone twice: matched by email first, a repeated phone would be refused by the store (no record then).
    const text = fileText(200, { dupes: false });
    await run(store, text, { checkpoint: KEY, fingerprint: "a" });
    assert.equal((await run(store, text, { checkpoint: KEY, fingerprint: "b" })).repeated, false);
    // The run with "b" was alone: it left its own record, which "a" does not take either.
    assert.equal((await run(store, text, { checkpoint: KEY, fingerprint: "a" })).repeated, false);
    assert.equal(
      (await run(store, text, { checkpoint: KEY, fingerprint: "a", match: ["external_id", "email", "phone"] }))
        .repeated,
      false,
    );
    assert.equal(
      (await run(store, text, { checkpoint: KEY, fingerprint: "a", match: ["external_id", "email", "phone"] }))
        .repeated,
      true,
    );
    assert.equal(
      (await run(store, text, { fingerprint: "a", match: ["external_id", "email", "phone"] })).repeated,
      false,
    );
  });
});

Deno.test("the change counter: one per commit that changes a company, none for a failed one", async () => {
  await withStore(async (store, kv) => {
    const before = await readChangeCount(kv, "acme");
    const counted = { ...api, commits: { n: 0 } };
    const w = new Write(store, counted);
    w.set(["company", "acme", "scratch", 1], 1).set(["company", "other", "scratch", 1], 1);
    assert.ok(await w.commit());
    assert.equal(await readChangeCount(kv, "acme"), before + 1n);
    assert.equal(await readChangeCount(kv, "other"), 1n);
    assert.equal(counted.commits.n, 1);
    const lost = new Write(store, counted);
    lost.check({ key: ["company", "acme", "scratch", 1], versionstamp: null }).set(
      ["company", "acme", "scratch", 2],
      2,
    );
    assert.equal(await lost.commit(), null);
    assert.equal(await readChangeCount(kv, "acme"), before + 1n);
    assert.equal(counted.commits.n, 1);
    assert.equal((await kv.get(claimKeys.changes("acme"))).value instanceof Deno.KvU64, true);
    await kv.delete(["company", "acme", "scratch", 1]);
    await kv.delete(["company", "other", "scratch", 1]);
    const findings: unknown[] = [];
    await verifyStore(kv, { onFinding: (f) => findings.push(f) });
    assert.deepEqual(findings, []);
  });
});

Deno.test("deno task import: a second run of the same file says so, reports it unchanged, --no-resume reads it", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  {
    const kv = await Deno.openKv(kvPath);
    await saveDirectoryEntry(createStore(kv), { companyId: "default", name: "test", userId: 0 }, {
      kind: "bonus_programs",
      name: "Main",
    });
    kv.close();
  }
  const file = `${dir.path}/repeat.csv`;
  await Deno.writeTextFile(file, fileText(120));
  const first = await runTask("import", [file], { kvPath });
  assert.equal(first.code, 1, first.out + first.err); // the sprinkled bad rows
  const m = /(\d+) created, 0 updated, 0 unchanged, (\d+) rejected/.exec(first.out);
  assert.ok(m, first.out);
  const second = await runTask("import", [file], { kvPath });
  assert.equal(second.code, 1);
  assert.match(second.err, /imported whole at .* has not changed since/);
  assert.match(second.out, new RegExp(`0 created, 0 updated, ${m[1]} unchanged, ${m[2]} rejected`));
  const full = await runTask("import", [file, "--no-resume"], { kvPath });
  assert.doesNotMatch(full.err, /imported whole/);
  assert.match(full.out, new RegExp(`0 created, 0 updated, ${m[1]} unchanged, ${m[2]} rejected`));
  // The same file read with another delimiter is another import: no repeat.
  const other = await runTask("import", [file, "--delimiter", ","], { kvPath });
  assert.doesNotMatch(other.err, /imported whole/);
});

Deno.test("the clock: a record holds for its day, and a reject for a date in the future leaves none", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 30, 20, 0, 0);
    const store = createStore(kv, { clock: () => now });
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    const plain = "external_id,fname,birth_date\nt2,Bob,01.01.1990\n";
    await run(store, plain, { checkpoint: "customers:plain" });
    assert.equal((await run(store, plain, { checkpoint: "customers:plain" })).repeated, true);
    // Born "tomorrow": refused today, fine from tomorrow on, so the run leaves no record.
    const text = "external_id,fname,birth_date\nt1,Ann,01.12.2026\nt2,Bob,01.01.1990\n";
    const first = await run(store, text, { checkpoint: KEY });
    assert.equal(first.report.rejected, 1, JSON.stringify(first.report));
    const again = await run(store, text, { checkpoint: KEY });
    assert.equal(again.repeated, false);
    assert.deepEqual(again.report.rejects, first.report.rejects);
    now += 24 * 3_600_000;
    assert.equal((await run(store, plain, { checkpoint: "customers:plain" })).repeated, false, "another day");
    const nextDay = await run(store, text, { checkpoint: KEY });
    assert.equal(nextDay.repeated, false);
    assert.equal(nextDay.report.created, 1, JSON.stringify(nextDay.report));
  } finally {
    kv.close();
  }
});

Deno.test("balances written under a program with a lifetime leave no record; the compare that follows holds until the lots end", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let now = Date.UTC(2026, 10, 30, 12, 0, 0);
    const store = createStore(kv, { clock: () => now });
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main", settings: { lifetime_days: 2 } });
    const text = "external_id,fname,bonus\nl1,Ann,50\nl2,Bob,70\n";
    const first = await run(store, text, { checkpoint: KEY });
    assert.equal(first.report.created, 2, JSON.stringify(first.report));
    // The balances' new lots expire (the run does not read them back): no record.
    const compared = await run(store, text, { checkpoint: KEY });
    assert.equal(compared.repeated, false);
    assert.equal(compared.report.unchanged, 2);
    // That compare read the lots: its record holds while they do.
    assert.equal((await run(store, text, { checkpoint: KEY })).repeated, true);
    now += 3 * 86_400_000; // the same file a few days on (the day differs too; the lots have ended)
    const later = await run(store, text, { checkpoint: KEY });
    assert.equal(later.repeated, false);
    assert.equal(later.report.updated, 2, JSON.stringify(later.report));
  } finally {
    kv.close();
  }
});
