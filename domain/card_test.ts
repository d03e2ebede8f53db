import assert from "node:assert/strict";
import {
  applyCardChange,
  barcodeCandidates,
  type Card,
  type CardChange,
  cardFieldParsers,
  cardNotFound,
  cardView,
  firstFound,
  lookupSteps,
  parseBarcode,
  parseEan13,
  parseUid,
  splitCardFields,
  uidCandidates,
} from "./card.ts";
import { isValidEan13 } from "./ean13.ts";
import { NotFoundError, ValidationError } from "./errors.ts";

const T0 = Date.UTC(2024, 0, 10, 9, 0, 0);
const T1 = Date.UTC(2024, 1, 20, 12, 30, 0);
const T2 = Date.UTC(2024, 2, 5, 8, 15, 0);

function newCard(change: CardChange = {}, uid = "1"): Card {
  return applyCardChange(null, change, { id: 1, uid, externalId: null, now: T0, userId: 2 });
}

function change(card: Card, patch: CardChange, now = T1): Card {
  return applyCardChange(card, patch, { id: 99, uid: "ignored", externalId: "ignored", now, userId: 5 });
}

function throwsValidation(fn: () => unknown, field: string, message: string) {
  assert.throws(fn, (e) => e instanceof ValidationError && e.field === field && e.message === message);
}

Deno.test("parseUid: printable card numbers up to 64 characters, trimmed; empty means none", () => {
  assert.equal(parseUid("  A-100/7 ", "uid"), "A-100/7");
  assert.equal(parseUid("Карта№5", "uid"), "Карта№5");
  assert.equal(parseUid("0001", "uid"), "0001");
  assert.equal(parseUid("", "uid"), null);
  assert.equal(parseUid("   ", "uid"), null);
  assert.equal(parseUid("x".repeat(64), "uid"), "x".repeat(64));
  throwsValidation(
    () => parseUid("x".repeat(65), "uid"),
    "uid",
    `Invalid uid "${"x".repeat(40)}…": at most 64 characters`,
  );
  throwsValidation(() => parseUid("12 34", "uid"), "uid", 'Invalid uid "12 34": only printable characters, no spaces');
  throwsValidation(
    () => parseUid("12\u000734", "uid"),
    "uid",
    'Invalid uid "12\u000734": only printable characters, no spaces',
  );
  throwsValidation(
    () => parseUid("12\u200b34", "uid"),
    "uid",
    'Invalid uid "12\u200b34": only printable characters, no spaces',
  );
});

Deno.test("parseBarcode: ASCII digits only, up to 48; empty means none", () => {
  assert.equal(parseBarcode(" 4006381333931 ", "barcode"), "4006381333931");
  assert.equal(parseBarcode("0", "barcode"), "0");
  assert.equal(parseBarcode("1".repeat(48), "barcode"), "1".repeat(48));
  assert.equal(parseBarcode("", "barcode"), null);
  throwsValidation(() => parseBarcode("12AB", "barcode"), "barcode", 'Invalid barcode "12AB": only digits 0-9');
  throwsValidation(() => parseBarcode("12 34", "barcode"), "barcode", 'Invalid barcode "12 34": only digits 0-9');
  throwsValidation(
    () => parseBarcode("١٢٣", "card_barcode"),
    "card_barcode",
    'Invalid card_barcode "١٢٣": only digits 0-9',
  );
  throwsValidation(
    () => parseBarcode("1".repeat(49), "barcode"),
    "barcode",
    `Invalid barcode "${"1".repeat(40)}…": at most 48 digits`,
  );
});

Deno.test("parseEan13: 13 digits with a valid GS1 check digit", () => {
  for (const code of ["4006381333931", "5901234123457", "4600682003144", "9780306406157", "0000000000017"]) {
    assert.equal(parseEan13(code, "uid_ean13"), code);
  }
  assert.equal(parseEan13("", "uid_ean13"), null);
  throwsValidation(
    () => parseEan13("4600682003143", "uid_ean13"),
    "uid_ean13",
    'Invalid uid_ean13 "4600682003143": wrong check digit 3: expected 4',
  );
  throwsValidation(
    () => parseEan13("400638133393", "uid_ean13"),
    "uid_ean13",
    'Invalid uid_ean13 "400638133393": must be 13 digits',
  );
  throwsValidation(
    () => parseEan13("400638133393X", "uid_ean13"),
    "uid_ean13",
    'Invalid uid_ean13 "400638133393X": must be 13 digits',
  );
});

Deno.test("cardFieldParsers: medium, status and dates", () => {
  const p = cardFieldParsers({ timeZone: "Europe/Moscow" });
  assert.equal(p.medium("plastic", "medium"), "PLASTIC");
  assert.equal(p.medium("", "medium"), null);
  throwsValidation(
    () => p.medium("PAPER", "medium"),
    "medium",
    'Invalid medium "PAPER": must be one of PLASTIC, MAGNET, APP',
  );
  assert.equal(p.status("blocked", "status"), "BLOCKED");
  throwsValidation(
    () => p.status("LOST", "status"),
    "status",
    'Invalid status "LOST": must be one of NEW, ACTIVE, BLOCKED',
  );
  throwsValidation(() => p.status("", "status"), "status", 'Invalid status "": must be one of NEW, ACTIVE, BLOCKED');
  // Moscow is UTC+3: wall-clock times are read in the configured zone.
  assert.equal(p.block_date("2024-01-10 12:00:00", "block_date"), T0);
  assert.equal(p.activate_date("2024-01-10", "activate_date"), Date.UTC(2024, 0, 9, 21, 0, 0));
  assert.equal(p.activate_date("", "activate_date"), null);
  throwsValidation(
    () => p.block_date("2023-02-29", "block_date"),
    "block_date",
    'Invalid block_date "2023-02-29": 2023-02 has no day 29',
  );
  throwsValidation(
    () => p.type_name("x".repeat(101), "type_name"),
    "type_name",
    `Invalid type_name "${"x".repeat(40)}…": at most 100 characters`,
  );
  assert.equal(p.type_name("   ", "type_name"), null);
  assert.equal(p.type_name("", "type_name"), null);
  assert.equal(p.type_name("  Gold   VIP ", "type_name"), "Gold VIP");
});

Deno.test("splitCardFields: an id wins over a name, even when it clears", () => {
  assert.deepEqual(splitCardFields({ type_id: 3, type_name: "Gold", status: "NEW" }), {
    change: { status: "NEW" },
    refs: { typeId: 3 },
  });
  assert.deepEqual(splitCardFields({ type_id: null, type_name: "Gold" }).refs, { typeId: null });
  assert.deepEqual(splitCardFields({ type_name: "Gold" }).refs, { typeName: "Gold" });
  assert.deepEqual(splitCardFields({ customer_id: 4, customer_external_id: "C" }).refs, { customerId: 4 });
  assert.deepEqual(splitCardFields({ customer_external_id: null }).refs, { customerExternalId: null });
  assert.deepEqual(splitCardFields({}).refs, {});
});

Deno.test("lookupSteps: card_id, then uid, then external_id, then card_barcode, whatever the request's order", () => {
  const steps = lookupSteps({ card_barcode: "123", external_id: "E", uid: "U", card_id: 7 });
  assert.deepEqual(steps.map((s) => s.key), ["card_id", "uid", "external_id", "card_barcode"]);
  assert.deepEqual(lookupSteps({ card_id: null, uid: null, card_barcode: "5" }), [{ key: "card_barcode", value: "5" }]);
  assert.deepEqual(lookupSteps({}), []);
});

Deno.test("firstFound: the earliest step that found a card wins", () => {
  const steps = lookupSteps({ card_id: 1, uid: "U", external_id: "E", card_barcode: "9" });
  assert.deepEqual(firstFound(steps, ["A", "B", "C", "D"]), { step: steps[0], card: "A" });
  assert.deepEqual(firstFound(steps, [null, "B", "C", "D"]), { step: steps[1], card: "B" });
  assert.deepEqual(firstFound(steps, [null, null, "C", "D"]), { step: steps[2], card: "C" });
  assert.deepEqual(firstFound(steps, [null, null, null, "D"]), { step: steps[3], card: "D" });
  assert.equal(firstFound(steps, [null, null, null, null]), null);
});

Deno.test("cardNotFound: names the keys tried, the first as the field", () => {
  const check = (lookup: Parameters<typeof lookupSteps>[0], message: string, field: string) => {
    const e = cardNotFound(lookupSteps(lookup));
    assert.ok(e instanceof NotFoundError);
    assert.equal(e.message, message);
    assert.equal(e.field, field);
  };
  check({ card_id: 5 }, 'Card "5" not found', "card_id");
  check({ uid: "U-1" }, 'Card with uid "U-1" not found', "uid");
  check({ card_barcode: "123" }, 'Card with card_barcode "123" not found', "card_barcode");
  check({ uid: "U", card_id: 5 }, 'Card not found by card_id "5" or uid "U"', "card_id");
  check(
    { uid: "U", external_id: "E", card_barcode: "1" },
    'Card not found by uid "U", external_id "E" or card_barcode "1"',
    "uid",
  );
});

Deno.test("applyCardChange: a new card starts NEW, with uid_ean13 from a numeric uid and no barcode yet", () => {
  const card = newCard();
  assert.deepEqual(card, {
    id: 1,
    external_id: null,
    uid: "1",
    uid_ean13: "0000000000017",
    barcode: null,
    medium: null,
    status: "NEW",
    block_date: null,
    activate_date: null,
    type_id: null,
    customer_id: null,
    created_date: T0,
    created_by: 2,
    last_update_date: T0,
    last_update_by: 2,
  });
  assert.equal(newCard({}, "A-1").uid_ean13, null);
  assert.equal(newCard({}, "1234567890123").uid_ean13, null, "13 digits cannot be padded to 12");
  assert.equal(newCard({ uid_ean13: "4006381333931" }, "7").uid_ean13, "4006381333931");
  assert.equal(newCard({ uid_ean13: null }, "7").uid_ean13, null, "sent empty: no uid_ean13");
});

Deno.test("applyCardChange: uid_ean13 of real product numbers (EAN-13 vectors)", () => {
  const vectors: [string, string][] = [
    ["400638133393", "4006381333931"], // Stabilo pen
    ["590123412345", "5901234123457"], // GS1 Poland example
    ["460068200314", "4600682003144"], // Russian prefix 460
    ["978030640615", "9780306406157"], // ISBN-13
    ["1234567890", "0012345678905"], // UPC-A 012345678905
  ];
  for (const [uid, ean] of vectors) {
    const card = newCard({}, uid);
    assert.equal(card.uid_ean13, ean, uid);
    assert.ok(isValidEan13(card.uid_ean13!));
  }
});

Deno.test("applyCardChange: changes only what is sent, keeps identity, stamps the update", () => {
  const card = newCard({ medium: "PLASTIC" });
  const next = change(card, { medium: "APP", barcode: "555" });
  assert.equal(next.medium, "APP");
  assert.equal(next.barcode, "555");
  assert.equal(next.id, 1);
  assert.equal(next.uid, "1");
  assert.equal(next.external_id, null);
  assert.equal(next.created_date, T0);
  assert.equal(next.created_by, 2);
  assert.equal(next.last_update_date, T1);
  assert.equal(next.last_update_by, 5);
  assert.equal(change(next, { medium: null, barcode: null }).medium, null);
  const moved = applyCardChange(card, {}, {
    id: 1,
    uid: "1",
    externalId: null,
    customerId: 8,
    typeId: 3,
    now: T1,
    userId: 5,
  });
  assert.equal(moved.customer_id, 8);
  assert.equal(moved.type_id, 3);
  const detached = applyCardChange(moved, {}, {
    id: 1,
    uid: "1",
    externalId: null,
    customerId: null,
    now: T2,
    userId: 5,
  });
  assert.equal(detached.customer_id, null);
  assert.equal(detached.type_id, 3);
});

Deno.test("applyCardChange: status rules", async (t) => {
  await t.step("BLOCKED without block_date stamps now", () => {
    const blocked = change(newCard(), { status: "BLOCKED" });
    assert.equal(blocked.block_date, T1);
    assert.equal(blocked.activate_date, null);
  });
  await t.step("BLOCKED with block_date keeps the date given", () => {
    assert.equal(change(newCard(), { status: "BLOCKED", block_date: T0 }).block_date, T0);
  });
  await t.step("BLOCKED again keeps the first block date", () => {
    const blocked = change(newCard(), { status: "BLOCKED" }, T1);
    assert.equal(change(blocked, { status: "BLOCKED" }, T2).block_date, T1);
  });
  await t.step("a new card created BLOCKED is stamped", () => {
    assert.equal(newCard({ status: "BLOCKED" }).block_date, T0);
  });
  await t.step("ACTIVE stamps activate_date on first activation only", () => {
    const active = change(newCard(), { status: "ACTIVE" }, T1);
    assert.equal(active.activate_date, T1);
    const blocked = change(active, { status: "BLOCKED" }, T2);
    assert.equal(blocked.activate_date, T1);
    const again = change(blocked, { status: "ACTIVE" }, T2 + 1000);
    assert.equal(again.activate_date, T1);
    assert.equal(newCard({ status: "ACTIVE" }).activate_date, T0);
  });
  await t.step("ACTIVE with activate_date keeps the date given, also when it clears", () => {
    assert.equal(change(newCard(), { status: "ACTIVE", activate_date: T0 }).activate_date, T0);
    assert.equal(change(newCard(), { status: "ACTIVE", activate_date: null }).activate_date, null);
  });
  await t.step("leaving BLOCKED clears block_date unless one is given", () => {
    const blocked = change(newCard(), { status: "BLOCKED" }, T1);
    const active = change(blocked, { status: "ACTIVE" }, T2);
    assert.equal(active.block_date, null);
    assert.equal(active.activate_date, T2);
    assert.equal(change(blocked, { status: "NEW", block_date: T0 }, T2).block_date, T0);
  });
  await t.step("dates alone change no status", () => {
    const dated = change(newCard(), { block_date: T2, activate_date: T1 });
    assert.equal(dated.status, "NEW");
    assert.equal(dated.block_date, T2);
    assert.equal(dated.activate_date, T1);
  });
});

Deno.test("barcodeCandidates: the uid_ean13 first, then in-store EAN-13s after the sequence position", () => {
  const take = <T>(it: Iterator<T>, n: number) => Array.from({ length: n }, () => it.next().value as T);
  assert.deepEqual(take(barcodeCandidates("0000000000017", 0), 3), [
    { value: "0000000000017", position: null },
    { value: "2000000000015", position: 1 },
    { value: "2000000000022", position: 2 },
  ]);
  assert.deepEqual(take(barcodeCandidates(null, 41), 1), [{ value: "2000000000428", position: 42 }]);
  for (const c of take(barcodeCandidates(null, 99_999), 5)) {
    assert.ok(c.value.startsWith("2") && isValidEan13(c.value), c.value);
  }
});

Deno.test("uidCandidates: the card numbers after the sequence position", () => {
  const it = uidCandidates(9);
  assert.deepEqual([it.next().value, it.next().value], [{ value: "10", position: 10 }, { value: "11", position: 11 }]);
});

Deno.test("cardView: documented field order, dates in the zone, empty values null", () => {
  const card = {
    ...newCard({ status: "ACTIVE", medium: "MAGNET" }),
    type_id: 3,
    customer_id: 8,
    barcode: "0000000000017",
  };
  const view = cardView(card, { typeName: "Gold", customerExternalId: "C-8", timeZone: "Europe/Moscow" });
  assert.deepEqual(Object.entries(view), [
    ["card_id", 1],
    ["external_id", null],
    ["uid", "1"],
    ["uid_ean13", "0000000000017"],
    ["barcode", "0000000000017"],
    ["medium", "MAGNET"],
    ["status", "ACTIVE"],
    ["block_date", null],
    ["activate_date", "2024-01-10 12:00:00"],
    ["type_id", 3],
    ["type_name", "Gold"],
    ["customer_id", 8],
    ["customer_external_id", "C-8"],
    ["created_date", "2024-01-10 12:00:00"],
    ["created_by", 2],
    ["last_update_date", "2024-01-10 12:00:00"],
    ["last_update_by", 2],
  ]);
  const bare = cardView(newCard(), { typeName: "stale", customerExternalId: "stale", timeZone: "UTC" });
  assert.equal(bare.type_name, null);
  assert.equal(bare.customer_external_id, null);
});
