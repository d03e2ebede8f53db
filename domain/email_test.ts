import assert from "node:assert/strict";
import { emailKey, normalizeEmail } from "./email.ts";
import { ValidationError } from "./errors.ts";

function rejects(raw: string, reason?: string, field = "email"): void {
  assert.throws(
    () => normalizeEmail(raw, field),
    (e: unknown) =>
      e instanceof ValidationError && e.field === field &&
      e.message.startsWith(`Invalid ${field} "`) && (reason === undefined || e.message.endsWith(`": ${reason}`)),
    raw,
  );
}

Deno.test("normalizeEmail: valid addresses come back trimmed with their case kept", () => {
  assert.equal(normalizeEmail("S.Ivanov@Example.com", "email"), "S.Ivanov@Example.com");
  assert.equal(normalizeEmail("  Anna@Mail.RU \t", "email"), "Anna@Mail.RU");
  for (
    const email of [
      "a@b.ru",
      "user+tag@sub.example.co.uk",
      "first.last@example.com",
      "o'brien@example.ie",
      "x_y-z!#$%&*=?^`{|}~@example.org",
      "1234567890@example.com",
      "user@my-domain.com",
      "user@123.example.com",
      "иван@пример.рф",
      "user@münchen.de",
      "user@xn--80ak6aa92e.com",
      "用户@例子.广告",
      "test@उदाहरण.भारत",
    ]
  ) {
    assert.equal(normalizeEmail(email, "email"), email);
  }
});

Deno.test("normalizeEmail: length limits", () => {
  const local64 = "a".repeat(64);
  assert.equal(normalizeEmail(`${local64}@example.com`, "email"), `${local64}@example.com`);
  rejects(`${local64}a@example.com`, "the part before @ is not valid");
  const label63 = "b".repeat(63);
  assert.equal(normalizeEmail(`a@${label63}.com`, "email"), `a@${label63}.com`);
  rejects(`a@${label63}b.com`, "the domain after @ is not valid");
  // 1 + 1 + 63 + 1 + 63 + 1 + 63 + 1 + 60 = 254 characters.
  const at254 = `a@${label63}.${label63}.${label63}.${"c".repeat(60)}`;
  assert.equal(at254.length, 254);
  assert.equal(normalizeEmail(at254, "email"), at254);
  rejects(`${at254}c`, "at most 254 characters");
});

Deno.test("normalizeEmail: malformed addresses are refused", () => {
  rejects("", "must be one address like name@example.com");
  rejects("plainaddress", "must be one address like name@example.com");
  rejects("a@@b.ru", "must be one address like name@example.com");
  rejects("a@b@c.ru", "must be one address like name@example.com");
  rejects("a@b.ru, c@d.ru", "must be one address like name@example.com");
  for (const raw of ["@b.ru", "a b@c.ru", ".a@b.ru", "a.@b.ru", "a..b@c.ru", 'a"b@c.ru', "a(b)@c.ru", "a\u0001@b.ru"]) {
    rejects(raw, "the part before @ is not valid");
  }
  for (
    const raw of [
      "a@b",
      "a@",
      "a@.ru",
      "a@b.",
      "a@b.ru.",
      "a@b..ru",
      "a@.b.ru",
      "a@-b.ru",
      "a@b-.ru",
      "a@b_c.ru",
      "a@b c.ru",
      "a@b.r u",
      "a@1.2.3.4",
      "a@[127.0.0.1]",
      "a@example.com/x",
    ]
  ) {
    rejects(raw, "the domain after @ is not valid");
  }
});

Deno.test("normalizeEmail: the error names the given field and quotes the raw value", () => {
  rejects("a@b", undefined, "contact_email");
  assert.throws(() => normalizeEmail("a@b", "contact_email"), {
    message: 'Invalid contact_email "a@b": the domain after @ is not valid',
  });
  const long = `${"x".repeat(300)}@example.com`;
  assert.throws(() => normalizeEmail(long, "email"), {
    message: `Invalid email "${"x".repeat(40)}…": at most 254 characters`,
  });
});

Deno.test("emailKey: lower-cases so lookups ignore case", () => {
  assert.equal(emailKey("S.Ivanov@Example.com"), "s.ivanov@example.com");
  assert.equal(emailKey("ИВАН@ПРИМЕР.РФ"), "иван@пример.рф");
  assert.equal(emailKey("a@b.ru"), "a@b.ru");
  assert.equal(emailKey(normalizeEmail(" Anna@Mail.RU ", "email")), emailKey("anna@mail.ru"));
});
