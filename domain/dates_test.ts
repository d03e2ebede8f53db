import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkBirthDate,
  computeAge,
  daysInMonth,
  formatDateTime,
  isLeapYear,
  isValidDate,
  isValidTimeZone,
  localDate,
  parseDateTime,
} from "./dates.ts";
import { ValidationError } from "./errors.ts";

const ZONES = [
  "UTC",
  "Etc/UTC",
  "Europe/Moscow",
  "Europe/Berlin",
  "Europe/London",
  "America/New_York",
  "America/Sao_Paulo",
  "Asia/Kolkata",
  "Asia/Kathmandu",
  "Australia/Lord_Howe",
  "Pacific/Chatham",
  "Pacific/Kiritimati",
  "Pacific/Pago_Pago",
];
const MIN_MS = Date.UTC(1900, 0, 2);
const MAX_MS = Date.UTC(2200, 11, 30);

/** An independent reference: the wall clock read from formatToParts. */
function reference(ms: number, timeZone: string): string {
  const f: Record<string, string> = {};
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(ms);
  for (const p of parts) f[p.type] = p.value;
  return `${f.year}-${f.month}-${f.day} ${f.hour}:${f.minute}:${f.second}`;
}

function rejects(raw: string, reason: string, timeZone = "UTC", field = "register_date"): void {
  assert.throws(
    () => parseDateTime(raw, field, timeZone),
    (e: unknown) =>
      e instanceof ValidationError && e.field === field && e.message === `Invalid ${field} "${raw}": ${reason}`,
    raw,
  );
}

Deno.test("formatDateTime: wire format in UTC and in zones", () => {
  const ms = Date.UTC(2016, 6, 18, 10, 54, 37);
  assert.equal(formatDateTime(ms, "UTC"), "2016-07-18 10:54:37");
  assert.equal(formatDateTime(ms, "Etc/UTC"), "2016-07-18 10:54:37");
  assert.equal(formatDateTime(ms, "Europe/Moscow"), "2016-07-18 13:54:37");
  assert.equal(formatDateTime(ms, "America/New_York"), "2016-07-18 06:54:37");
  assert.equal(formatDateTime(ms, "Asia/Kolkata"), "2016-07-18 16:24:37");
  assert.equal(formatDateTime(ms, "Asia/Kathmandu"), "2016-07-18 16:39:37");
  assert.equal(formatDateTime(0, "UTC"), "1970-01-01 00:00:00");
  assert.equal(formatDateTime(Date.UTC(1900, 0, 1), "UTC"), "1900-01-01 00:00:00");
  assert.equal(formatDateTime(Date.UTC(2200, 11, 31, 23, 59, 59), "UTC"), "2200-12-31 23:59:59");
  assert.equal(formatDateTime(Date.UTC(9999, 11, 31, 23, 59, 59, 999), "UTC"), "9999-12-31 23:59:59");
  assert.equal(formatDateTime(Date.UTC(2000, 1, 29, 1, 2, 3), "UTC"), "2000-02-29 01:02:03");
  // Milliseconds are cut, never rounded up.
  assert.equal(formatDateTime(ms + 999, "UTC"), "2016-07-18 10:54:37");
  assert.equal(formatDateTime(ms + 999, "Europe/Moscow"), "2016-07-18 13:54:37");
  assert.equal(formatDateTime(Date.UTC(1950, 5, 1, 12) - 1, "UTC"), "1950-06-01 11:59:59");
});

Deno.test("formatDateTime: midnight is hour 00, never 24", () => {
  assert.equal(formatDateTime(Date.UTC(2024, 0, 1, 21), "Europe/Moscow"), "2024-01-02 00:00:00");
  assert.equal(formatDateTime(Date.UTC(2024, 0, 1, 5), "America/New_York"), "2024-01-01 00:00:00");
  assert.equal(formatDateTime(Date.UTC(2024, 0, 1), "UTC"), "2024-01-01 00:00:00");
  for (const tz of ZONES) {
    for (let h = 0; h < 48; h++) {
      const s = formatDateTime(Date.UTC(2024, 5, 1) + h * 1_800_000, tz);
      assert.ok(!s.includes(" 24:"), `${tz} ${s}`);
    }
  }
});

Deno.test("formatDateTime: agrees with formatToParts in every zone", () => {
  fc.assert(
    fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), fc.constantFrom(...ZONES), (ms, tz) => {
      assert.equal(formatDateTime(ms, tz), reference(ms, tz));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("formatDateTime: an unknown zone is a RangeError", () => {
  assert.throws(() => formatDateTime(0, "Mars/Olympus_Mons"), RangeError);
});

Deno.test("parseDateTime: the three accepted writings", () => {
  const ms = Date.UTC(2016, 6, 18, 10, 54, 37);
  assert.equal(parseDateTime("2016-07-18 13:54:37", "d", "Europe/Moscow"), ms);
  assert.equal(parseDateTime("2016-07-18T13:54:37", "d", "Europe/Moscow"), ms);
  assert.equal(parseDateTime(" 2016-07-18 10:54:37 ", "d", "UTC"), ms);
  assert.equal(parseDateTime("2016-07-18", "d", "UTC"), Date.UTC(2016, 6, 18));
  assert.equal(parseDateTime("2016-07-18", "d", "Europe/Moscow"), Date.UTC(2016, 6, 17, 21));
  assert.equal(parseDateTime("2016-07-18 13:54", "d", "Europe/Moscow"), ms - 37_000);
  assert.equal(parseDateTime("2016-07-18 13:54:37", "d", "Asia/Kathmandu"), Date.UTC(2016, 6, 18, 8, 9, 37));
  assert.equal(parseDateTime("2024-02-29 12:00:00", "d", "UTC"), Date.UTC(2024, 1, 29, 12));
  assert.equal(parseDateTime("2000-02-29", "d", "UTC"), Date.UTC(2000, 1, 29));
  assert.equal(parseDateTime("1900-01-01 00:00:00", "d", "UTC"), Date.UTC(1900, 0, 1));
  assert.equal(parseDateTime("2200-12-31 23:59:59", "d", "UTC"), Date.UTC(2200, 11, 31, 23, 59, 59));
});

Deno.test("parseDateTime: DST changes", async (t) => {
  await t.step("around a change, the offset of the right side is used", () => {
    assert.equal(parseDateTime("2024-03-30 12:00:00", "d", "Europe/Berlin"), Date.UTC(2024, 2, 30, 11));
    assert.equal(parseDateTime("2024-03-31 01:59:59", "d", "Europe/Berlin"), Date.UTC(2024, 2, 31, 0, 59, 59));
    assert.equal(parseDateTime("2024-03-31 03:00:00", "d", "Europe/Berlin"), Date.UTC(2024, 2, 31, 1));
    assert.equal(parseDateTime("2024-03-31 12:00:00", "d", "Europe/Berlin"), Date.UTC(2024, 2, 31, 10));
    assert.equal(parseDateTime("2024-04-01 00:00:00", "d", "Europe/Berlin"), Date.UTC(2024, 2, 31, 22));
    assert.equal(parseDateTime("2024-10-27 03:00:00", "d", "Europe/Berlin"), Date.UTC(2024, 9, 27, 2));
    assert.equal(parseDateTime("2024-10-27 01:59:59", "d", "Europe/Berlin"), Date.UTC(2024, 9, 26, 23, 59, 59));
    assert.equal(parseDateTime("2024-07-01 12:00:00", "d", "America/New_York"), Date.UTC(2024, 6, 1, 16));
    assert.equal(parseDateTime("2024-01-01 12:00:00", "d", "America/New_York"), Date.UTC(2024, 0, 1, 17));
  });
  await t.step("a time skipped in spring moves forward by the gap", () => {
    const berlin = parseDateTime("2024-03-31 02:30:00", "d", "Europe/Berlin");
    assert.equal(berlin, Date.UTC(2024, 2, 31, 1, 30));
    assert.equal(formatDateTime(berlin, "Europe/Berlin"), "2024-03-31 03:30:00");
    const ny = parseDateTime("2024-03-10 02:30:00", "d", "America/New_York");
    assert.equal(ny, Date.UTC(2024, 2, 10, 7, 30));
    assert.equal(formatDateTime(ny, "America/New_York"), "2024-03-10 03:30:00");
    // Lord Howe Island moves by 30 minutes.
    const lh = parseDateTime("2024-10-06 02:15:00", "d", "Australia/Lord_Howe");
    assert.equal(formatDateTime(lh, "Australia/Lord_Howe"), "2024-10-06 02:45:00");
    // São Paulo (2018) skipped midnight: a bare date still parses.
    const sp = parseDateTime("2018-11-04", "d", "America/Sao_Paulo");
    assert.equal(formatDateTime(sp, "America/Sao_Paulo"), "2018-11-04 01:00:00");
  });
  await t.step("a time repeated in autumn is the earlier one", () => {
    assert.equal(parseDateTime("2024-10-27 02:30:00", "d", "Europe/Berlin"), Date.UTC(2024, 9, 27, 0, 30));
    assert.equal(parseDateTime("2024-11-03 01:30:00", "d", "America/New_York"), Date.UTC(2024, 10, 3, 5, 30));
    // Moscow left +04:00 for +03:00 at 02:00 on 26 October 2014.
    assert.equal(parseDateTime("2014-10-26 01:30:00", "d", "Europe/Moscow"), Date.UTC(2014, 9, 25, 21, 30));
    assert.equal(parseDateTime("2014-10-26 02:00:00", "d", "Europe/Moscow"), Date.UTC(2014, 9, 25, 23));
  });
});

Deno.test("parseDateTime: reads back what formatDateTime writes", () => {
  fc.assert(
    fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), fc.constantFrom(...ZONES), (ms, tz) => {
      const text = formatDateTime(ms, tz);
      const back = parseDateTime(text, "d", tz);
      assert.equal(formatDateTime(back, tz), text);
      // Exact unless the wall time is repeated (then the earlier instant is chosen).
      const whole = ms - (ms % 1000 + 1000) % 1000;
      assert.ok(back === whole || (back < whole && whole - back <= 3_600_000), `${tz} ${text}`);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("parseDateTime: impossible dates and times are refused", () => {
  rejects("2023-02-29", "2023-02 has no day 29");
  rejects("1900-02-29 00:00:00", "1900-02 has no day 29");
  rejects("2024-04-31 10:00:00", "2024-04 has no day 31");
  rejects("2024-01-00", "2024-01 has no day 0");
  rejects("2024-01-32", "2024-01 has no day 32");
  rejects("2024-13-01", "there is no month 13");
  rejects("2024-00-10", "there is no month 0");
  for (const raw of ["2024-01-01 25:00:00", "2024-01-01 24:00:00", "2024-01-01 23:60:00", "2024-01-01 23:59:60"]) {
    rejects(raw, "the time must be from 00:00:00 to 23:59:59");
  }
  rejects("1899-12-31 23:59:59", "the year must be from 1900 to 2200");
  rejects("2201-01-01", "the year must be from 1900 to 2200");
  rejects("0000-01-01", "the year must be from 1900 to 2200");
});

Deno.test("parseDateTime: other writings are refused", () => {
  for (
    const raw of [
      "",
      "abc",
      "2024-1-1",
      "2024-01-01 1:00:00",
      "18.07.2016",
      "2016/07/18",
      "2016-07-18  13:54:37",
      "2016-07-18 13:54:37Z",
      "2016-07-18T13:54:37.123",
      "2016-07-18T13:54:37+03:00",
      "2016-07-18 13",
      "1468839277",
      "+2016-07-18",
      "20160718",
      "２０１６-07-18",
    ]
  ) {
    rejects(raw, "must look like YYYY-MM-DD HH:MM:SS");
  }
});

Deno.test("parseDateTime: the error names the given field and quotes at most 40 characters", () => {
  rejects("2023-02-29", "2023-02 has no day 29", "Europe/Moscow", "from_date");
  assert.throws(() => parseDateTime("x".repeat(60), "since", "UTC"), {
    message: `Invalid since "${"x".repeat(40)}…": must look like YYYY-MM-DD HH:MM:SS`,
  });
});

Deno.test("isValidTimeZone", () => {
  for (
    const tz of ["UTC", "Etc/UTC", "Europe/Moscow", "America/New_York", "Asia/Kolkata", "Etc/GMT+3", "europe/moscow"]
  ) {
    assert.equal(isValidTimeZone(tz), true, tz);
  }
  for (const tz of ["", "Mars/Olympus_Mons", "Europe/Mosco", "not a zone", "Europe/Moscow "]) {
    assert.equal(isValidTimeZone(tz), false, tz);
  }
});

Deno.test("localDate: the calendar date in the zone", () => {
  const ms = Date.UTC(2024, 0, 1, 21, 30);
  assert.deepEqual(localDate(ms, "UTC"), { year: 2024, month: 1, day: 1 });
  assert.deepEqual(localDate(ms, "Europe/Moscow"), { year: 2024, month: 1, day: 2 });
  assert.deepEqual(localDate(ms, "America/New_York"), { year: 2024, month: 1, day: 1 });
  assert.deepEqual(localDate(Date.UTC(2023, 11, 31, 23), "Asia/Kolkata"), { year: 2024, month: 1, day: 1 });
  assert.deepEqual(localDate(Date.UTC(2024, 1, 29, 12), "Pacific/Kiritimati"), { year: 2024, month: 3, day: 1 });
});

Deno.test("isLeapYear, daysInMonth, isValidDate: the Gregorian calendar", () => {
  for (const y of [2000, 2024, 1904, 2400, 1600]) assert.equal(isLeapYear(y), true, String(y));
  for (const y of [1900, 2023, 2100, 2200, 1901]) assert.equal(isLeapYear(y), false, String(y));
  assert.deepEqual(
    Array.from({ length: 12 }, (_, i) => daysInMonth(2023, i + 1)),
    [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
  );
  assert.equal(daysInMonth(2024, 2), 29);
  assert.equal(daysInMonth(2024, 13), 0);
  assert.equal(isValidDate(2024, 2, 29), true);
  assert.equal(isValidDate(2000, 2, 29), true);
  assert.equal(isValidDate(2023, 2, 29), false);
  assert.equal(isValidDate(1900, 2, 29), false);
  assert.equal(isValidDate(2023, 2, 28), true);
  assert.equal(isValidDate(2023, 12, 31), true);
  assert.equal(isValidDate(2023, 4, 31), false);
  assert.equal(isValidDate(2023, 2, 31), false);
  assert.equal(isValidDate(2023, 13, 1), false);
  assert.equal(isValidDate(2023, 0, 1), false);
  assert.equal(isValidDate(2023, 1, 0), false);
  assert.equal(isValidDate(2023, 1, 32), false);
  assert.equal(isValidDate(2023, 1.5, 1), false);
  assert.equal(isValidDate(2023, 1, 1.5), false);
  assert.equal(isValidDate(2023.5, 1, 1), false);
  assert.equal(isValidDate(NaN, 1, 1), false);
});

Deno.test("computeAge: completed years", async (t) => {
  const born = { day: 24, month: 10, year: 1992 };
  await t.step("birthday today counts, the day before does not", () => {
    assert.equal(computeAge(born, { year: 2024, month: 10, day: 24 }), 32);
    assert.equal(computeAge(born, { year: 2024, month: 10, day: 23 }), 31);
    assert.equal(computeAge(born, { year: 2024, month: 9, day: 30 }), 31);
    assert.equal(computeAge(born, { year: 2024, month: 11, day: 1 }), 32);
    assert.equal(computeAge(born, { year: 2024, month: 12, day: 31 }), 32);
    assert.equal(computeAge(born, { year: 2025, month: 1, day: 1 }), 32);
  });
  await t.step("born today is 0, born yesterday a year ago is 1", () => {
    assert.equal(computeAge(born, { year: 1992, month: 10, day: 24 }), 0);
    assert.equal(computeAge(born, { year: 1993, month: 10, day: 23 }), 0);
    assert.equal(computeAge(born, { year: 1993, month: 10, day: 24 }), 1);
  });
  await t.step("29 February is reached on 1 March in other years", () => {
    const leap = { day: 29, month: 2, year: 2000 };
    assert.equal(computeAge(leap, { year: 2023, month: 2, day: 28 }), 22);
    assert.equal(computeAge(leap, { year: 2023, month: 3, day: 1 }), 23);
    assert.equal(computeAge(leap, { year: 2024, month: 2, day: 28 }), 23);
    assert.equal(computeAge(leap, { year: 2024, month: 2, day: 29 }), 24);
    assert.equal(computeAge(leap, { year: 2024, month: 3, day: 1 }), 24);
    assert.equal(computeAge(leap, { year: 2100, month: 2, day: 28 }), 99);
    assert.equal(computeAge(leap, { year: 2100, month: 3, day: 1 }), 100);
    assert.equal(computeAge(leap, { year: 2000, month: 2, day: 29 }), 0);
    // 28 February and 1 March birthdays are unaffected by leap years.
    assert.equal(computeAge({ day: 28, month: 2, year: 2000 }, { year: 2023, month: 2, day: 28 }), 23);
    assert.equal(computeAge({ day: 1, month: 3, year: 2000 }, { year: 2024, month: 2, day: 29 }), 23);
    assert.equal(computeAge({ day: 1, month: 3, year: 2000 }, { year: 2024, month: 3, day: 1 }), 24);
  });
  await t.step("missing parts or a future birth date give null", () => {
    const today = { year: 2024, month: 6, day: 15 };
    assert.equal(computeAge({ day: 1, month: 3, year: null }, today), null);
    assert.equal(computeAge({ day: null, month: 3, year: 1990 }, today), null);
    assert.equal(computeAge({ day: 1, month: null, year: 1990 }, today), null);
    assert.equal(computeAge({ day: null, month: null, year: null }, today), null);
    assert.equal(computeAge({ day: 16, month: 6, year: 2024 }, today), null);
    assert.equal(computeAge({ day: 1, month: 1, year: 2025 }, today), null);
    assert.equal(computeAge({ day: 15, month: 6, year: 2024 }, today), 0);
  });
});

function rejectsBirth(
  b: { day: number | null; month: number | null; year: number | null },
  field: string,
  message: string,
  prefix?: string,
): void {
  const today = { year: 2024, month: 6, day: 15 };
  assert.throws(
    () => checkBirthDate(b, today, prefix),
    (e: unknown) => e instanceof ValidationError && e.field === field && e.message === message,
    JSON.stringify(b),
  );
}

Deno.test("checkBirthDate: possible dates, full or partial, pass", () => {
  const today = { year: 2024, month: 6, day: 15 };
  const ok = [
    { day: 24, month: 10, year: 1992 },
    { day: 29, month: 2, year: 2000 },
    { day: 29, month: 2, year: 2024 },
    { day: 29, month: 2, year: null },
    { day: 31, month: 12, year: null },
    { day: null, month: null, year: 1990 },
    { day: null, month: 2, year: null },
    { day: 31, month: null, year: null },
    { day: 31, month: null, year: 1990 },
    { day: null, month: 6, year: 2024 },
    { day: 15, month: 6, year: 2024 },
    { day: 15, month: null, year: 2024 },
    { day: null, month: null, year: 2024 },
    { day: null, month: null, year: null },
    { day: 1, month: 1, year: 1900 },
  ];
  for (const b of ok) assert.doesNotThrow(() => checkBirthDate(b, today), JSON.stringify(b));
});

Deno.test("checkBirthDate: impossible dates name the wrong part", () => {
  rejectsBirth({ day: 31, month: 2, year: 2000 }, "birth_day", 'Invalid birth_day "31": 2000-02 has no day 31');
  rejectsBirth({ day: 29, month: 2, year: 2023 }, "birth_day", 'Invalid birth_day "29": 2023-02 has no day 29');
  rejectsBirth({ day: 29, month: 2, year: 1900 }, "birth_day", 'Invalid birth_day "29": 1900-02 has no day 29');
  rejectsBirth({ day: 31, month: 4, year: 1990 }, "birth_day", 'Invalid birth_day "31": 1990-04 has no day 31');
  rejectsBirth({ day: 30, month: 2, year: null }, "birth_day", 'Invalid birth_day "30": month 2 has no day 30');
  rejectsBirth({ day: 31, month: 11, year: null }, "birth_day", 'Invalid birth_day "31": month 11 has no day 31');
  rejectsBirth(
    { day: 32, month: null, year: null },
    "birth_day",
    'Invalid birth_day "32": must be a whole number from 1 to 31',
  );
  rejectsBirth(
    { day: 0, month: 1, year: 1990 },
    "birth_day",
    'Invalid birth_day "0": must be a whole number from 1 to 31',
  );
  rejectsBirth(
    { day: 1.5, month: 1, year: 1990 },
    "birth_day",
    'Invalid birth_day "1.5": must be a whole number from 1 to 31',
  );
  rejectsBirth(
    { day: null, month: 13, year: null },
    "birth_month",
    'Invalid birth_month "13": must be a whole number from 1 to 12',
  );
  rejectsBirth(
    { day: 1, month: 0, year: 1990 },
    "birth_month",
    'Invalid birth_month "0": must be a whole number from 1 to 12',
  );
  rejectsBirth(
    { day: null, month: null, year: 1899 },
    "birth_year",
    'Invalid birth_year "1899": must be a whole number from 1900 to 2200',
  );
  rejectsBirth(
    { day: 1, month: 1, year: 2201 },
    "birth_year",
    'Invalid birth_year "2201": must be a whole number from 1900 to 2200',
  );
});

Deno.test("checkBirthDate: a birth date after today is refused on the year", () => {
  const future = "the birth date is in the future";
  rejectsBirth({ day: 16, month: 6, year: 2024 }, "birth_year", `Invalid birth_year "2024": ${future}`);
  rejectsBirth({ day: 1, month: 7, year: 2024 }, "birth_year", `Invalid birth_year "2024": ${future}`);
  rejectsBirth({ day: null, month: 7, year: 2024 }, "birth_year", `Invalid birth_year "2024": ${future}`);
  // Day and year only: even January would be later than 10 January.
  assert.throws(() => checkBirthDate({ day: 20, month: null, year: 2024 }, { year: 2024, month: 1, day: 10 }), {
    name: "ValidationError",
    message: `Invalid birth_year "2024": ${future}`,
  });
  assert.doesNotThrow(() => checkBirthDate({ day: 20, month: null, year: 2024 }, { year: 2024, month: 1, day: 20 }));
  rejectsBirth({ day: null, month: null, year: 2025 }, "birth_year", `Invalid birth_year "2025": ${future}`);
  rejectsBirth({ day: 1, month: 1, year: 2025 }, "birth_year", `Invalid birth_year "2025": ${future}`);
});

Deno.test("checkBirthDate: a field prefix renames the fields", () => {
  rejectsBirth(
    { day: 30, month: 2, year: null },
    "child_day",
    'Invalid child_day "30": month 2 has no day 30',
    "child_",
  );
  rejectsBirth(
    { day: null, month: null, year: 2030 },
    "child_year",
    'Invalid child_year "2030": the birth date is in the future',
    "child_",
  );
});

Deno.test("formatDateTime() in UTC writes what toISOString says, from 1970 to 9999 and outside it", () => {
  const viaDate = (ms: number) => {
    const iso = new Date(ms).toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  };
  const probes = [
    0,
    999,
    86_399_999,
    86_400_000,
    951_782_400_000, // 2000-02-29
    951_868_799_999,
    4_107_542_399_000, // 2100-02-28 23:59:59
    253_402_300_799_999,
    253_402_300_800_000,
    -1,
    -86_400_001,
  ];
  for (let i = 0; i < 100_000; i++) probes.push(Math.floor(Math.random() * 253_402_300_800_000));
  for (const ms of probes) assert.equal(formatDateTime(ms, "UTC"), viaDate(ms), `at ${ms}`);
});
