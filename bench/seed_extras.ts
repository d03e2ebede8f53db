import { saveEntry } from "../storage/directories.ts";
import { rawInsertBalances } from "../storage/seed.ts";

/** Seeds the benchmark's cards (one per customer) and balances in 2 bonus programs. */
export async function seedExtras(kv: Deno.Kv, cid: string, options: { customers: number; now: number }): Promise<void> {
  for (const name of ["Points", "Miles"]) await saveEntry(kv, cid, { kind: "bonus_programs", name, now: options.now });
  const balances = [];
  for (let id = 1; id <= options.customers; id++) {
    balances.push({ customerId: id, bonusId: 1, amount: (id % 1000) * 100 + 50 });
    balances.push({ customerId: id, bonusId: 2, amount: (id % 37) * 10 });
  }
  await rawInsertBalances(kv, cid, { balances, now: options.now, userId: 1 });
}
