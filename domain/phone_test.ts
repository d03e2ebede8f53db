import assert from "node:assert/strict";
import { ValidationError } from "./errors.ts";
import { isValidCountryCode, normalizePhone } from "./phone.ts";

function rejects(raw: string, message: string, field = "phone", cc = "7"): void {
  assert.throws(
    () => normalizePhone(raw, field, cc),
    (e: unknown) => e instanceof ValidationError && e.field === field && e.message === message,
    raw,
  );
}

Deno.test("normalizePhone: Russian numbers in every common writing are one number", () => {
  for (
    const raw of [
      "+7 (900) 123-45-67",
      "89001234567",
      "9001234567",
      "79001234567",
      "8 (900) 123-45-67",
      "8-900-123-45-67",
      "+7 900 1234567",
      "+79001234567",
      "(900) 123 45 67",
      "900.123.45.67",
      "007 900 123 45 67",
      "  +7 900 123 45 67\t",
      "+7\u00a0900\u00a0123\u00a045\u00a067",
    ]
  ) {
    assert.equal(normalizePhone(raw, "phone", "7"), "79001234567", raw);
  }
  assert.equal(normalizePhone("8 800 555-35-35", "phone", "7"), "78005553535");
});

Deno.test("normalizePhone: international prefixes + and 00 keep the digits as dialled", () => {
  assert.equal(normalizePhone("+44 20 7946 0958", "phone", "7"), "442079460958");
  assert.equal(normalizePhone("0044 20 7946 0958", "phone", "7"), "442079460958");
  assert.equal(normalizePhone("+1 (212) 555-0123", "phone", "7"), "12125550123");
  assert.equal(normalizePhone("+380 44 123 4567", "phone", "7"), "380441234567");
  assert.equal(normalizePhone("+49 30 123456", "phone", "44"), "4930123456");
  // A "+" wins over every national rule: an 8 after it stays.
  assert.equal(normalizePhone("+8 900 123 45 67", "phone", "7"), "89001234567");
});

Deno.test("normalizePhone: national numbers take the default country code", () => {
  assert.equal(normalizePhone("020 7946 0958", "phone", "44"), "442079460958");
  assert.equal(normalizePhone("07700 900123", "phone", "44"), "447700900123");
  assert.equal(normalizePhone("030 123456", "phone", "49"), "4930123456");
  assert.equal(normalizePhone("(212) 555-0123", "phone", "1"), "12125550123");
  assert.equal(normalizePhone("1 212 555 0123", "phone", "1"), "12125550123");
  assert.equal(normalizePhone("123456", "phone", "7"), "7123456");
  // The Russian trunk 8 applies only with country code 7 and 11 digits.
  assert.equal(normalizePhone("89001234567", "phone", "44"), "89001234567");
  assert.equal(normalizePhone("8900123456", "phone", "7"), "78900123456");
  // Longer than 10 digits without a prefix: already international.
  assert.equal(normalizePhone("442079460958", "phone", "7"), "442079460958");
});

Deno.test("normalizePhone: the result has 7 to 15 digits", () => {
  assert.equal(normalizePhone("+1234567", "phone", "7"), "1234567");
  assert.equal(normalizePhone("+123456789012345", "phone", "7"), "123456789012345");
  rejects("+123456", 'Invalid phone "+123456": must contain 7 to 15 digits');
  rejects("+1234567890123456", 'Invalid phone "+1234567890123456": must contain 7 to 15 digits');
  rejects("1234567890123456", 'Invalid phone "1234567890123456": must contain 7 to 15 digits');
  rejects("12345", 'Invalid phone "12345": must contain 7 to 15 digits');
  rejects("00", 'Invalid phone "00": must contain 7 to 15 digits');
  rejects("", 'Invalid phone "": must contain 7 to 15 digits');
  rejects("+", 'Invalid phone "+": must contain 7 to 15 digits');
});

Deno.test("normalizePhone: only digits, spaces, a leading + and - ( ) . are allowed, and the others are named", () => {
  const reason = "only digits, spaces, a leading + and - ( ) . are allowed, not";
  for (
    const [raw, bad] of [
      ["+7 900 123 45 67 ext 5", '"e", "x", "t"'],
      ["7+9001234567", '"+"'],
      ["++79001234567", '"+"'],
      ["+7 900 123/45/67", '"/"'],
      ["+7 900 123 45 6\u0667", '"\u0667"'],
      ["+7 900 123_45_67", '"_"'],
      ["tel:+79001234567", '"t", "e", "l", ":", "+"'],
      // Named before the count of digits, which letters would otherwise fail first.
      ["12ab", '"a", "b"'],
      ["+7 (900) abc", '"a", "b", "c"'],
      ["+7 900 CALL NOW", '"C", "A", "L", "N", "O", …'],
      ["+7 900\u200b123 45 67", "U+200B"],
    ]
  ) {
    rejects(raw!, `Invalid phone "${raw}": ${reason} ${bad}`);
  }
});

Deno.test("normalizePhone: the error names the given field and quotes at most 40 characters", () => {
  rejects("123", 'Invalid contact_phone "123": must contain 7 to 15 digits', "contact_phone");
  const long = "1".repeat(50);
  rejects(long, `Invalid phone "${"1".repeat(40)}…": must contain 7 to 15 digits`);
});

Deno.test("isValidCountryCode: 1 to 3 digits, not starting with 0", () => {
  for (const cc of ["1", "7", "44", "380", "999"]) assert.equal(isValidCountryCode(cc), true, cc);
  for (const cc of ["", "0", "07", "1234", "a", " 7", "7 ", "+7", "٧"]) assert.equal(isValidCountryCode(cc), false, cc);
});
