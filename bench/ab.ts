// deno-lint-ignore-file no-console
/**
 * A/B over HTTP of the read by id: the bare one-`kv.get` server, the service as shipped (serve.ts behind the
 * connection guard, logging on into a drained pipe), the same with `LOG_REQUESTS=0`, and the app under plain
 * `deno serve main.ts` (no guard), over one seeded store, driven by wrk in interleaved rounds. Prints medians of
 * requests/s, the server's CPU microseconds per request and the ratio to the baseline of the same round: the tool
 * the read-path work of issue 13 was measured with (`deno task bench` is the reference run). Lookups by id and xml are
 * compared with one `kv.get`, the others (phone, email, external_id, barcode, uid: the customer owning a seeded card)
 * with two sequential `kv.get`, as in the bench.
 *
 *   deno run -A --unstable-kv bench/ab.ts [customers=20000] [rounds=5] [seconds=3] [path=id|xml|phone|email|...]
 *
 * `AB_VARIANTS` env values may name `$OLD_KV`: a copy of the seeded store whose card index entries hold the bare card
 * id, as stores written before the entries named the owner do (for code from before that change, or its fallback).
 */
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { SERVICE_V8_FLAGS } from "../server/v8_flags.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { cardKeys } from "../storage/keys.ts";
import { cardIdOf } from "../storage/cards.ts";
import { seedExtras } from "./seed_extras.ts";
import { barcodeTableLua, cpuSeconds, untilServing } from "./common.ts";

const N = Number(Deno.args[0] ?? 20_000);
const ROUNDS = Number(Deno.args[1] ?? 5);
const SECONDS = Number(Deno.args[2] ?? 3);
const WHAT = Deno.args[3] ?? "id";
/** Sequential gets of the baseline the lookup is compared with. */
const GETS = WHAT === "id" || WHAT === "xml" ? 1 : 2;
const ROOT = new URL("..", import.meta.url).pathname;
const dir = await Deno.makeTempDir();
const kvPath = `${dir}/ab.kv`;

const kv = await Deno.openKv(kvPath);
const now = Date.now();
const { key } = await createApiKey(kv, {
  companyId: "bench",
  userId: 1,
  access: "write",
  now,
  rateLimit: { per_second: 100_000_000, burst: 100_000_000 },
});
const batch: Customer[] = [];
for (let i = 1; i <= N; i++) {
  batch.push({
    ...blankCustomer(i, { now, userId: 1 }),
    external_id: `EXT${i}`,
    fname: "Сергей",
    lname: "Иванов",
    email: `user${i}@example.com`,
    phone: `79${String(i).padStart(9, "0")}`,
  });
  if (batch.length === 5000) {
    await rawInsertCustomers(kv, "bench", batch);
    batch.length = 0;
  }
}
await rawInsertCustomers(kv, "bench", batch);
await seedExtras(kv, "bench", { customers: N, now });
kv.close();
const oldKvPath = `${dir}/ab_old.kv`;
if ((Deno.env.get("AB_VARIANTS") ?? "").includes("$OLD_KV")) {
  await Deno.copyFile(kvPath, oldKvPath);
  const old = await Deno.openKv(oldKvPath);
  for (const index of ["cards_by_uid", "cards_by_barcode", "cards_by_external_id"]) {
    let op = old.atomic();
    let n = 0;
    for await (const e of old.list({ prefix: [...cardKeys.cards("bench").slice(0, 2), index] })) {
      op.set(e.key, cardIdOf(e.value));
      if (++n % 500 === 0) {
        await op.commit();
        op = old.atomic();
      }
    }
    await op.commit();
  }
  old.close();
}

function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function start(args: string[], env: Record<string, string>) {
  const port = freePort();
  const process = new Deno.Command(Deno.execPath(), {
    args: args[0] === "serve" ? ["serve", "--port", String(port), ...args.slice(1)] : args,
    env: {
      KV_PATH: kvPath,
      COMPANY: "bench",
      HOST: "127.0.0.1",
      EXPIRE_SCHEDULE: "0",
      PORT: String(port),
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace("$OLD_KV", oldKvPath)])),
    },
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  (async () => {
    for await (const _ of process.stdout) { /* drained, as a log collector would */ }
  })().catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  await untilServing(url, args.join(" "));
  return { url, process };
}

const v8 = `--v8-flags=${SERVICE_V8_FLAGS.join(",")}`;
/** Variants to compare (AB_VARIANTS: a JSON object of name to [deno args, env]), after the baseline. */
const variants: Record<string, [string[], Record<string, string>]> =
  JSON.parse(Deno.env.get("AB_VARIANTS") ?? "null") ??
    {
      "shipped": [["run", "-A", "--unstable-kv", v8, "serve.ts"], {}],
      "logging off": [["run", "-A", "--unstable-kv", v8, "serve.ts"], { LOG_REQUESTS: "0" }],
      "deno serve main.ts": [["serve", "-A", "--unstable-kv", v8, "--host", "127.0.0.1", "main.ts"], {}],
    };
const servers: Record<string, Awaited<ReturnType<typeof start>>> = {
  [`baseline ${GETS} get`]: await start(
    ["serve", "-A", "--unstable-kv", "--host", "127.0.0.1", "bench/baseline_server.ts"],
    {},
  ),
};
for (const [name, [args, env]] of Object.entries(variants)) servers[name] = await start(args, env);
const QUERIES: Record<string, string> = {
  id: `"id=" .. id`,
  xml: `"format=xml&id=" .. id`,
  phone: `"phone=%2B" .. string.format("79%09d", id)`,
  email: `"email=user" .. id .. "%40example.com"`,
  external_id: `"external_id=EXT" .. id`,
  barcode: `"card_barcode=" .. barcodes[id]`,
  uid: `"uid=" .. (1000000 + id)`,
};
if (!QUERIES[WHAT]) throw new Error(`Unknown path ${WHAT}: one of ${Object.keys(QUERIES).join(", ")}`);
const path = (name: string) =>
  name.startsWith("baseline")
    ? `"/get?n=${GETS}&id=" .. id`
    : `"/api/customer?" .. ${QUERIES[WHAT]} .. "&apikey=${key}"`;

async function wrk(name: string, url: string, pid: number, seconds: number) {
  const script = `${dir}/s.lua`;
  await Deno.writeTextFile(
    script,
    `${WHAT === "barcode" ? barcodeTableLua(N) : ""}request = function()\n  local id = math.random(1, ${
      N - 1
    })\n  return wrk.format("GET", ${path(name)})\nend\n`,
  );
  const cpu = cpuSeconds(pid);
  const out = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, "-s", script, url],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const total = Number(/(\d+) requests in/.exec(text)?.[1] ?? "0");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? "0");
  if (non2xx) throw new Error(`${name}: ${non2xx} non-2xx replies`);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? "0"), us: (cpuSeconds(pid) - cpu) * 1e6 / total };
}

const rows = new Map<string, { rps: number[]; us: number[]; ratio: number[]; cpu: number[] }>();
for (const [name, s] of Object.entries(servers)) await wrk(name, s.url, s.process.pid, 1); // warm up
for (let r = 0; r < ROUNDS; r++) {
  let base = 0;
  let baseUs = 0;
  for (const [name, s] of Object.entries(servers)) {
    const { rps, us } = await wrk(name, s.url, s.process.pid, SECONDS);
    if (name.startsWith("baseline")) [base, baseUs] = [rps, us];
    const row = rows.get(name) ?? { rps: [], us: [], ratio: [], cpu: [] };
    row.cpu.push(baseUs / us);
    row.rps.push(rps);
    row.us.push(us);
    row.ratio.push(rps / base);
    rows.set(name, row);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`${WHAT}, ${N} customers, ${ROUNDS} rounds of ${SECONDS} s, wrk -t1 -c50 (medians)`);
for (const [name, row] of rows) {
  console.log(
    `${name.padEnd(22)} ${median(row.rps).toFixed(0).padStart(7)} req/s ${
      median(row.us).toFixed(1).padStart(7)
    } us CPU/req` +
      `  ratio ${median(row.ratio).toFixed(2)}  (${row.ratio.map((x) => x.toFixed(2)).join(" ")})` +
      `  CPU ratio ${median(row.cpu).toFixed(2)} (${row.cpu.map((x) => x.toFixed(2)).join(" ")})`,
  );
}
// Paired differences: each variant's CPU per request minus the first variant's of the same round (its median is
// steadier than a difference of medians when the machine's load moves between rounds).
const [firstName, firstRow] = [...rows].find(([name]) => !name.startsWith("baseline"))!;
for (const [name, row] of rows) {
  if (name.startsWith("baseline") || name === firstName) continue;
  const diffs = row.us.map((us, i) => us - firstRow.us[i]!);
  console.log(
    `${name} - ${firstName}: ${median(diffs).toFixed(1)} us CPU/req (${diffs.map((d) => d.toFixed(1)).join(" ")})`,
  );
}
for (const s of Object.values(servers)) s.process.kill("SIGTERM");
await Promise.all(Object.values(servers).map((s) => s.process.status));
await Deno.remove(dir, { recursive: true });
