import assert from "node:assert/strict";
import fc from "fast-check";
import {
  amountParser,
  bonusFingerprint,
  type BonusRequest,
  checkIdempotencyKey,
  formatPoints,
  ledgerEntry,
  MAX_BALANCE,
  nextBalance,
  pickIdempotencyKey,
  transactionView,
} from "./bonus.ts";
import { ConflictError, ValidationError } from "./errors.ts";

function refusal(kind: typeof ConflictError | typeof ValidationError, message: string) {
  return (e: unknown) => e instanceof kind && e.message === message && e.field === "amount";
}

Deno.test("formatPoints() always writes two decimals", () => {
  const cases: [number, string][] = [[0, "0.00"], [5, "0.05"], [10, "0.10"], [5000, "50.00"], [-10, "-0.10"], [
    123456,
    "1234.56",
  ]];
  for (const [minor, text] of cases) assert.equal(formatPoints(minor), text);
});

Deno.test("nextBalance() adds, removes and overwrites", () => {
  assert.deepEqual(nextBalance(0, { amount: 1000, overwrite: false }), { balance: 1000, delta: 1000 });
  assert.deepEqual(nextBalance(1000, { amount: -250, overwrite: false }), { balance: 750, delta: -250 });
  assert.deepEqual(nextBalance(750, { amount: -750, overwrite: false }), { balance: 0, delta: -750 });
  assert.deepEqual(nextBalance(750, { amount: 0, overwrite: false }), { balance: 750, delta: 0 });
  assert.deepEqual(nextBalance(750, { amount: 100, overwrite: true }), { balance: 100, delta: -650 });
  assert.deepEqual(nextBalance(100, { amount: 900, overwrite: true }), { balance: 900, delta: 800 });
  assert.deepEqual(nextBalance(900, { amount: 0, overwrite: true }), { balance: 0, delta: -900 });
});

Deno.test("nextBalance() refuses to go below zero, over the limit, or to overwrite with a negative amount", () => {
  assert.throws(
    () => nextBalance(2000, { amount: -5000, overwrite: false }),
    refusal(ConflictError, "Cannot remove 50.00 bonus points: the balance is 20.00"),
  );
  assert.throws(
    () => nextBalance(0, { amount: -1, overwrite: false }),
    refusal(ConflictError, "Cannot remove 0.01 bonus points: the balance is 0.00"),
  );
  assert.throws(
    () => nextBalance(MAX_BALANCE, { amount: 1, overwrite: false }),
    refusal(
      ConflictError,
      "Cannot add 0.01 bonus points: the balance 100000000000.00 would go over the limit of 100000000000.00",
    ),
  );
  assert.throws(
    () => nextBalance(100, { amount: -500, overwrite: true }),
    refusal(ValidationError, 'Invalid amount "-5.00": overwrite sets the balance, which cannot be negative'),
  );
  assert.throws(() => nextBalance(0, { amount: 0.5, overwrite: false }), RangeError);
  assert.throws(() => nextBalance(-1, { amount: 1, overwrite: false }), RangeError);
});

Deno.test("nextBalance() never leaves [0, MAX_BALANCE] and the delta always explains the move", () => {
  const minor = fc.integer({ min: 0, max: MAX_BALANCE });
  const amount = fc.integer({ min: -MAX_BALANCE, max: MAX_BALANCE });
  fc.assert(fc.property(minor, amount, fc.boolean(), (balance, a, overwrite) => {
    try {
      const out = nextBalance(balance, { amount: a, overwrite });
      assert.ok(out.balance >= 0 && out.balance <= MAX_BALANCE);
      assert.equal(out.balance, balance + out.delta);
      assert.equal(out.balance, overwrite ? a : balance + a);
    } catch (e) {
      assert.ok(e instanceof ConflictError || e instanceof ValidationError);
      assert.ok(overwrite ? a < 0 : balance + a < 0 || balance + a > MAX_BALANCE);
    }
  }));
});

Deno.test("amountParser() takes exact decimals of at most 2 places, signed", () => {
  const ok: [string, number][] = [["10", 1000], ["10.00", 1000], ["+10,0", 1000], ["-0.1", -10], ["0.29", 29], [
    "-0",
    0,
  ]];
  for (const [raw, minor] of ok) assert.equal(amountParser(raw, "amount"), minor, raw);
  const bad: [string, string][] = [
    ["1.005", "at most 2 decimal places"],
    ["NaN", "must be a number like 123.45"],
    ["Infinity", "must be a number like 123.45"],
    ["1e3", "must be a number like 123.45"],
    ["abc", "must be a number like 123.45"],
    ["", "must not be empty"],
    ["  ", "must not be empty"],
  ];
  for (const [raw, reason] of bad) {
    assert.throws(
      () => amountParser(raw, "amount"),
      (e: unknown) => e instanceof ValidationError && e.message === `Invalid amount "${raw}": ${reason}`,
      raw,
    );
  }
});

Deno.test("bonusFingerprint() is equal exactly for the same normalised request", () => {
  const base: BonusRequest = {
    customer: { id: 1 },
    bonusId: 2,
    amount: 1000,
    overwrite: false,
    comment: null,
    orderId: null,
  };
  const same = bonusFingerprint(base);
  assert.equal(bonusFingerprint({ ...base }), same);
  const others: BonusRequest[] = [
    { ...base, customer: { id: 2 } },
    { ...base, customer: { externalId: "1" } },
    { ...base, bonusId: 3 },
    { ...base, amount: 1001 },
    { ...base, amount: -1000 },
    { ...base, overwrite: true },
    { ...base, comment: "x" },
    { ...base, orderId: "x" },
  ];
  const prints = new Set([same, ...others.map(bonusFingerprint)]);
  assert.equal(prints.size, others.length + 1);
});

Deno.test("idempotency keys: checked, and header and parameter must agree", () => {
  assert.equal(checkIdempotencyKey("order-1/retry", "idempotency_key"), "order-1/retry");
  assert.throws(() => checkIdempotencyKey("", "idempotency_key"), /must not be empty/);
  assert.throws(() => checkIdempotencyKey("x".repeat(201), "idempotency_key"), /at most 200 characters/);
  assert.throws(() => checkIdempotencyKey("a\nb", "idempotency_key"), /control characters/);
  assert.throws(() => checkIdempotencyKey(" a", "idempotency_key"), /white space/);
  assert.equal(pickIdempotencyKey(undefined, undefined), null);
  assert.equal(pickIdempotencyKey("k", undefined), "k");
  assert.equal(pickIdempotencyKey(undefined, "k"), "k");
  assert.equal(pickIdempotencyKey("k", "k"), "k");
  assert.throws(
    () => pickIdempotencyKey("a", "b"),
    (e: unknown) =>
      e instanceof ValidationError && e.field === "idempotency_key" &&
      e.message === 'Two different idempotency keys were sent: header "a" and idempotency_key "b"; send one',
  );
});

Deno.test("transactionView() renders a ledger entry for the wire", () => {
  const entry = ledgerEntry({ overwrite: true, comment: "fix", orderId: "A-1" }, {
    transactionId: 7,
    customerId: 3,
    bonusId: 2,
    outcome: { balance: 1050, delta: -20 },
    now: Date.UTC(2024, 0, 2, 3, 4, 5),
    userId: 9,
    idempotencyKey: null,
    requestId: "r-1",
  });
  assert.deepEqual(transactionView(entry, "UTC"), {
    transaction_id: 7,
    customer_id: 3,
    bonus_id: 2,
    amount: -0.2,
    kind: "overwrite",
    source: "api",
    pending: 0,
    return_id: null,
    balance: 10.5,
    overwrite: 1,
    comment: "fix",
    order_id: "A-1",
    created_date: "2024-01-02 03:04:05",
    created_by: 9,
  });
});
