import assert from "node:assert/strict";
import { DEFAULT_CONFIG, loadConfig } from "../config.ts";
import { assertJson, assertRefused, ROOT, tempDir, world } from "./kit.ts";

/** loadConfig over a fixed environment. */
function load(env: Record<string, string>, onDeploy = false) {
  return loadConfig((name) => env[name], onDeploy);
}

Deno.test("loadConfig() defaults: an empty environment gives the documented settings", () => {
  const config = load({});
  assert.deepEqual(config, DEFAULT_CONFIG);
  assert.equal(config.port, 8000);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.kvPath, "./data/loyalty.kv");
  assert.equal(config.defaultCountryCode, "7");
  assert.equal(config.timeZone, "UTC");
  assert.equal(config.authCacheMs, 5000);
  assert.equal(config.directoryCacheMs, 5000);
  assert.equal(config.maxBodyBytes, 1_048_576);
  assert.equal(config.logRequests, true);
});

Deno.test("loadConfig() reads every setting", async (t) => {
  await t.step("each variable sets its field", () => {
    const config = load({
      PORT: "9090",
      HOST: "127.0.0.1",
      KV_PATH: "/var/lib/loyalty/store.kv",
      DEFAULT_COUNTRY_CODE: "49",
      TIME_ZONE: "Europe/Moscow",
      AUTH_CACHE_MS: "0",
      DIRECTORY_CACHE_MS: "250",
      MAX_BODY_BYTES: "2048",
      LOG_REQUESTS: "0",
    });
    assert.equal(config.port, 9090);
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.kvPath, "/var/lib/loyalty/store.kv");
    assert.equal(config.defaultCountryCode, "49");
    assert.equal(config.timeZone, "Europe/Moscow");
    assert.equal(config.authCacheMs, 0);
    assert.equal(config.directoryCacheMs, 250);
    assert.equal(config.maxBodyBytes, 2048);
    assert.equal(config.logRequests, false);
  });

  await t.step("empty values mean the default", () => {
    const empty = Object.fromEntries(
      ["PORT", "HOST", "KV_PATH", "DEFAULT_COUNTRY_CODE", "TIME_ZONE", "AUTH_CACHE_MS", "DIRECTORY_CACHE_MS"]
        .concat(["MAX_BODY_BYTES"]).map((k) => [k, ""]),
    );
    assert.deepEqual(load(empty), DEFAULT_CONFIG);
  });

  await t.step("KV_PATH: a URL or :memory: as given; unset on Deno Deploy means the platform's store", () => {
    assert.equal(load({ KV_PATH: ":memory:" }).kvPath, ":memory:");
    assert.equal(
      load({ KV_PATH: "https://api.deno.com/databases/x/connect" }).kvPath,
      "https://api.deno.com/databases/x/connect",
    );
    assert.equal(load({}, true).kvPath, undefined);
    assert.equal(load({ KV_PATH: "/data/a.kv" }, true).kvPath, "/data/a.kv");
  });

  await t.step("LOG_REQUESTS: 0, false and no (any case) turn the request log off, anything else keeps it", () => {
    for (const off of ["0", "false", "no", "FALSE", "No"]) assert.equal(load({ LOG_REQUESTS: off }).logRequests, false);
    for (const on of ["1", "true", "yes", ""]) assert.equal(load({ LOG_REQUESTS: on }).logRequests, true);
  });
});

Deno.test("loadConfig() refuses a bad value with a message naming the variable and the value", async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: "http" }, 'Invalid PORT "http": must be a whole number'],
    [{ PORT: "-1" }, 'Invalid PORT "-1": must be a whole number'],
    [{ PORT: "80.5" }, 'Invalid PORT "80.5": must be a whole number'],
    [{ AUTH_CACHE_MS: "5s" }, 'Invalid AUTH_CACHE_MS "5s": must be a whole number'],
    [{ DIRECTORY_CACHE_MS: "-5" }, 'Invalid DIRECTORY_CACHE_MS "-5": must be a whole number'],
    [{ MAX_BODY_BYTES: "1e309" }, 'Invalid MAX_BODY_BYTES "1e309": must be a whole number'],
    [{ MAX_BODY_BYTES: "1MB" }, 'Invalid MAX_BODY_BYTES "1MB": must be a whole number'],
    [{ DEFAULT_COUNTRY_CODE: "+7" }, 'Invalid DEFAULT_COUNTRY_CODE "+7": must be 1 to 3 digits'],
    [{ DEFAULT_COUNTRY_CODE: "0" }, 'Invalid DEFAULT_COUNTRY_CODE "0": must be 1 to 3 digits'],
    [{ DEFAULT_COUNTRY_CODE: "1234" }, 'Invalid DEFAULT_COUNTRY_CODE "1234": must be 1 to 3 digits'],
    [{ TIME_ZONE: "Mars/Olympus" }, 'Invalid TIME_ZONE "Mars/Olympus": not an IANA time zone'],
  ];
  for (const [env, message] of cases) {
    await t.step(JSON.stringify(env), () => {
      assert.throws(() => load(env), (e: Error) => e.message === message);
    });
  }
});

Deno.test("settings take effect in the app", async (t) => {
  await t.step("DEFAULT_COUNTRY_CODE prefixes national numbers", async () => {
    await using w = await world({ config: load({ DEFAULT_COUNTRY_CODE: "49", KV_PATH: ":memory:" }) });
    const c = await w.call("POST", "/api/customer/update", { form: { phone: "1701234567" } });
    const read = await w.call("GET", "/api/customer", { query: { id: c.body.id } });
    assert.equal(read.body.customers[0].phone, "491701234567");
  });

  await t.step("TIME_ZONE is the zone of dates on the wire", async () => {
    const now = Date.UTC(2024, 0, 2, 3, 4, 5);
    await using w = await world({ now: () => now, config: load({ TIME_ZONE: "Europe/Moscow", KV_PATH: ":memory:" }) });
    const c = await w.call("POST", "/api/customer/update", { form: { fname: "A" } });
    const read = await w.call("GET", "/api/customer", { query: { id: c.body.id } });
    assert.equal(read.body.customers[0].created_date, "2024-01-02 06:04:05");
  });

  await t.step("MAX_BODY_BYTES: a larger body is 413 and stores nothing", async () => {
    await using w = await world({ config: load({ MAX_BODY_BYTES: "100", KV_PATH: ":memory:" }) });
    await assertRefused(
      w.kv,
      () => w.call("POST", "/api/customer/update", { form: { custom_information: "x".repeat(200) } }),
      { status: 413, info: "Request body is too large: at most 100 bytes" },
    );
    const small = await w.call("POST", "/api/customer/update", { form: { custom_information: "x".repeat(20) } });
    assertJson(small, 200, { success: 1, id: 1, isnew: 1 });
  });
});

Deno.test("deno task start refuses to start on a bad setting and says which", async () => {
  await using dir = await tempDir();
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: ROOT,
    env: { KV_PATH: `${dir.path}/x.kv`, TIME_ZONE: "Europe/Atlantis" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(res.code, 0);
  assert.match(new TextDecoder().decode(res.stderr), /Invalid TIME_ZONE "Europe\/Atlantis": not an IANA time zone/);
});
