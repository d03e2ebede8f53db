/**
 * `export | import` into an empty company reproduces the customers, cards, groups, card types and balances, in each
 * format. What it relies on:
 * - `deno task import FILE --type customers|cards|bonuses --company ID [--format F] [--report R.json]` exits 0 when
 *   every row went in, and the report JSON has `created`, `updated`, `unchanged`, `rejected`, `rejects`.
 * - The importer accepts (ignores) the read-only columns the export writes (`id`, `age`, `register_date`, `group_id`,
 *   `created_date`, `created_by`, `last_update_date`, `last_update_by`; for cards `card_id`, `type_id`, `uid_ean13` is
 *   writable). If it stops on unknown columns, add `--ignore-unknown` in IMPORT_FLAGS below.
 * - The importer creates groups and card types named in rows; bonus programs are created here first, in the order of
 *   the bonusprograms export, so that their ids match the bonuses file's `bonus_id`.
 * - Cards carry both `customer_id` and `customer_external_id`; in a fresh company customers get ids in file order,
 *   so both agree here. (If the importer lets customer_id win, as the API does, a target company that already has
 *   customers would link cards wrongly: the importer should prefer customer_external_id when both are given.)
 */
import assert from "node:assert/strict";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { EXPORT_FORMATS, type ExportFormat } from "../domain/export_format.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { request, runTask, tempDir } from "./kit.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** Extra flags every import is run with (see the assumptions above). */
const IMPORT_FLAGS: string[] = [];

/** Company "acme" filled through the API: groups, card types, one program, odd text, cards with and without owner. */
async function populatedStore(dir: string) {
  const kvPath = `${dir}/store.sqlite3`;
  const kv = await Deno.openKv(kvPath);
  const config: Config = { ...DEFAULT_CONFIG, kvPath, logRequests: false };
  const app = createApp({ kv, config });
  const acme = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now: Date.now() })).key;
  const call = async (path: string, form: Record<string, string | number>) => {
    const { uid, ...rest } = form;
    const r = await request(app, "POST", path, { key: acme, form: rest, query: uid === undefined ? {} : { uid } });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return r.body;
  };
  await call("/api/bonusprogram/update", { name: "Главная" });
  await call("/api/customergroup/update", { group_name: "VIP" });
  const a = await call("/api/customer/update", {
    external_id: "A-1",
    fname: 'Иван, "Ваня"',
    lname: "=SUM(A1)",
    mname: "Петрович",
    custom_information: "line 1\nline 2\r\nline 3 <&>",
    phone: "+7 900 111-22-33",
    email: "ivan@example.com",
    gender: "M",
    birth_day: 5,
    birth_month: 2,
    birth_year: 1987,
    group_name: "VIP",
    accumulated_sales: "1250.50",
    send_sms: 1,
  });
  await call("/api/customer/insertCard", {
    uid: "000123",
    barcode: "0001230001",
    type_name: "Золотая",
    customer_id: a.id,
  });
  await call("/api/customer/updateBonus", { customer_id: a.id, bonus_id: 1, amount: "125.50" });
  const b = await call("/api/customer/update", { external_id: "B-2", fname: "Пётр", email: "petr@example.com" });
  await call("/api/customer/insertCard", { uid: "0777", customer_id: b.id, type_name: "Silver", status: "BLOCKED" });
  await call("/api/customer/insertCard", { uid: "0778", customer_id: b.id });
  await call("/api/customer/updateBonus", { customer_id: b.id, bonus_id: 1, amount: "3.07" });
  await call("/api/customer/update", { external_id: "C-3", phone: "+7 900 333-44-55", group_name: "Новички" });
  await call("/api/customer/insertCard", { uid: "5550001" });
  return { kvPath, kv, [Symbol.asyncDispose]: () => Promise.resolve(kv.close()) };
}

/** Runs the export task and returns its output text. */
async function exportText(kvPath: string, type: string, company: string, format: ExportFormat): Promise<string> {
  const r = await runTask("export", ["--type", type, "--company", company, "--format", format], { kvPath });
  assert.equal(r.code, 0, r.err);
  return r.out;
}

/** The comparable content of a company, from its JSON exports: everything but ids and dates made by the store. */
async function contentOf(kvPath: string, company: string) {
  const doc = async (type: string) => JSON.parse(await exportText(kvPath, type, company, "json"));
  const customers = (await doc("customers")).customers.map((c: Any) => ({
    external_id: c.external_id,
    fname: c.fname,
    lname: c.lname,
    mname: c.mname,
    email: c.email,
    phone: c.phone,
    gender: c.gender,
    custom_information: c.custom_information,
    birth_day: c.birth_day,
    birth_month: c.birth_month,
    birth_year: c.birth_year,
    accumulated_sales: c.accumulated_sales,
    send_push: c.send_push,
    send_email: c.send_email,
    send_sms: c.send_sms,
    group_name: c.group_name,
    card_uid: c.card_uid,
    card_barcode: c.card_barcode,
    bonus: c.bonus,
  }));
  const cards = (await doc("cards")).cards.map((c: Any) => ({
    uid: c.uid,
    uid_ean13: c.uid_ean13,
    barcode: c.barcode,
    external_id: c.external_id,
    medium: c.medium,
    status: c.status,
    type_name: c.type_name,
    customer_external_id: c.customer_external_id,
  }));
  const bonuses = (await doc("bonuses")).bonuses.map((b: Any) => ({
    customer_external_id: b.customer_external_id,
    bonus_id: b.bonus_id,
    amount: b.amount,
  }));
  const names = async (type: string, list: string, field: string) =>
    (await doc(type))[list].map((e: Any) => e[field]).sort();
  // Compared as sets: the importer may give new ids in another order than the file's.
  const by = (field: string) => (a: Any, b: Any) => String(a[field]).localeCompare(String(b[field]));
  return {
    customers: customers.sort(by("external_id")),
    cards: cards.sort(by("uid")),
    bonuses: bonuses.sort(by("customer_external_id")),
    groups: await names("groups", "groups", "group_name"),
    cardtypes: await names("cardtypes", "card_types", "type_name"),
  };
}

Deno.test("export | import into an empty company reproduces customers, cards, groups, card types and balances", async (t) => {
  await using dir = await tempDir("roundtrip_test_");
  await using s = await populatedStore(dir.path);
  const original = await contentOf(s.kvPath, "acme");
  assert.equal(original.customers.length, 3);
  assert.equal(original.cards.length, 4);
  assert.equal(original.bonuses.length, 2);
  const programs = JSON.parse(await exportText(s.kvPath, "bonusprograms", "acme", "json")).bonus_programs;

  for (const format of EXPORT_FORMATS) {
    await t.step(format, async () => {
      const copy = `copy_${format}`;
      await createApiKey(s.kv, { companyId: copy, userId: 1, access: "write", now: Date.now() });
      for (const p of programs) {
        const r = await runTask("bonusprogram", ["create", "--company", copy, "--name", p.name], { kvPath: s.kvPath });
        assert.equal(r.code, 0, r.err);
      }
      for (const type of ["customers", "cards", "bonuses"]) {
        const file = `${dir.path}/${copy}_${type}.${format}`;
        await Deno.writeTextFile(file, await exportText(s.kvPath, type, "acme", format));
        const report = `${dir.path}/${copy}_${type}.report.json`;
        const r = await runTask(
          "import",
          [file, "--type", type, "--company", copy, "--report", report, ...IMPORT_FLAGS],
          { kvPath: s.kvPath },
        );
        assert.equal(r.code, 0, `${type} ${format}: ${r.out}\n${r.err}`);
        assert.equal(JSON.parse(await Deno.readTextFile(report)).rejected, 0);
      }
      assert.deepEqual(await contentOf(s.kvPath, copy), original);

      // A second import of the same files changes nothing (balances are set, never added).
      for (const type of ["customers", "cards", "bonuses"]) {
        const r = await runTask("import", [
          `${dir.path}/${copy}_${type}.${format}`,
          "--type",
          type,
          "--company",
          copy,
          ...IMPORT_FLAGS,
        ], {
          kvPath: s.kvPath,
        });
        assert.equal(r.code, 0, r.err);
      }
      assert.deepEqual(await contentOf(s.kvPath, copy), original);
    });
  }
});
