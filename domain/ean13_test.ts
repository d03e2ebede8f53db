import assert from "node:assert/strict";
import { ean13CheckDigit, inStoreEan13, isValidEan13, uidToEan13 } from "./ean13.ts";

const REAL = [
  "4006381333931", // Stabilo pen, Germany
  "5901234123457", // GS1 Poland example
  "4600682003144", // Russian prefix 460; the often quoted 4600682003143 fails the GS1 check (sum 76 -> 4)
  "9780306406157", // ISBN-13
  "0012345678905", // UPC-A 012345678905 as EAN-13
];

Deno.test("ean13CheckDigit: GS1 mod-10 of real codes", () => {
  for (const code of REAL) assert.equal(ean13CheckDigit(code.slice(0, 12)), Number(code[12]), code);
  assert.equal(ean13CheckDigit("000000000000"), 0);
  assert.equal(ean13CheckDigit("123456789012"), 8);
  assert.equal(ean13CheckDigit("000000000001"), 7);
});

Deno.test("ean13CheckDigit: refuses anything but 12 digits", () => {
  for (const bad of ["", "12345678901", "1234567890123", "12345678901a", " 23456789012", "١٢٣٤٥٦٧٨٩٠١٢"]) {
    assert.throws(() => ean13CheckDigit(bad), RangeError, bad);
  }
});

Deno.test("isValidEan13: real codes pass, a wrong check digit fails", () => {
  for (const code of REAL) {
    assert.equal(isValidEan13(code), true, code);
    for (let d = 0; d <= 9; d++) {
      const other = code.slice(0, 12) + d;
      if (other !== code) assert.equal(isValidEan13(other), false, other);
    }
  }
  assert.equal(isValidEan13("4600682003143"), false);
  // A transposition of neighbouring digits (the typical typo) is caught.
  assert.equal(isValidEan13("4003681333931"), false);
});

Deno.test("isValidEan13: only exactly 13 ASCII digits", () => {
  for (
    const bad of [
      "",
      "400638133393",
      "40063813339310",
      "4006381333931 ",
      " 4006381333931",
      "400638133393a",
      "4006381-333931",
      "+006381333931",
    ]
  ) {
    assert.equal(isValidEan13(bad), false, JSON.stringify(bad));
  }
});

Deno.test("uidToEan13: numeric card numbers of 1 to 12 digits become valid EAN-13s", () => {
  assert.equal(uidToEan13("1"), "0000000000017");
  assert.equal(uidToEan13("0"), "0000000000000");
  assert.equal(uidToEan13("123456789012"), "1234567890128");
  assert.equal(uidToEan13("400638133393"), "4006381333931");
  assert.equal(uidToEan13("1234567890"), "0012345678905");
  for (const uid of ["7", "42", "100500", "999999999999", "000123"]) {
    const code = uidToEan13(uid);
    assert.ok(code !== null && isValidEan13(code) && code.endsWith(uid.padStart(12, "0") + code[12]), uid);
  }
});

Deno.test("uidToEan13: anything else has no EAN-13", () => {
  for (const uid of ["", "1234567890123", "4006381333931", "12a", "-1", " 12", "12 ", "1.5", "A-1", "١٢"]) {
    assert.equal(uidToEan13(uid), null, uid);
  }
});

Deno.test("inStoreEan13: restricted-circulation codes starting with 2", () => {
  assert.equal(inStoreEan13(0), "2000000000008");
  assert.equal(inStoreEan13(1), "2000000000015");
  assert.equal(inStoreEan13(12345), "2000000123455");
  assert.equal(inStoreEan13(99_999_999_999), "2999999999991");
  for (const n of [0, 1, 9, 10, 12345, 1_000_000, 123_456_789_01, 99_999_999_999]) {
    const code = inStoreEan13(n);
    assert.equal(code.length, 13);
    assert.equal(code[0], "2");
    assert.equal(Number(code.slice(1, 12)), n);
    assert.equal(isValidEan13(code), true, code);
  }
});

Deno.test("inStoreEan13: RangeError outside 0 <= n < 10^11", () => {
  for (const n of [-1, 1e11, 1e12, 1.5, NaN, Infinity, -Infinity]) {
    assert.throws(() => inStoreEan13(n), RangeError, String(n));
  }
});
