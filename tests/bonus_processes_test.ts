import assert from "node:assert/strict";
import { type BalanceRecord, bonusKeys } from "../storage/bonuses.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { decimal, type Reply, request, startServer } from "./kit.ts";

const CLIENTS_PER_SERVER = 20;
const UPDATES_PER_CLIENT = 25;
/** Seeded balance, minor units: above what every removal together could take (40 x 25 x 20.00). */
const SEED = 10_000_000;

Deno.test("two server processes on one KV file lose no bonus update and apply each idempotency key once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bonus_processes_" });
  const kvPath = `${dir}/loyalty.kv`;
  const setupKv = await Deno.openKv(kvPath);
  const { key } = await createApiKey(setupKv, { companyId: "acme", userId: 2, access: "write", now: Date.now() });
  setupKv.close();

  const servers = [startServer({ kvPath }), startServer({ kvPath })];
  try {
    await Promise.all(servers.map((s) => s.ready(key)));
    const [a, b] = servers.map((s) => s.base) as [string, string];
    const call = (base: string, params: Record<string, string | number>): Promise<Reply> =>
      request(base, "POST", "/api/customer/updateBonus", { key, form: params });

    const customerId = (await request(a, "POST", "/api/customer/update", { key, form: { fname: "Hot" } })).body.id;
    const bonusId = (await request(b, "POST", "/api/bonusprogram/update", { key, form: { name: "Points" } })).body.id;
    const seeded = await call(a, { customer_id: customerId, bonus_id: bonusId, amount: decimal(SEED), overwrite: 1 });
    assert.equal(seeded.status, 200, seeded.text);

    let accepted = 0;
    let changes = 0;
    const client = async (server: number, n: number) => {
      let s = (server * 1000 + n + 1) >>> 0;
      const next = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
      for (let i = 0; i < UPDATES_PER_CLIENT; i++) {
        const minor = Math.floor(next() * 4_001) - 2_000;
        const params: Record<string, string | number> = {
          customer_id: customerId,
          bonus_id: bonusId,
          amount: decimal(minor),
        };
        const retried = next() < 0.25;
        if (retried) params.idempotency_key = `s${server}-c${n}-${i}`;
        // A retried request goes to both servers at once: the two processes race on one key.
        const targets = retried ? [a, b] : [servers[server]!.base];
        const results = await Promise.all(targets.map((base) => call(base, params)));
        for (const r of results) assert.equal(r.status, 200, r.text);
        if (results.length === 2) assert.deepEqual(results[0]!.body, results[1]!.body);
        accepted += minor;
        changes++;
      }
    };
    await Promise.all(
      [0, 1].flatMap((server) => Array.from({ length: CLIENTS_PER_SERVER }, (_, n) => client(server, n))),
    );

    const read = await request(b, "GET", "/api/customer", { key, query: { id: customerId, bonuses: 1 } });
    assert.deepEqual(read.body.customers[0].bonuses, [
      {
        bonus_id: bonusId,
        bonus_name: "Points",
        balance: Number(decimal(SEED + accepted)),
        pending: 0,
        next_expire_date: null,
        next_expire_amount: 0,
      },
    ]);
    const history = await request(a, "GET", "/api/customer/bonusHistory", {
      key,
      query: { customer_id: customerId, bonus_id: bonusId, page_size: 1000 },
    });
    assert.equal(history.body.total_count, changes + 1);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }

  const kv = await Deno.openKv(kvPath);
  try {
    const customerId = 1;
    const bonusId = 1;
    const balance = (await kv.get<BalanceRecord>(bonusKeys.balance("acme", customerId, bonusId))).value!;
    const entries: { transaction_id: number; amount: number; balance: number }[] = [];
    for await (const e of kv.list<typeof entries[number]>({ prefix: bonusKeys.ledger("acme", customerId, bonusId) })) {
      entries.push(e.value);
    }
    const expectedChanges = 2 * CLIENTS_PER_SERVER * UPDATES_PER_CLIENT + 1;
    assert.equal(balance.last_transaction_id, expectedChanges);
    assert.equal(entries.length, expectedChanges);
    assert.equal(entries.reduce((sum, e) => sum + e.amount, 0), balance.balance);
    entries.forEach((e, i) => {
      assert.equal(e.transaction_id, i + 1);
      assert.equal(e.balance, (i === 0 ? 0 : entries[i - 1]!.balance) + e.amount);
    });
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
