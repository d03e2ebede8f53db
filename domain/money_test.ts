import assert from "node:assert/strict";
import fc from "fast-check";
import { ValidationError } from "./errors.ts";
import { formatMoney, MAX_MINOR, moneyToNumber, parseMoney } from "./money.ts";

function rejects(raw: string, reason: string, opts?: { allowNegative?: boolean }, field = "accumulated_sales"): void {
  assert.throws(
    () => parseMoney(raw, field, opts),
    (e: unknown) =>
      e instanceof ValidationError && e.field === field && e.message === `Invalid ${field} "${raw}": ${reason}`,
    raw,
  );
}

Deno.test("parseMoney: exact decimals become integer minor units", () => {
  const cases: [string, number][] = [
    ["123", 12300],
    ["123.4", 12340],
    ["123.45", 12345],
    ["0", 0],
    ["0.05", 5],
    ["0.5", 50],
    ["0.1", 10],
    ["0.29", 29],
    ["1.15", 115],
    ["4.35", 435],
    ["15200.5", 1520050],
    ["+7", 700],
    ["12,50", 1250],
    ["12,5", 1250],
    ["007.50", 750],
    ["0000000000000000000001", 100],
    [" 42.10 ", 4210],
    ["100000000000", MAX_MINOR],
    ["99999999999.99", MAX_MINOR - 1],
    ["9007199254.74", 900719925474],
  ];
  for (const [raw, minor] of cases) assert.equal(parseMoney(raw, "amount"), minor, raw);
});

Deno.test("parseMoney: negative amounts only when allowed", () => {
  const yes = { allowNegative: true };
  assert.equal(parseMoney("-5.5", "amount", yes), -550);
  assert.equal(parseMoney("-0.01", "amount", yes), -1);
  assert.equal(parseMoney("-100000000000", "amount", yes), -MAX_MINOR);
  assert.equal(parseMoney("+5.5", "amount", yes), 550);
  rejects("-5.5", "must not be negative");
  rejects("-5.5", "must not be negative", { allowNegative: false });
  rejects("-0.01", "must not be negative");
  // Zero is not negative, whatever its sign, and never comes back as -0.
  assert.ok(Object.is(parseMoney("-0", "amount"), 0));
  assert.ok(Object.is(parseMoney("-0.00", "amount", yes), 0));
});

Deno.test("parseMoney: refuses what is not a plain decimal", () => {
  const reason = "must be a number like 123.45";
  for (
    const raw of [
      "",
      " ",
      "+",
      "-",
      ".",
      ".5",
      "5.",
      "NaN",
      "Infinity",
      "-Infinity",
      "1e5",
      "1E5",
      "1.5e2",
      "0x10",
      "1 000",
      "1 000.00",
      "12. 5",
      "1,000.00",
      "1.000,00",
      "--5",
      "+-5",
      "5-",
      "$5",
      "5 RUB",
      "١٢",
      "12.5.1",
    ]
  ) {
    rejects(raw, reason);
  }
});

Deno.test("parseMoney: at most 2 decimal places, at most 10^13 minor units", () => {
  rejects("12.345", "at most 2 decimal places");
  rejects("0.001", "at most 2 decimal places");
  rejects("0.30000000000000004", "at most 2 decimal places");
  rejects("12,500", "at most 2 decimal places");
  rejects("100000000000.01", "too large");
  rejects("100000000001", "too large");
  rejects("-100000000000.01", "too large", { allowNegative: true });
  rejects("9".repeat(30), "too large");
  assert.throws(() => parseMoney("1" + "0".repeat(400), "a"), {
    message: `Invalid a "1${"0".repeat(39)}…": too large`,
  });
});

Deno.test("parseMoney: the error names the given field and quotes at most 40 characters", () => {
  rejects("abc", "must be a number like 123.45", {}, "amount");
  const long = "1".repeat(41) + "x";
  assert.throws(() => parseMoney(long, "amount"), {
    message: `Invalid amount "${"1".repeat(40)}…": must be a number like 123.45`,
  });
});

Deno.test("parseMoney: sums stay exact where floats drift", () => {
  let sum = 0;
  for (let i = 0; i < 1000; i++) sum += parseMoney("0.1", "a") + parseMoney("0.2", "a");
  assert.equal(sum, parseMoney("300", "a"));
  let floats = 0;
  for (let i = 0; i < 1000; i++) floats += 0.1 + 0.2;
  assert.notEqual(floats, 300); // what the integer representation avoids
});

Deno.test("formatMoney: whole amounts bare, others with 2 decimals", () => {
  const cases: [number, string][] = [
    [1520000, "15200"],
    [1520050, "15200.50"],
    [5, "0.05"],
    [50, "0.50"],
    [0, "0"],
    [-0, "0"],
    [100, "1"],
    [-310, "-3.10"],
    [-5, "-0.05"],
    [-300, "-3"],
    [MAX_MINOR, "100000000000"],
    [Number.MAX_SAFE_INTEGER, "90071992547409.91"],
  ];
  for (const [minor, text] of cases) assert.equal(formatMoney(minor), text, String(minor));
  for (const bad of [0.5, NaN, Infinity, 2 ** 53]) assert.throws(() => formatMoney(bad), RangeError, String(bad));
});

Deno.test("moneyToNumber: the JSON number of major units", () => {
  assert.equal(moneyToNumber(1520050), 15200.5);
  assert.equal(moneyToNumber(1520000), 15200);
  assert.equal(moneyToNumber(5), 0.05);
  assert.equal(moneyToNumber(29), 0.29);
  assert.equal(moneyToNumber(-310), -3.1);
  assert.equal(moneyToNumber(0), 0);
  assert.equal(moneyToNumber(MAX_MINOR - 1), 99999999999.99);
  assert.equal(JSON.stringify({ a: moneyToNumber(115) }), '{"a":1.15}');
});

Deno.test("parseMoney, formatMoney and moneyToNumber round-trip every amount", () => {
  fc.assert(
    fc.property(fc.integer({ min: -MAX_MINOR, max: MAX_MINOR }), (minor) => {
      const text = formatMoney(minor);
      assert.equal(parseMoney(text, "a", { allowNegative: true }), minor);
      assert.equal(parseMoney(String(moneyToNumber(minor)), "a", { allowNegative: true }), minor);
      assert.equal(String(moneyToNumber(minor)), text.includes(".") ? text.replace(/0$/, "") : text);
    }),
    { numRuns: 5000 },
  );
});
