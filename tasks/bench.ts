// deno-lint-ignore-file no-console
/**
 * `deno task bench [--quick]`: seeds a fresh store, starts the real service and a bare baseline server as
 * separate processes, drives both with wrk over loopback, and prints (and writes to bench/results.md)
 * requests/s, p50/p99 latency and each scenario's ratio to its baseline measured in the same run.
 * `--quick` uses a small store and short runs, and exits non-zero when a ratio drops below half its target.
 * The expiry job is timed in-process over its own store of balances made of expired lots (bench/expire_run.ts).
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { SERVICE_V8_FLAGS } from "../server/v8_flags.ts";
import { cardKeys, keys } from "../storage/keys.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { createStore } from "../storage/store.ts";
import { createAdminUser, saveDirectoryEntry, signIn } from "../usecases/mod.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { seedExtras } from "../bench/seed_extras.ts";
import { barcodeTableLua, cpuSeconds, freePort, untilServing } from "../bench/common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    large: { type: "boolean", default: false },
    customers: { type: "string" },
    duration: { type: "string" },
    rounds: { type: "string" },
    out: { type: "string" },
  },
});
const quick = values.quick!;
/** `--large`: a store of 1,000,000 customers, seeded once into LARGE_STORE and reused by later runs; not in CI. */
const large = values.large!;
const N = Number(values.customers ?? (quick ? 5_000 : large ? 1_000_000 : 100_000));
/** Where `--large` keeps its seeded store between runs (LARGE_STORE overrides). */
const LARGE_STORE = Deno.env.get("LARGE_STORE") ?? `${Deno.env.get("TMPDIR") ?? "/tmp"}/loyalty-bench-large-${N}.kv`;
const DURATION = Number(values.duration ?? 2);
/** Every write scenario runs this many times, interleaved with its baseline; the table shows medians. */
const ROUNDS = Number(values.rounds ?? (quick ? 3 : 5));
/** Rounds of the read scenarios: more than of the writes, since their targets are ratios within a tenth of 1. */
const READ_ROUNDS = Number(values.rounds ?? (quick ? 3 : 7));
/**
 * Pairs of the logging row (logging on and off driven at once), 2 s each. One pair's difference spreads over about
 * ±5 us on this machine, so the median of 9 moved from 0.9 to 5.3 us between runs of one build; 21 narrow it by half.
 */
const LOGGING_PAIRS = quick ? 3 : 21;
/** Seconds of unmeasured load before the first measured run of each scenario (0 in the quick run). */
const WARMUP = quick ? 0 : 1;
const OUT = values.out ??
  (quick ? null : new URL(large ? "../bench/results_large.md" : "../bench/results.md", import.meta.url).pathname);
const ROOT = new URL("..", import.meta.url).pathname;
const COMPANY = "bench";
/** Balances of 5 expired lots each that the expiry benchmark writes off. */
const EXPIRE_CUSTOMERS = quick ? 10_000 : 100_000;
/** The JS heap the expiry process may use, MB: it runs out if the job's memory grows with the store. */
const EXPIRE_HEAP_MB = 64;
/** Written under the table: why the 1.5x multi-core row is reported, not gated. */
const NOTE = "Note: with wrk on the same two cores, one worker already keeps about 1.4 cores busy, so even the bare " +
  "baseline scales about 1.0x on two workers here; the 1.5x multi-core target needs more cores than the load " +
  "generator takes away (docs/performance.md, One machine, many cores). The service's scaling relative to the bare server's is gated " +
  "in CI at half its target.";

async function ensureWrk(): Promise<string> {
  for (const path of ["/usr/bin/wrk", "/usr/local/bin/wrk"]) {
    try {
      await Deno.stat(path);
      return path;
    } catch { /* look further */ }
  }
  throw new Error("wrk is not installed: run `apt-get install -y wrk` (Debian) and try again");
}

function phoneOf(i: number): string {
  return `79${String(i).padStart(9, "0")}`;
}

/** Seeds N customers (every 10th without a phone, every 7th without an email) in 10 groups. */
async function seed(kvPath: string): Promise<{ key: string }> {
  const kv = await Deno.openKv(kvPath);
  const now = Date.now();
  // The service runs with its default settings; the bench's key carries its own rate limit, far above what wrk
  // sends (as an operator would give a till's key with `deno task apikey`), so the limiter still runs per request.
  const { key } = await createApiKey(kv, {
    companyId: COMPANY,
    userId: 1,
    access: "write",
    now,
    rateLimit: { per_second: 100_000_000, burst: 100_000_000 },
  });
  const store = createStore(kv, { clock: () => now });
  const actor = { companyId: COMPANY, name: "task:bench", userId: 1 };
  for (let g = 1; g <= 10; g++) await saveDirectoryEntry(store, actor, { kind: "groups", name: `Group ${g}` });
  const batch: Customer[] = [];
  const flush = async () => {
    await rawInsertCustomers(kv, COMPANY, batch);
    batch.length = 0;
  };
  for (let i = 1; i <= N; i++) {
    batch.push({
      ...blankCustomer(i, { now, userId: 1 }),
      external_id: `EXT${i}`,
      fname: "Сергей",
      lname: "Иванов",
      mname: "Степанович",
      email: i % 7 === 0 ? null : `user${i}@example.com`,
      phone: i % 10 === 0 ? null : phoneOf(i),
      gender: i % 2 ? "M" : "F",
      custom_information: "очень требовательный",
      birth_day: (i % 28) + 1,
      birth_month: (i % 12) + 1,
      birth_year: 1950 + (i % 50),
      accumulated_sales: i * 100,
      send_push: true,
      send_email: true,
      group_id: (i % 10) + 1,
    });
    if (batch.length === 5000) await flush();
  }
  await flush();
  await seedExtras(kv, COMPANY, { customers: N, now });
  // Purchases accrue 5% in program 1.
  await saveDirectoryEntry(store, actor, { kind: "bonus_programs", id: 1, settings: { accrual_percent: 500 } });
  kv.close();
  return { key };
}

interface Server {
  url: string;
  process: Deno.ChildProcess;
}

/** Log lines the logging service wrote to its stdout pipe (drained by the bench, as a log collector would). */
let logLines = 0;

async function start(args: string[], env: Record<string, string>, port: number, logs = false): Promise<Server> {
  const process = new Deno.Command(Deno.execPath(), {
    args: args[0] === "serve" ? ["serve", "--port", String(port), ...args.slice(1)] : args,
    env: { ...env, PORT: String(port) },
    cwd: ROOT,
    stdout: logs ? "piped" : "null",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  if (logs) {
    (async () => {
      for await (const chunk of process.stdout) for (const b of chunk) if (b === 10) logLines++;
    })().catch(() => {});
  }
  const url = `http://127.0.0.1:${port}`;
  await untilServing(url, `Server ${args.join(" ")}`);
  return { url, process };
}

/** Lines of `deno task verify`'s output the bench prints at most (progress lines aside). */
const VERIFY_LINES = 40;

/** Reads a stream of text lines to its end, keeping up to `limit` that are not verify's progress; returns how many. */
async function keepLines(stream: ReadableStream<Uint8Array>, into: string[], limit: number): Promise<number> {
  const decoder = new TextDecoder();
  let rest = "";
  let count = 0;
  const take = (line: string) => {
    if (line === "" || line.startsWith("verify: ")) return;
    count++;
    if (into.length < limit) into.push(line);
  };
  for await (const chunk of stream) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    lines.forEach(take);
  }
  take(rest + decoder.decode());
  return count;
}

function peakRssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? "0");
  return kb / 1024;
}

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Requests answered with a 2xx status. */
  ok: number;
  /** CPU cores the server process used on average while the scenario ran. */
  cores: number;
  /** wrk's output (a script's `done` lines included). */
  out?: string;
  /** Peak RSS of the service after this scenario, MB. */
  rss?: number;
}

function ms(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : n;
}

async function wrk(
  name: string,
  options: {
    url: string;
    lua: string;
    connections?: number;
    seconds?: number;
    base?: number;
    pid?: number;
    /** Lua run once when wrk loads the script, before `request` (tables the requests pick from). */
    head?: string;
    /** Lua appended after `request` (a `response` or `done` function). */
    tail?: string;
  },
) {
  const cpuBefore = options.pid ? cpuSeconds(options.pid) : 0;
  const wallBefore = performance.now();
  const dir = await Deno.makeTempDir();
  const script = `${dir}/s.lua`;
  await Deno.writeTextFile(
    script,
    `math.randomseed(42)\nlocal n = ${options.base ?? 0}\nlocal N = ${N}\nlocal RUN = ${RUN}\n${
      options.head ?? ""
    }request = function()\n  n = n + 1\n  local id = math.random(1, N)\n${options.lua}\nend\n${options.tail ?? ""}`,
  );
  const out = await new Deno.Command(await ensureWrk(), {
    args: [
      "-t1",
      `-c${options.connections ?? 50}`,
      `-d${options.seconds ?? DURATION}s`,
      "--latency",
      // The naive retry loop's tail runs past wrk's 2 s default; count it as latency, not as an error.
      "--timeout",
      "10s",
      "-s",
      script,
      options.url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? "0");
  const p50 = /50%\s+([\d.]+)(us|ms|s)/.exec(text);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? "0");
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = non2xx + (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const total = Number(/(\d+) requests in/.exec(text)?.[1] ?? "0");
  const cores = options.pid ? (cpuSeconds(options.pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000) : NaN;
  const result: Result = {
    name,
    out: text,
    rps,
    p50: p50 ? ms(p50[1]!, p50[2]!) : NaN,
    p99: p99 ? ms(p99[1]!, p99[2]!) : NaN,
    errors,
    ok: total - non2xx,
    cores,
  };
  console.log(
    `  ${name.padEnd(28)} ${rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50.toFixed(2)} ms  p99 ${
      result.p99.toFixed(2)
    } ms  server CPU ${result.cores.toFixed(2)} cores${errors ? `  errors ${errors}` : ""}`,
  );
  return result;
}

/** Salt of this run's unique values (phones, emails, order ids), so runs over a reused `--large` store never clash. */
const RUN = Date.now() % 1000;

const get = (path: string) => `  return wrk.format("GET", ${path})`;
const post = (path: string, body: string) =>
  `  return wrk.format("POST", ${path}, {["Content-Type"] = "application/x-www-form-urlencoded"}, ${body})`;

/** What the expiry benchmark measured (bench/expire_run.ts). */
interface ExpiryResult {
  balances: number;
  lots: number;
  secondRun: number;
  seconds: number;
  lotsPerSecond: number;
  rssBeforeMb: number;
  rssPeakMb: number;
}

/** Seeds EXPIRE_CUSTOMERS balances of 5 expired lots in a store of their own, then times the expiry over them. */
async function benchExpiry(kvPath: string): Promise<ExpiryResult> {
  const script = new URL("../bench/expire_run.ts", import.meta.url).pathname;
  const run = async (args: string[], flags: string[] = []) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-kv", ...flags, script, ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error(`bench/expire_run.ts ${args[0]} failed`);
    return new TextDecoder().decode(out.stdout);
  };
  console.log(`Expiry: seeding ${EXPIRE_CUSTOMERS} balances x 5 expired lots ...`);
  await run(["seed", kvPath, String(EXPIRE_CUSTOMERS), "5"]);
  const result = JSON.parse(await run(["expire", kvPath], [`--v8-flags=--max-old-space-size=${EXPIRE_HEAP_MB}`]));
  console.log(
    `  ${"expire".padEnd(28)} ${result.lots} lots in ${result.seconds.toFixed(1)} s: ${
      result.lotsPerSecond.toFixed(0)
    } lots/s, peak RSS ${result.rssPeakMb.toFixed(0)} MB`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------------------
const started = performance.now();
const dir = await Deno.makeTempDir({ prefix: "loyalty-bench-" });
const kvPath = large ? LARGE_STORE : `${dir}/bench.kv`;
/** Seeds the store, or with `--large` reuses the one an earlier run seeded (its key is kept beside it). */
async function seeded(): Promise<string> {
  if (large) {
    try {
      const key = (await Deno.readTextFile(`${kvPath}.key`)).trim();
      console.log(`Reusing the ${N}-customer store ${kvPath} (delete it and ${kvPath}.key to seed afresh)`);
      return key;
    } catch { /* not seeded yet */ }
  }
  console.log(`Seeding ${N} customers into ${kvPath} ...`);
  const { key } = await seed(kvPath);
  if (large) await Deno.writeTextFile(`${kvPath}.key`, key);
  console.log(`  seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return key;
}
const key = await seeded();

/** A back-office session (a viewer of the bench company) for the last-name search row: its cookie. */
async function backOfficeCookie(): Promise<string> {
  const kv = await Deno.openKv(kvPath);
  try {
    const store = createStore(kv);
    const login = `bench${Date.now()}`;
    const password = "bench-password-1";
    await createAdminUser(store, { companyId: COMPANY, name: "task:bench", userId: 1 }, {
      login,
      role: "viewer",
      password,
      iterations: 1000,
    });
    const signed = await signIn(store, { companyId: COMPANY, login, password, address: "bench", iterations: 1000 });
    if (!signed) throw new Error("bench: the back-office sign-in failed");
    return `bo_session=${signed.token}`;
  } finally {
    kv.close();
  }
}
const cookie = await backOfficeCookie();

// The service runs as shipped: every setting at its default (request logging on, to a pipe the bench drains, as a
// log collector would), only the store path and the port given. COMPANY and INSERT_FROM are read by the baseline.
const env: Record<string, string> = {
  KV_PATH: kvPath,
  COMPANY,
  INSERT_FROM: String(N * 10 + (large ? (Date.now() % 1_000_000) * 100_000 : 1)),
};
/** The service's settings as it loads them, for the report. */
const shipped = loadConfig((name) => ({ ...env, HOST: "127.0.0.1" } as Record<string, string | undefined>)[name]);
const configLine = Object.entries(shipped).filter(([k]) => !["kvPath", "port", "host"].includes(k))
  .map(([k, v]) => `${k}=${v}`).join(", ");
console.log(`Service configuration (defaults): ${configLine}`);
const baseline = await start(
  ["serve", "-A", "--unstable-kv", "--host", "127.0.0.1", "bench/baseline_server.ts"],
  env,
  freePort(),
);
// The service as `deno task start` runs it: behind the connection guard (serve.ts), with its V8 flags.
const v8 = `--v8-flags=${SERVICE_V8_FLAGS.join(",")}`;
const app = await start(
  ["run", "-A", "--unstable-kv", v8, "serve.ts"],
  { ...env, HOST: "127.0.0.1" },
  freePort(),
  true,
);
// The same with request logging off: the logging row compares the two.
const quiet = await start(
  ["run", "-A", "--unstable-kv", v8, "serve.ts"],
  { ...env, HOST: "127.0.0.1", LOG_REQUESTS: "0" },
  freePort(),
);
const results = new Map<string, Result>();
/** The till's day: reads, pages, balance changes, purchases, creates and card inserts at 64 connections. */
const MIXED = "mixed load (till's day), 64 conns";
/** Lua of one mixed-load request: 50% reads (id, phone, card), 15% pages, 20% bonus changes and purchases, 10% creates, 5% card inserts. */
const mixLua = (k: string) => {
  const pages = Math.max(1, Math.floor(N / 50) - 1);
  const form = (path: string, body: string) =>
    `    return wrk.format("POST", ${path}, {["Content-Type"] = "application/x-www-form-urlencoded"}, ${body})`;
  return `  local r = n % 100
  if r < 20 then
    return wrk.format("GET", "/api/customer?id=" .. id .. ${k})
  elseif r < 35 then
    if id % 10 == 0 then id = id + 1 end
    return wrk.format("GET", "/api/customer?phone=%2B" .. string.format("79%09d", id) .. ${k})
  elseif r < 50 then
    return wrk.format("GET", "/api/customer?card_barcode=" .. barcodes[id] .. ${k})
  elseif r < 65 then
    return wrk.format("GET", "/api/customer?page=" .. (id % ${pages} + 1) .. "&page_size=50" .. ${k})
  elseif r < 75 then
${form(`"/api/customer/updateBonus?apikey=${key}"`, `"customer_id=" .. id .. "&bonus_id=1&amount=0.01"`)}
  elseif r < 85 then
${
    form(
      `"/api/purchase?apikey=${key}"`,
      `"customer_id=" .. id .. "&bonus_id=1&order_id=M" .. RUN .. "-" .. n .. "&amount=100"`,
    )
  }
  elseif r < 95 then
${
    form(
      `"/api/customer/update?apikey=${key}"`,
      `"phone=%2B9" .. string.format("%03d%08d", RUN, n) .. "&email=mix" .. RUN .. "-" .. n .. "%40example.org&fname=Mix"`,
    )
  }
  else
${form(`"/api/customer/insertCard?apikey=${key}"`, `"customer_id=" .. id`)}
  end`;
};
/** Lua collecting the ids of acknowledged creates and card inserts, printed by `done` for the "nothing lost" check. */
const MIX_TAIL = `creates = ""
cards = ""
response = function(status, headers, body)
  if status ~= 200 then return end
  local card = string.match(body, '"card_id":(%d+)')
  if card then cards = cards .. card .. "," return end
  local id = string.match(body, '^{"success":1,"id":(%d+),"isnew":1}')
  if id then creates = creates .. id .. "," end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write("CREATED " .. t:get("creates") .. "\\n")
    io.write("CARDS " .. t:get("cards") .. "\\n")
  end
end
`;
const k = `"&apikey=${key}"`;
const deepPage = quick ? Math.max(2, Math.floor((N * 0.9 * 0.8) / 200)) : large ? 3600 : 400;

try {
  const parallel = await start(
    ["serve", "--parallel", "-A", "--unstable-kv", v8, "--host", "127.0.0.1", "main.ts"],
    { ...env, DENO_JOBS: "2" },
    freePort(),
  );
  // The bare baseline on two workers too: how far this machine lets any server scale while wrk shares its cores.
  const parallelBaseline = await start(
    ["serve", "--parallel", "-A", "--unstable-kv", "--host", "127.0.0.1", "bench/baseline_server.ts"],
    { ...env, DENO_JOBS: "2" },
    freePort(),
  );
  const scenarios: { name: string; options: Parameters<typeof wrk>[1] }[] = [
    { name: "baseline: 1 kv.get", options: { url: baseline.url, lua: get(`"/get?n=1&id=" .. id`) } },
    { name: "customer by id (json)", options: { url: app.url, lua: get(`"/api/customer?id=" .. id .. ${k}`) } },
    {
      name: "customer by id (json), logging off",
      options: { url: quiet.url, lua: get(`"/api/customer?id=" .. id .. ${k}`) },
    },
    {
      name: "customer by id (xml)",
      options: { url: app.url, lua: get(`"/api/customer?format=xml&id=" .. id .. ${k}`) },
    },
    { name: "baseline: 2 kv.get", options: { url: baseline.url, lua: get(`"/get?n=2&id=" .. id`) } },
    {
      name: "customer by phone",
      options: {
        url: app.url,
        lua: `  if id % 10 == 0 then id = id + 1 end\n` +
          get(`"/api/customer?phone=%2B" .. string.format("79%09d", id) .. ${k}`),
      },
    },
    {
      name: "customer by email",
      options: {
        url: app.url,
        lua: `  if id % 7 == 0 then id = id + 1 end\n` +
          get(`"/api/customer?email=user" .. id .. "%40example.com" .. ${k}`),
      },
    },
    {
      name: "customer by external_id",
      options: { url: app.url, lua: get(`"/api/customer?external_id=EXT" .. id .. ${k}`) },
    },
    {
      name: "customer by card barcode",
      options: {
        url: app.url,
        head: barcodeTableLua(N),
        lua: get(`"/api/customer?card_barcode=" .. barcodes[id] .. ${k}`),
      },
    },
    {
      // The back office's search as you type: every lookup a typed text can be, the last-name prefix among them
      // (the seeded customers are all "Иванов", so the prefix finds 20 and the page shows 10).
      name: "back-office search by last name",
      options: {
        url: app.url,
        lua: `  return wrk.format("GET", "/admin/suggest?q=%D0%98%D0%B2%D0%B0%D0%BD", {["Cookie"] = "${cookie}"})`,
      },
    },
    {
      name: "page 1 x200 cards+bonuses",
      options: {
        url: app.url,
        connections: 1,
        lua: get(`"/api/customer?page=1&page_size=200&cards=1&bonuses=1" .. ${k}`),
      },
    },
    {
      name: "32 at once: page x200 cards+bonuses",
      options: {
        url: app.url,
        connections: 32,
        lua: get(
          `"/api/customer?page=" .. (id % ${
            Math.max(1, Math.floor(N / 200))
          } + 1) .. "&page_size=200&cards=1&bonuses=1" .. ${k}`,
        ),
      },
    },
    {
      name: "page 1 x200 with_phone",
      options: { url: app.url, connections: 1, lua: get(`"/api/customer?page=1&page_size=200&with_phone=1" .. ${k}`) },
    },
    {
      name: `page ${deepPage} x200 with_phone`,
      options: {
        url: app.url,
        connections: 1,
        lua: get(`"/api/customer?page=${deepPage}&page_size=200&with_phone=1" .. ${k}`),
      },
    },
    { name: "baseline: naive retry loop", options: { url: baseline.url, lua: post(`"/naive?id=1"`, `""`) } },
    {
      name: "updateBonus, 1 customer",
      options: {
        url: app.url,
        lua: post(`"/api/customer/updateBonus?customer_id=1&bonus_id=1&amount=0.01" .. ${k}`, `""`),
      },
    },
    {
      name: "updateBonus, random customers",
      options: {
        url: app.url,
        lua: post(`"/api/customer/updateBonus?customer_id=" .. id .. "&bonus_id=1&amount=0.01" .. ${k}`, `""`),
      },
    },
    {
      name: "purchase, random customers",
      options: {
        url: app.url,
        lua: post(
          `"/api/purchase?apikey=${key}"`,
          `"customer_id=" .. id .. "&bonus_id=1&order_id=B" .. RUN .. "-" .. n .. "&amount=100"`,
        ),
      },
    },
    { name: "baseline: raw atomic insert", options: { url: baseline.url, lua: post(`"/insert?i=" .. n`, `""`) } },
    {
      name: "create customer",
      options: {
        url: app.url,
        lua: post(
          `"/api/customer/update?apikey=${key}"`,
          `"phone=%2B8" .. string.format("%03d%08d", RUN, n) .. "&email=new" .. RUN .. "-" .. n .. "%40example.org&external_id=NEW" .. RUN .. "-" .. n .. "&fname=New"`,
        ),
      },
    },
    {
      name: MIXED,
      options: { url: app.url, connections: 64, head: barcodeTableLua(N), lua: mixLua(k), tail: MIX_TAIL },
    },
    {
      name: "customer by id, 2 workers",
      options: { url: parallel.url, lua: get(`"/api/customer?id=" .. id .. ${k}`) },
    },
    { name: "baseline: 1 kv.get, 2 workers", options: { url: parallelBaseline.url, lua: get(`"/get?n=1&id=" .. id`) } },
  ];
  /** The balance of customer 1 in program 1 (kopecks) and the number of its ledger entries. */
  const ledgerOf = async () => {
    const res = await fetch(`${app.url}/api/customer/bonusHistory?customer_id=1&bonus_id=1&page_size=1&apikey=${key}`);
    const body = await res.json();
    return { balance: Math.round(Number(body.balance) * 100), entries: Number(body.total_count) };
  };
  const before = await ledgerOf();
  const rounds: Map<string, Result[]> = new Map();
  // Reads first, all rounds, then writes: writes grow SQLite's write-ahead log, which slows every read that
  // follows until it is checkpointed, so interleaving them would measure the log, not the service.
  const writes = new Set([
    MIXED,
    "baseline: naive retry loop",
    "updateBonus, 1 customer",
    "updateBonus, random customers",
    "purchase, random customers",
    "baseline: raw atomic insert",
    "create customer",
  ]);
  const runRound = async (list: typeof scenarios, round: number) => {
    for (const { name, options } of list) {
      // Let writes still queued from the previous scenario finish first, then warm the server up on this very
      // scenario (JIT, SQLite page cache) without measuring, so that rounds measure steady state.
      await new Promise((r) => setTimeout(r, 500));
      if (WARMUP && round === 0) {
        await wrk(`(warm-up) ${name}`, { ...options, seconds: WARMUP, base: round * 10_000_000 + 5_000_000 });
      }
      const pid = [app, quiet, parallel, parallelBaseline, baseline].find((s) => s.url === options.url)!.process.pid;
      const r = await wrk(name, { ...options, base: round * 10_000_000, pid });
      if (options.url === app.url) r.rss = peakRssMb(app.process.pid);
      rounds.set(name, [...(rounds.get(name) ?? []), r]);
    }
  };
  /**
   * The logging row's pairs: the service with logging on and the same with it off, driven at the same time (wrk
   * -c25 each, the two started in turn first), so both readings of a pair see the same machine; CPU microseconds per
   * request, on less off, one number per pair. Run sequentially, minutes of other jobs' load fell between the two
   * readings of a round and moved the difference by more than the 3 us it measures.
   *
   * Both are fresh processes started for the pairs and warmed up alike, so they differ in LOG_REQUESTS alone. The
   * as-shipped process has served every read scenario by then (pages, searches, lookups of every kind): against a
   * process that had served only reads by id, that history alone cost about 1.5 us per read by id (16 pairs of two
   * logging-off processes), which the row then counted as logging's.
   */
  const loggingPairs: number[] = [];
  const runLoggingPairs = async () => {
    const lua = get(`"/api/customer?id=" .. id .. ${k}`);
    console.log(`Logging on - off: ${LOGGING_PAIRS} pairs, two fresh services at once:`);
    const serviceArgs = ["run", "-A", "--unstable-kv", v8, "serve.ts"];
    const loud = await start(serviceArgs, { ...env, HOST: "127.0.0.1" }, freePort(), true);
    const still = await start(serviceArgs, { ...env, HOST: "127.0.0.1", LOG_REQUESTS: "0" }, freePort());
    try {
      const on = { url: loud.url, lua, connections: 25, pid: loud.process.pid };
      const off = { ...on, url: still.url, pid: still.process.pid };
      await Promise.all([
        wrk("(warm-up) logging on", { ...on, seconds: WARMUP + 1, base: 899_000_000 }),
        wrk("(warm-up) logging off", { ...off, seconds: WARMUP + 1, base: 899_500_000 }),
      ]);
      for (let i = 0; i < LOGGING_PAIRS; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const base = 900_000_000 + i * 1_000_000;
        const runOn = () => wrk("(pair) logging on", { ...on, base });
        const runOff = () => wrk("(pair) logging off", { ...off, base });
        // The two start in turn, and which starts first alternates.
        const [a, b] = i % 2 === 0
          ? await Promise.all([runOn(), runOff()])
          : (await Promise.all([runOff(), runOn()])).reverse();
        loggingPairs.push((a!.cores / a!.rps - b!.cores / b!.rps) * 1e6);
      }
    } finally {
      for (const s of [loud, still]) {
        s.process.kill();
        await s.process.status;
      }
    }
    console.log(`  on - off per pair: ${loggingPairs.map((d) => d.toFixed(1)).join(", ")} us CPU/request`);
  };
  const phases = [scenarios.filter((s) => !writes.has(s.name)), scenarios.filter((s) => writes.has(s.name))];
  for (const [phase, list] of phases.entries()) {
    const count = phase === 0 ? READ_ROUNDS : ROUNDS;
    for (let round = 0; round < count; round++) {
      console.log(`${phase === 0 ? "Reads" : "Writes"}, round ${round + 1} of ${count}:`);
      await runRound(list, round);
    }
    if (phase === 0) await runLoggingPairs();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, rs] of rounds) {
    if (rs.length === 0) continue;
    results.set(name, {
      name,
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      errors: rs.reduce((a, x) => a + x.errors, 0),
      ok: rs.reduce((a, x) => a + x.ok, 0),
      cores: median(rs.map((x) => x.cores)),
      rss: Math.max(...rs.map((x) => x.rss ?? 0)),
    });
  }
  // Zero lost updates: every change in the ledger moved the balance by one kopeck, and every accepted request is
  // among them (a few more may have been applied after wrk stopped waiting for their replies).
  await new Promise((r) => setTimeout(r, 1000));
  const after = await ledgerOf();
  const granted = results.get("updateBonus, 1 customer")!.ok;
  const moved = after.balance - before.balance;
  const applied = after.entries - before.entries;
  const lost = applied - moved + Math.max(0, granted - applied);
  console.log(`updateBonus: ${granted} accepted, ${applied} applied, balance moved by ${moved} kopecks: lost ${lost}`);
  const rss = peakRssMb(app.process.pid);
  // Nothing lost under the mixed load: every create and card insert wrk saw acknowledged is in the store, and the
  // store verifies clean (balances match ledgers, indexes and counters match records) with the service still up.
  const acked = (label: string) =>
    (rounds.get(MIXED) ?? []).flatMap((x) =>
      [...(x.out ?? "").matchAll(new RegExp(`^${label} (.*)$`, "gm"))].flatMap((m) =>
        m[1]!.split(",").filter(Boolean).map(Number)
      )
    );
  const ackedCreates = acked("CREATED");
  const ackedCards = acked("CARDS");
  const verifyProcess = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "tasks/verify.ts", "--company", COMPANY],
    env: { KV_PATH: kvPath },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Only the first lines verify prints are kept: a store with a defect per customer prints a line for each, more than
  // one string can hold at a million customers.
  const verifyLines: string[] = [];
  const [outLines, errLines] = await Promise.all([
    keepLines(verifyProcess.stdout, verifyLines, VERIFY_LINES),
    keepLines(verifyProcess.stderr, verifyLines, VERIFY_LINES),
  ]);
  const printed = outLines + errLines;
  const verify = await verifyProcess.status;
  const verifyText = verifyLines.join("\n") +
    (printed > verifyLines.length ? `\n... and ${printed - verifyLines.length} more lines` : "");
  for (const s of [app, quiet, parallel, parallelBaseline]) {
    s.process.kill();
    await s.process.status;
  }
  const lostAcked = await (async () => {
    const kv = await Deno.openKv(kvPath);
    try {
      const missing = async (ids: number[], keyOf: (id: number) => Deno.KvKey) => {
        let n = 0;
        for (let i = 0; i < ids.length; i += 10) {
          for (const e of await kv.getMany(ids.slice(i, i + 10).map(keyOf))) if (e.value === null) n++;
        }
        return n;
      };
      return await missing(ackedCreates, (id) => keys.customer(COMPANY, id)) +
        await missing(ackedCards, (id) => cardKeys.card(COMPANY, id));
    } finally {
      kv.close();
    }
  })();
  console.log(
    `Mixed load: ${ackedCreates.length} creates and ${ackedCards.length} card inserts acknowledged, ${lostAcked} ` +
      `missing; verify ${verify.success ? "clean" : "FOUND DEFECTS"}`,
  );
  if (!verify.success) console.log(verifyText);
  const expiry = await benchExpiry(`${dir}/expire.kv`);

  /** CPU microseconds per request of logging: the median of the pairs (both services driven at once). */
  const loggingCost = () => median(loggingPairs);
  // Targets: [name, measured ratio (or value), target, how it is measured].
  const r = (name: string) => results.get(name)!;
  /**
   * Requests/s of scenario `a` against scenario `b`: the median of the ratios of each round (a round runs both within
   * seconds of each other), so a slower or faster machine between rounds moves both readings of a ratio together. The
   * machine is a shared VM: the bare baseline's own rounds ranged over a fifth within one run.
   */
  const paired = (a: string, b: string) => {
    const as = rounds.get(a)!;
    const bs = rounds.get(b)!;
    return median(as.map((x, i) => x.rps / bs[i]!.rps));
  };
  const rows: { scenario: string; value: number; target: number; lower: boolean; unit: string; gate?: false }[] = [
    {
      scenario: "by id (json) / 1 get",
      value: paired("customer by id (json)", "baseline: 1 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by id (xml) / 1 get",
      value: paired("customer by id (xml)", "baseline: 1 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      scenario: "request logging: CPU per request, on - off",
      value: loggingCost(),
      target: 3,
      lower: true,
      unit: "us",
      // A difference of two noisy CPU readings: one 2-second round cannot resolve 3 us, so the quick run reports it.
      gate: quick ? false : undefined,
    },
    {
      scenario: "by phone / 2 gets",
      value: paired("customer by phone", "baseline: 2 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by email / 2 gets",
      value: paired("customer by email", "baseline: 2 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by external_id / 2 gets",
      value: paired("customer by external_id", "baseline: 2 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by card barcode / 2 gets",
      value: paired("customer by card barcode", "baseline: 2 kv.get"),
      target: 0.8,
      lower: false,
      unit: "x",
    },
    {
      // Several lookups at once (external id, name prefix) and 20 customers read, behind a session: beside the
      // one-get baseline so a regression shows. The issue sets no target; 0.05x is about what it measures.
      scenario: "back-office search by last name / 1 get",
      value: paired("back-office search by last name", "baseline: 1 kv.get"),
      target: 0.05,
      lower: false,
      unit: "x",
    },
    {
      scenario: "xml / json",
      value: paired("customer by id (xml)", "customer by id (json)"),
      target: 0.85,
      lower: false,
      unit: "x",
    },
    {
      scenario: "page 1 x200 cards+bonuses p50",
      value: r("page 1 x200 cards+bonuses").p50,
      target: 10,
      lower: true,
      unit: "ms",
    },
    {
      scenario: `deep page ${deepPage} / page 1 (p50)`,
      value: r(`page ${deepPage} x200 with_phone`).p50 / r("page 1 x200 with_phone").p50,
      target: 1.5,
      lower: true,
      unit: "x",
    },
    {
      scenario: "updateBonus / naive retry loop",
      value: paired("updateBonus, 1 customer", "baseline: naive retry loop"),
      target: 2,
      lower: false,
      unit: "x",
    },
    {
      scenario: "create customer / raw insert",
      value: paired("create customer", "baseline: raw atomic insert"),
      target: 0.5,
      lower: false,
      unit: "x",
    },
    {
      scenario: "2 workers / 1 worker (by id)",
      value: paired("customer by id, 2 workers", "customer by id (json)"),
      target: 1.5,
      lower: false,
      unit: "x",
      // Not a gate: with wrk on the same two cores, even the bare baseline cannot scale this far (next rows).
      gate: false,
    },
    {
      scenario: "bare baseline: 2 workers / 1 worker",
      value: paired("baseline: 1 kv.get, 2 workers", "baseline: 1 kv.get"),
      target: 1.5,
      lower: false,
      unit: "x",
      gate: false,
    },
    {
      scenario: "service scaling / bare baseline scaling",
      value: paired("customer by id, 2 workers", "customer by id (json)") /
        paired("baseline: 1 kv.get, 2 workers", "baseline: 1 kv.get"),
      target: 1,
      lower: false,
      unit: "x",
    },
    { scenario: "peak RSS of the service (every scenario)", value: rss, target: 200, lower: true, unit: "MB" },
    { scenario: "mixed load p99", value: r(MIXED).p99, target: 100, lower: true, unit: "ms" },
    { scenario: "mixed load: errors", value: r(MIXED).errors, target: 0, lower: true, unit: "" },
    {
      scenario: "mixed load: acknowledged writes missing + verify defects",
      value: lostAcked + (verify.success ? 0 : 1),
      target: 0,
      lower: true,
      unit: "",
    },
    { scenario: "updateBonus lost updates", value: Math.abs(lost), target: 0, lower: true, unit: "" },
    {
      scenario: "purchase / updateBonus (random customers)",
      value: paired("purchase, random customers", "updateBonus, random customers"),
      target: 0.6,
      lower: false,
      unit: "x",
    },
    {
      scenario: `expire ${EXPIRE_CUSTOMERS} balances x 5 lots`,
      value: expiry.lotsPerSecond,
      target: 20_000,
      lower: false,
      unit: "lots/s",
    },
    {
      scenario: `expire peak RSS (JS heap capped at ${EXPIRE_HEAP_MB} MB)`,
      value: expiry.rssPeakMb,
      target: 200,
      lower: true,
      unit: "MB",
    },
    { scenario: "expire: lots left for a second run", value: expiry.secondRun, target: 0, lower: true, unit: "" },
  ];
  // Errors of the service fail the quick run; a baseline's do not (the naive loop is meant to struggle).
  const errors = [...results.values()].filter((x) => x.errors > 0 && !x.name.startsWith("baseline"));
  const cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "unknown CPU";
  const lines = [
    `# Benchmark results`,
    ``,
    `${new Date().toISOString().slice(0, 19)}Z, ${cpu}, ${navigator.hardwareConcurrency} cores, ` +
    `${N} customers; ${READ_ROUNDS} round(s) of the reads and ${ROUNDS} of the writes, ${DURATION} s per scenario, ` +
    `interleaved, medians shown (a ratio of two scenarios: the median of its per-round ratios); ` +
    `wrk -t1 -c50 (page scenarios -c1, the 32-at-once pages -c32, the mixed load -c64); Deno ${Deno.version.deno}.`,
    ``,
    `Service configuration (defaults, request logging on): ${configLine}.`,
    ``,
    `| scenario | req/s | p50 ms | p99 ms | server CPU (cores) | CPU us/request | service peak RSS MB | errors |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|`,
    ...[...results.values()].map((x) =>
      `| ${x.name} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${x.cores.toFixed(2)} | ${
        (x.cores / x.rps * 1e6).toFixed(0)
      } | ${x.rss ? x.rss.toFixed(0) : ""} | ${x.errors} |`
    ),
    ``,
    `| target | measured | goal | met |`,
    `|---|---:|---:|:---:|`,
    ...rows.map((x) =>
      `| ${x.scenario} | ${x.value.toFixed(2)} ${x.unit} | ${x.lower ? "≤" : "≥"} ${x.target} ${x.unit} | ${
        (x.lower ? x.value <= x.target : x.value >= x.target) ? "yes" : x.gate === false ? "no (see note)" : "**no**"
      } |`
    ),
    ``,
    `Expiry: ${expiry.lots} lots of ${expiry.balances} balances written off in ${expiry.seconds.toFixed(1)} s ` +
    `(${expiry.lotsPerSecond.toFixed(0)} lots/s) by the use case in a process of its own, peak RSS ` +
    `${expiry.rssPeakMb.toFixed(0)} MB (${expiry.rssBeforeMb.toFixed(0)} MB before it started); a second run ` +
    `found ${expiry.secondRun} lots.`,
    ``,
    `Mixed load: ${ackedCreates.length} creates and ${ackedCards.length} card inserts acknowledged over the rounds, ` +
    `${lostAcked} of them missing afterwards; \`deno task verify\` ${
      verify.success ? "found the store clean" : "found defects"
    }. ` +
    `The service wrote ${logLines} request log lines to its stdout pipe.`,
    ``,
    NOTE,
    ``,
  ];
  const table = lines.join("\n");
  console.log("\n" + table);
  if (OUT) {
    // Sections other benches append (import, webhooks: from the first "## " heading or "<!--" marker on) are kept.
    const previous = await Deno.readTextFile(OUT).catch(() => "");
    const others = /^(## |<!--)/m.exec(previous);
    await Deno.writeTextFile(OUT, others ? `${table.trimEnd()}\n\n${previous.slice(others.index)}` : table);
  }
  console.log(`Done in ${((performance.now() - started) / 1000).toFixed(0)} s.`);
  if (quick) {
    // CI gate: fail when a ratio falls below half its target (or a bound above twice its target).
    const bad = rows.filter((x) => x.gate !== false && (x.lower ? x.value > x.target * 2 : x.value < x.target / 2));
    if (errors.length) console.log(`Errors in: ${errors.map((x) => x.name).join(", ")}`);
    if (bad.length || errors.length) {
      console.log(`Quick bench FAILED: ${bad.map((x) => x.scenario).join(", ")}`);
      Deno.exitCode = 1;
    } else console.log("Quick bench passed: every ratio is at least half its target.");
  }
} finally {
  for (const s of [baseline, app, quiet]) {
    try {
      s.process.kill();
      await s.process.status;
    } catch { /* already gone */ }
  }
  await Deno.remove(dir, { recursive: true });
}
