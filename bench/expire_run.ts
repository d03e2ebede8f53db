// deno-lint-ignore-file no-console
/**
 * The expiry benchmark's processes: `deno run -A --unstable-kv bench/expire_run.ts seed KV_PATH CUSTOMERS LOTS` seeds
 * CUSTOMERS balances of LOTS lots each, all already expired (seed.ts rawInsertLots); `... expire KV_PATH` then times
 * the expiry use case in a process of its own (so that its peak RSS is the job's alone) and prints one JSON line:
 * balances read, lots written off, seconds, lots/s, the peak RSS, and what a second run found (nothing).
 */
import { rawInsertLots, type SeedLot } from "../storage/seed.ts";
import { createStore } from "../storage/store.ts";
import { expirePoints } from "../usecases/admin.ts";

const [mode, kvPath, customersArg, lotsArg] = Deno.args;
const customers = Number(customersArg ?? 10_000);
const lotsEach = Number(lotsArg ?? 5);
const DAY = 24 * 60 * 60 * 1000;
const now = Date.now();
const COMPANY = "bench";

function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? "0") / 1024;
}

const kv = await Deno.openKv(kvPath);
if (mode === "seed") {
  for (let from = 1; from <= customers; from += 5000) {
    const balances = [];
    for (let id = from; id < Math.min(from + 5000, customers + 1); id++) {
      const lots: SeedLot[] = [];
      for (let i = 0; i < lotsEach; i++) {
        lots.push({ amount: 100 + i, available_at: now - 400 * DAY, expires_at: now - (10 + i) * DAY });
      }
      balances.push({ customerId: id, bonusId: 1, lots });
    }
    await rawInsertLots(kv, COMPANY, { balances, now: now - 400 * DAY, userId: 1 });
  }
  kv.close();
  Deno.exit(0);
}
const rssBefore = peakRssMb();
const store = createStore(kv);
const started = performance.now();
const summary = await expirePoints(store, { companyId: "", name: "task:expire", userId: 0 }, {
  company: COMPANY,
  now,
});
const seconds = (performance.now() - started) / 1000;
const again = await expirePoints(store, { companyId: "", name: "task:expire", userId: 0 }, { company: COMPANY, now });
kv.close();
console.log(JSON.stringify({
  balances: summary.balances,
  lots: summary.lots,
  secondRun: again.lots,
  seconds,
  lotsPerSecond: summary.lots / seconds,
  rssBeforeMb: rssBefore,
  rssPeakMb: peakRssMb(),
}));
