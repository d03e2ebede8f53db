// deno-lint-ignore-file no-console
/**
 * `deno task bench [--quick]`: seeds a fresh store, starts the real service and a bare baseline server as
 * separate processes, drives both with wrk over loopback, and prints (and writes to bench/results.md)
 * requests/s, p50/p99 latency and each scenario's ratio to its baseline measured in the same run.
 * `--quick` uses a small store and short runs, and exits non-zero when a ratio drops below half its target.
 * The expiry job is timed in-process over its own store of balances made of expired lots (bench/expire_run.ts).
 */
import { parseArgs } from "node:util";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { createStore } from "../storage/store.ts";
import { saveDirectoryEntry } from "../usecases/mod.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { seedExtras } from "../bench/seed_extras.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    customers: { type: "string" },
    duration: { type: "string" },
    rounds: { type: "string" },
    out: { type: "string" },
  },
});
const quick = values.quick!;
const N = Number(values.customers ?? (quick ? 5_000 : 100_000));
const DURATION = Number(values.duration ?? 2);
/** Every scenario runs this many times, interleaved with its baseline; the table shows medians. */
const ROUNDS = Number(values.rounds ?? (quick ? 1 : 5));
/** Seconds of unmeasured load before the first measured run of each scenario (0 in the quick run). */
const WARMUP = quick ? 0 : 1;
const OUT = values.out ?? (quick ? null : new URL("../bench/results.md", import.meta.url).pathname);
const ROOT = new URL("..", import.meta.url).pathname;
const COMPANY = "bench";
/** Balances of 5 expired lots each that the expiry benchmark writes off. */
const EXPIRE_CUSTOMERS = quick ? 10_000 : 100_000;
/** The JS heap the expiry process may use, MB: it runs out if the job's memory grows with the store. */
const EXPIRE_HEAP_MB = 64;
/** Written under the table: why the 1.5x multi-core row is reported, not gated. */
const NOTE = "Note: with wrk on the same two cores, one worker already keeps about 1.4 cores busy, so even the bare " +
  "baseline scales about 1.0x on two workers here; the 1.5x multi-core target needs more cores than the load " +
  "generator takes away (README, Speed and scale). The service's scaling relative to the bare server's is gated " +
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
  const { key } = await createApiKey(kv, { companyId: COMPANY, userId: 1, access: "write", now });
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

function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Server {
  url: string;
  process: Deno.ChildProcess;
}

async function start(args: string[], env: Record<string, string>, port: number): Promise<Server> {
  const process = new Deno.Command(Deno.execPath(), {
    args: args[0] === "serve" ? ["serve", "--port", String(port), ...args.slice(1)] : args,
    env: { ...env, PORT: String(port) },
    cwd: ROOT,
    stdout: "null",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await (await fetch(`${url}/`)).body?.cancel();
      return { url, process };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Server ${args.join(" ")} did not start`);
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
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function ms(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : n;
}

async function wrk(
  name: string,
  options: { url: string; lua: string; connections?: number; seconds?: number; base?: number; pid?: number },
) {
  const cpuBefore = options.pid ? cpuSeconds(options.pid) : 0;
  const wallBefore = performance.now();
  const dir = await Deno.makeTempDir();
  const script = `${dir}/s.lua`;
  await Deno.writeTextFile(
    script,
    `math.randomseed(42)\nlocal n = ${
      options.base ?? 0
    }\nlocal N = ${N}\nrequest = function()\n  n = n + 1\n  local id = math.random(1, N)\n${options.lua}\nend\n`,
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
const kvPath = `${dir}/bench.kv`;
console.log(`Seeding ${N} customers into ${kvPath} ...`);
const { key } = await seed(kvPath);
console.log(`  seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

// The per-key rate limit stays on (its cost is measured) but set far above what wrk can send.
const env = {
  KV_PATH: kvPath,
  LOG_REQUESTS: "0",
  COMPANY,
  INSERT_FROM: String(N * 10 + 1),
  RATE_LIMIT_PER_SECOND: "100000000",
  RATE_LIMIT_BURST: "100000000",
  // The scheduled expiry would scan the store in the middle of a measurement.
  EXPIRE_SCHEDULE: "0",
};
const baseline = await start(
  ["serve", "-A", "--unstable-kv", "--host", "127.0.0.1", "bench/baseline_server.ts"],
  env,
  freePort(),
);
// The service as `deno task start` runs it: behind the connection guard (serve.ts).
const app = await start(["run", "-A", "--unstable-kv", "serve.ts"], { ...env, HOST: "127.0.0.1" }, freePort());
const results = new Map<string, Result>();
const k = `"&apikey=${key}"`;
const deepPage = quick ? Math.max(2, Math.floor((N * 0.9 * 0.8) / 200)) : 400;

try {
  const parallel = await start(
    ["serve", "--parallel", "-A", "--unstable-kv", "--host", "127.0.0.1", "main.ts"],
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
      name: "page 1 x200 cards+bonuses",
      options: {
        url: app.url,
        connections: 1,
        lua: get(`"/api/customer?page=1&page_size=200&cards=1&bonuses=1" .. ${k}`),
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
          `"customer_id=" .. id .. "&bonus_id=1&order_id=B" .. n .. "&amount=100"`,
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
          `"phone=%2B8" .. string.format("%010d", n) .. "&email=new" .. n .. "%40example.org&external_id=NEW" .. n .. "&fname=New"`,
        ),
      },
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
      const pid = [app, parallel, parallelBaseline, baseline].find((s) => s.url === options.url)!.process.pid;
      const r = await wrk(name, { ...options, base: round * 10_000_000, pid });
      rounds.set(name, [...(rounds.get(name) ?? []), r]);
    }
  };
  const phases = [scenarios.filter((s) => !writes.has(s.name)), scenarios.filter((s) => writes.has(s.name))];
  for (const [phase, list] of phases.entries()) {
    for (let round = 0; round < ROUNDS; round++) {
      console.log(`${phase === 0 ? "Reads" : "Writes"}, round ${round + 1} of ${ROUNDS}:`);
      await runRound(list, round);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, rs] of rounds) {
    results.set(name, {
      name,
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      errors: rs.reduce((a, x) => a + x.errors, 0),
      ok: rs.reduce((a, x) => a + x.ok, 0),
      cores: median(rs.map((x) => x.cores)),
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
  for (const s of [app, parallel, parallelBaseline]) {
    s.process.kill();
    await s.process.status;
  }
  const expiry = await benchExpiry(`${dir}/expire.kv`);

  // Targets: [name, measured ratio (or value), target, how it is measured].
  const r = (name: string) => results.get(name)!;
  const rows: { scenario: string; value: number; target: number; lower: boolean; unit: string; gate?: false }[] = [
    {
      scenario: "by id (json) / 1 get",
      value: r("customer by id (json)").rps / r("baseline: 1 kv.get").rps,
      target: 0.7,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by phone / 2 gets",
      value: r("customer by phone").rps / r("baseline: 2 kv.get").rps,
      target: 0.6,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by email / 2 gets",
      value: r("customer by email").rps / r("baseline: 2 kv.get").rps,
      target: 0.6,
      lower: false,
      unit: "x",
    },
    {
      scenario: "by external_id / 2 gets",
      value: r("customer by external_id").rps / r("baseline: 2 kv.get").rps,
      target: 0.6,
      lower: false,
      unit: "x",
    },
    {
      scenario: "xml / json",
      value: r("customer by id (xml)").rps / r("customer by id (json)").rps,
      target: 0.85,
      lower: false,
      unit: "x",
    },
    {
      scenario: "page 1 x200 cards+bonuses p50",
      value: r("page 1 x200 cards+bonuses").p50,
      target: 25,
      lower: true,
      unit: "ms",
    },
    {
      scenario: `deep page ${deepPage} / page 1 (p50)`,
      value: r(`page ${deepPage} x200 with_phone`).p50 / r("page 1 x200 with_phone").p50,
      target: 3,
      lower: true,
      unit: "x",
    },
    {
      scenario: "updateBonus / naive retry loop",
      value: r("updateBonus, 1 customer").rps / r("baseline: naive retry loop").rps,
      target: 2,
      lower: false,
      unit: "x",
    },
    {
      scenario: "create customer / raw insert",
      value: r("create customer").rps / r("baseline: raw atomic insert").rps,
      target: 0.5,
      lower: false,
      unit: "x",
    },
    {
      scenario: "2 workers / 1 worker (by id)",
      value: r("customer by id, 2 workers").rps / r("customer by id (json)").rps,
      target: 1.5,
      lower: false,
      unit: "x",
      // Not a gate: with wrk on the same two cores, even the bare baseline cannot scale this far (next rows).
      gate: false,
    },
    {
      scenario: "bare baseline: 2 workers / 1 worker",
      value: r("baseline: 1 kv.get, 2 workers").rps / r("baseline: 1 kv.get").rps,
      target: 1.5,
      lower: false,
      unit: "x",
      gate: false,
    },
    {
      scenario: "service scaling / bare baseline scaling",
      value: (r("customer by id, 2 workers").rps / r("customer by id (json)").rps) /
        (r("baseline: 1 kv.get, 2 workers").rps / r("baseline: 1 kv.get").rps),
      target: 1,
      lower: false,
      unit: "x",
    },
    { scenario: "peak RSS of the service", value: rss, target: 200, lower: true, unit: "MB" },
    { scenario: "updateBonus lost updates", value: Math.abs(lost), target: 0, lower: true, unit: "" },
    {
      scenario: "purchase / updateBonus (random customers)",
      value: r("purchase, random customers").rps / r("updateBonus, random customers").rps,
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
    `${N} customers; ${ROUNDS} round(s) of ${DURATION} s per scenario, interleaved, medians shown; ` +
    `wrk -t1 -c50 (page scenarios -c1); Deno ${Deno.version.deno}.`,
    ``,
    `| scenario | req/s | p50 ms | p99 ms | server CPU (cores) | errors |`,
    `|---|---:|---:|---:|---:|---:|`,
    ...[...results.values()].map((x) =>
      `| ${x.name} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${
        x.cores.toFixed(2)
      } | ${x.errors} |`
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
    NOTE,
    ``,
  ];
  const table = lines.join("\n");
  console.log("\n" + table);
  if (OUT) await Deno.writeTextFile(OUT, table);
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
  for (const s of [baseline, app]) {
    try {
      s.process.kill();
      await s.process.status;
    } catch { /* already gone */ }
  }
  await Deno.remove(dir, { recursive: true });
}
