// deno-lint-ignore-file no-console
/**
 * In-process microbenchmark of the read path: the app's fetch handler called directly (no HTTP), so the cost of
 * the service's own code per request shows without the network stack. Prints CPU microseconds (the whole process,
 * KV threads included) per request of each
 * variant, interleaved over several rounds (medians). `deno run -A --unstable-kv bench/micro.ts [customers]`.
 */
import process from "node:process";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { createApp } from "../routes/app.ts";
import { bufferedWriter, logSink } from "../routes/log.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { seedExtras } from "./seed_extras.ts";

const N = Number(Deno.args[0] ?? 20_000);
/** Only the variants whose name contains this text (all when absent). */
const ONLY = Deno.args[1];
const kv = await Deno.openKv(":memory:");
const now = Date.now();
const { key } = await createApiKey(kv, { companyId: "bench", userId: 1, access: "write", now });
const batch: Customer[] = [];
for (let i = 1; i <= N; i++) {
  batch.push({ ...blankCustomer(i, { now, userId: 1 }), fname: "Сергей", phone: `79${String(i).padStart(9, "0")}` });
  if (batch.length === 5000) {
    await rawInsertCustomers(kv, "bench", batch);
    batch.length = 0;
  }
}
await rawInsertCustomers(kv, "bench", batch);
await seedExtras(kv, "bench", { customers: N, now });

const devNull = await Deno.open("/dev/null", { write: true });
const sinkOf = (config: typeof DEFAULT_CONFIG) => logSink(config, bufferedWriter(devNull));
const base = { ...DEFAULT_CONFIG, kvPath: ":memory:", rateLimitPerSecond: 1e8, rateLimitBurst: 1e8 };
const apps = {
  "as shipped (logging on)": createApp({ kv, config: base, log: sinkOf(base) }),
  "logging off": createApp({ kv, config: { ...base, logRequests: false } }),
  "fast path off": createApp({ kv, config: base, log: sinkOf(base), fastPaths: false }),
  "logging on, console.log": createApp({
    kv,
    config: base,
    log: logSink(base, (line) => devNull.writeSync(new TextEncoder().encode(line + "\n"))),
  }),
};
const paths: Record<string, (id: number) => string> = {
  "by id json": (id) => `/api/customer?id=${id}&apikey=${key}`,
  "by id xml": (id) => `/api/customer?format=xml&id=${id}&apikey=${key}`,
  "by phone": (id) => `/api/customer?phone=%2B79${String(id).padStart(9, "0")}&apikey=${key}`,
};
const bare = async (id: number) => {
  const e = await kv.get(["company", "bench", "customers", id]);
  return new Response(JSON.stringify(e.value), { headers: { "content-type": "application/json" } });
};

/** Two sequential gets as the bench's two-get baseline reads them (records id and id + 1). */
const bare2 = async (id: number) => {
  const e = await kv.get(["company", "bench", "customers", id]);
  await kv.get(["company", "bench", "customers", id + 1]);
  return new Response(JSON.stringify(e.value), { headers: { "content-type": "application/json" } });
};
/** The two gets a lookup by phone cannot avoid: the index entry, then the record it names. */
const barePhone = async (id: number) => {
  const index = await kv.get<number>(["company", "bench", "customers_by_phone", `79${String(id).padStart(9, "0")}`]);
  const e = await kv.get(["company", "bench", "customers", index.value!]);
  return new Response(JSON.stringify(e.value), { headers: { "content-type": "application/json" } });
};

async function time(run: (id: number) => Promise<Response>, n: number): Promise<number> {
  const t = process.cpuUsage();
  const CONC = 32;
  let next = 0;
  await Promise.all(Array.from({ length: CONC }, async () => {
    while (next < n) {
      const id = (next++ % N) + 1;
      const res = await run(id);
      await res.arrayBuffer();
    }
  }));
  const used = process.cpuUsage(t);
  return (used.user + used.system) / n;
}

const results = new Map<string, number[]>();
const ROUNDS = 5;
const PER = 20_000;
for (let r = 0; r < ROUNDS; r++) {
  const add = (name: string, us: number) => results.set(name, [...(results.get(name) ?? []), us]);
  add("bare kv.get + JSON", await time(bare, PER));
  add("bare 2 kv.get (id, id + 1) + JSON", await time(bare2, PER));
  add("bare phone index + kv.get + JSON", await time(barePhone, PER));
  for (const [an, app] of Object.entries(apps)) {
    for (const [pn, path] of Object.entries(paths)) {
      if (an !== "as shipped (logging on)" && an !== "fast path off" && pn !== "by id json") continue;
      if (ONLY && !`${pn}, ${an}`.includes(ONLY)) continue;
      add(`${pn}, ${an}`, await time((id) => Promise.resolve(app.fetch(new Request(`http://x${path(id)}`))), PER));
    }
  }
}
for (const [name, xs] of results) {
  const m = [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`${name.padEnd(44)} ${m.toFixed(1).padStart(7)} us CPU/request`);
}
kv.close();
devNull.close();
