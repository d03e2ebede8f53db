/**
 * 50 tills buying and returning for one customer at once lose nothing (issue 9): through one app, and through two
 * apps over one KV file (two store objects, as two processes have).
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { bonusKeys } from "../storage/keys.ts";
import { openKv } from "../storage/open.ts";
import { decimal, type Reply, request, tempDir, world } from "./kit.ts";

const CLIENTS = 50;
const ROUNDS = 3;
/** The points the customer starts with, minor units: more than all spends together could take (50 x 3 x 100.00). */
const SEED = 100_000_00;

type App = ReturnType<typeof createApp>;

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** What the acknowledged replies say happened, minor units. */
interface Tally {
  /** Points accrued and given back, less points spent and taken back. */
  points: number;
  /** Money bought, less money returned. */
  sales: number;
  /** Ledger entries the acknowledged operations wrote. */
  entries: number;
}

const cents = (n: number) => Math.round(n * 100);

/** Runs the 50 clients, each on its app (round robin over `apps`), and returns the tally of their acknowledged work. */
async function tills(apps: App[], key: string, ids: { customer: number; bonus: number }): Promise<Tally> {
  const tally: Tally = { points: 0, sales: 0, entries: 0 };
  // A change that lost too many races is refused 409 "changed concurrently, try again": a till sends it again (the
  // order and return ids make that safe). Any other refusal fails the test.
  const call = async (n: number, path: string, form: Record<string, string | number>) => {
    for (let attempt = 0;; attempt++) {
      const r = await request(apps[(n + attempt) % apps.length]!, "POST", path, { key, form });
      if (r.status !== 409 || !/concurrently/.test(r.body.info) || attempt >= 10) return r;
    }
  };
  const accept = (r: Reply, what: string) => {
    assert.equal(r.status, 200, `${what}: ${r.text}`);
    return r.body;
  };

  const client = async (n: number) => {
    const next = random(n + 1);
    for (let round = 0; round < ROUNDS; round++) {
      const amount = 1_00 + Math.floor(next() * 500_00);
      const spend = Math.floor(next() * Math.min(Math.floor(amount / 2), 100_00));
      const orderId = `till-${n}-${round}`;
      const form = { customer_id: ids.customer, bonus_id: ids.bonus, order_id: orderId, amount: decimal(amount) };
      const buy = { ...form, spend: decimal(spend) };
      // Some purchases are sent twice at once, as a till whose connection dropped would: they count once.
      const twice = next() < 0.2;
      const replies = await Promise.all(
        twice ? [call(n, "/api/purchase", buy), call(n + 1, "/api/purchase", buy)] : [call(n, "/api/purchase", buy)],
      );
      const bought = accept(replies[0]!, `purchase ${orderId}`);
      if (twice) assert.deepEqual(accept(replies[1]!, `purchase ${orderId} again`), bought);
      assert.equal(bought.spent, spend / 100);
      assert.equal(cents(bought.accrued), Math.floor((amount - spend) / 10), `accrual of ${orderId}`);
      tally.points += cents(bought.accrued) - spend;
      tally.sales += amount;
      tally.entries += (spend > 0 ? 1 : 0) + (bought.accrued > 0 ? 1 : 0);

      // Most purchases are returned: in full, or in part in one or two returns.
      const shape = next();
      if (shape < 0.3) continue;
      const parts = shape < 0.6
        ? [amount]
        : shape < 0.8
        ? [1 + Math.floor(next() * (amount - 1))]
        : [Math.floor(amount / 3), amount - Math.floor(amount / 3)];
      for (const [i, part] of parts.entries()) {
        const back = accept(
          await call(n + i, "/api/purchase/return", {
            order_id: orderId,
            return_id: `${orderId}-r${i}`,
            amount: decimal(part),
          }),
          `return ${orderId}-r${i}`,
        );
        assert.equal(back.shortfall, 0, `return ${orderId}-r${i}: ${JSON.stringify(back)}`);
        tally.points += cents(back.given_back) - cents(back.taken_back);
        tally.sales -= part;
        tally.entries++;
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
  return tally;
}

/** Makes the program and the customer with seeded points; returns their ids. */
async function setUp(app: App, key: string): Promise<{ customer: number; bonus: number }> {
  const post = async (path: string, form: Record<string, string | number>) => {
    const r = await request(app, "POST", path, { key, form });
    assert.equal(r.status, 200, r.text);
    return r.body;
  };
  const bonus = (await post("/api/bonusprogram/update", {
    name: "Points",
    accrual_percent: "10",
    max_spend_percent: "50",
    lifetime_days: 365,
  })).id;
  const customer = (await post("/api/customer/update", { fname: "Busy" })).id;
  await post("/api/customer/updateBonus", { customer_id: customer, bonus_id: bonus, amount: decimal(SEED) });
  return { customer, bonus };
}

/** Checks the store against the tally: balances, ledger, lots and sales. */
async function assertNothingLost(
  app: App,
  kv: Deno.Kv,
  key: string,
  ids: { customer: number; bonus: number },
  tally: Tally,
): Promise<void> {
  const read = await request(app, "GET", "/api/customer", { key, query: { id: ids.customer, bonuses: 1 } });
  assert.equal(read.status, 200, read.text);
  const customer = read.body.customers[0];
  const bonus = customer.bonuses[0];
  assert.equal(cents(bonus.balance) + cents(bonus.pending), SEED + tally.points, "balance + pending");
  assert.equal(cents(customer.accumulated_sales), tally.sales, "accumulated_sales");

  // The whole ledger, page by page: ids without gaps, one entry per acknowledged change, summing to the balance.
  const entries: { transaction_id: number; amount: number }[] = [];
  let cursor: string | null = null;
  do {
    const query: Record<string, string | number> = { customer_id: ids.customer, bonus_id: ids.bonus, page_size: 500 };
    if (cursor !== null) query.cursor = cursor;
    const page = await request(app, "GET", "/api/customer/bonusHistory", { key, query });
    assert.equal(page.status, 200, page.text);
    entries.push(...page.body.transactions);
    cursor = page.body.next_cursor;
  } while (cursor);
  entries.sort((a, b) => a.transaction_id - b.transaction_id);
  assert.equal(entries.length, 1 + tally.entries, "one ledger entry per acknowledged change");
  entries.forEach((e, i) => assert.equal(e.transaction_id, i + 1));
  const ledger = entries.reduce((sum, e) => sum + cents(e.amount), 0);
  assert.equal(ledger, SEED + tally.points, "the ledger sums to balance + pending");

  // The stored lots hold exactly what the ledger says, and none is below zero.
  const stored = await kv.get<{ lots?: { remaining: number }[] }>(bonusKeys.balance("acme", ids.customer, ids.bonus));
  const lots = stored.value?.lots;
  assert.ok(lots, `the balance record keeps its lots: ${JSON.stringify(stored.value)}`);
  for (const lot of lots) assert.ok(lot.remaining >= 0, `a lot below zero: ${JSON.stringify(lot)}`);
  assert.equal(lots.reduce((sum, l) => sum + l.remaining, 0), ledger, "the lots sum to the ledger");
}

Deno.test("50 tills buying and returning for one customer through one app lose nothing", async () => {
  await using w = await world({ config: { timeZone: "UTC" } });
  const ids = await setUp(w.app, w.key);
  const tally = await tills([w.app], w.key, ids);
  await assertNothingLost(w.app, w.kv, w.key, ids, tally);
});

Deno.test("50 tills buying and returning for one customer through two apps over one KV file lose nothing", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/points.kv`;
  // Two store handles on one file, opened as the service opens its store: what two server processes have.
  using kvA = await openKv(kvPath);
  using kvB = await openKv(kvPath);
  const config = { ...DEFAULT_CONFIG, kvPath, timeZone: "UTC", logRequests: false };
  const key = (await createApiKey(kvA, { companyId: "acme", userId: 2, access: "write", now: Date.now() })).key;
  const log = (line: string) => errors.push(line);
  const errors: string[] = [];
  const apps = [createApp({ kv: kvA, config, log }), createApp({ kv: kvB, config, log })];
  const ids = await setUp(apps[0]!, key);
  const tally = await tills(apps, key, ids).catch((error) => {
    throw new Error(`${error.message}\nlogged: ${errors.join("\n")}`);
  });
  await assertNothingLost(apps[1]!, kvB, key, ids, tally);
});
