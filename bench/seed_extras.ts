import { uidToEan13 } from "../domain/ean13.ts";
import { createStore } from "../storage/store.ts";
import { saveDirectoryEntry } from "../usecases/mod.ts";
import { rawInsertBalances, rawInsertCards } from "../storage/seed.ts";

/** Seeds the benchmark's cards (one per customer, in 3 card types) and balances in 2 bonus programs. */
export async function seedExtras(kv: Deno.Kv, cid: string, options: { customers: number; now: number }): Promise<void> {
  const { now } = options;
  const store = createStore(kv, { clock: () => now });
  const actor = { companyId: cid, name: "task:bench", userId: 1 };
  for (const name of ["Points", "Miles"]) await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name });
  for (const name of ["Silver", "Gold", "Platinum"]) {
    await saveDirectoryEntry(store, actor, { kind: "card_types", name });
  }
  const cards = [];
  const balances = [];
  for (let id = 1; id <= options.customers; id++) {
    const uid = String(1_000_000 + id);
    const ean = uidToEan13(uid);
    cards.push({
      id,
      external_id: `CARD${id}`,
      uid,
      uid_ean13: ean,
      barcode: ean,
      medium: "PLASTIC" as const,
      status: "ACTIVE" as const,
      block_date: null,
      activate_date: now,
      type_id: (id % 3) + 1,
      customer_id: id,
      created_date: now,
      created_by: 1,
      last_update_date: now,
      last_update_by: 1,
    });
    balances.push({ customerId: id, bonusId: 1, amount: (id % 1000) * 100 + 50 });
    balances.push({ customerId: id, bonusId: 2, amount: (id % 37) * 10 });
  }
  await rawInsertCards(kv, cid, cards);
  await rawInsertBalances(kv, cid, { balances, now, userId: 1 });
}
