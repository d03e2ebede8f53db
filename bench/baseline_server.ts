/**
 * The benchmark's baseline: a bare `deno serve` handler over the same KV file as the service, doing only the
 * store work a scenario cannot avoid, so the service's cost is measured as a ratio against it.
 *
 *   GET  /get?n=K&id=X   K sequential kv.get calls of customer records, answers the first as JSON
 *   POST /insert?i=N     one raw atomic insert of a customer with the same record, index and counter keys
 *   POST /naive?id=X     adds 1 to a balance with a plain read-check-retry loop and a ledger entry
 */
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { addCustomerWrites } from "../storage/seed.ts";
import { keys } from "../storage/keys.ts";
import { openKv } from "../storage/open.ts";

const cid = Deno.env.get("COMPANY") ?? "bench";
/** Raw inserts go to a company of their own: ids ahead of the service's sequence would be a defect in `cid`. */
const rawCid = `${cid}_raw_inserts`;
const kv = await openKv(Deno.env.get("KV_PATH"));
let nextId = Number(Deno.env.get("INSERT_FROM") ?? "50000000");

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=UTF-8" } });
}

async function handle(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/get") {
    const n = Number(url.searchParams.get("n") ?? "1");
    const id = Number(url.searchParams.get("id") ?? "1");
    let first: unknown = null;
    for (let i = 0; i < n; i++) {
      const e = await kv.get(keys.customer(cid, id + i));
      if (i === 0) first = e.value;
    }
    return json({ success: 1, customers: [first] });
  }
  if (url.pathname === "/insert") {
    await req.arrayBuffer();
    const id = nextId++;
    const now = Date.now();
    const c: Customer = {
      ...blankCustomer(id, { now, userId: 1 }),
      external_id: `RAW${id}`,
      fname: "Raw",
      email: `raw${id}@example.com`,
      phone: `7${String(id).padStart(10, "0")}`,
    };
    const op = kv.atomic()
      .check({ key: keys.customer(rawCid, id), versionstamp: null })
      .check({ key: keys.customerByPhone(rawCid, c.phone!), versionstamp: null })
      .check({ key: keys.customerByEmail(rawCid, c.email!), versionstamp: null })
      .check({ key: keys.customerByExternalId(rawCid, c.external_id!), versionstamp: null });
    addCustomerWrites(op, rawCid, c, (key) => op.sum(key, 1n));
    const res = await op.commit();
    return json({ success: res.ok ? 1 : 0, id, isnew: 1 });
  }
  if (url.pathname === "/naive") {
    await req.arrayBuffer();
    const id = Number(url.searchParams.get("id") ?? "1");
    const key = ["bench_naive", cid, id];
    for (;;) {
      const cur = await kv.get<{ balance: number; seq: number }>(key);
      const next = { balance: (cur.value?.balance ?? 0) + 100, seq: (cur.value?.seq ?? 0) + 1 };
      const res = await kv.atomic().check(cur).set(key, next).set([...key, next.seq], { delta: 100, at: Date.now() })
        .commit();
      if (res.ok) return json({ success: 1, balance: next.balance / 100, transaction_id: next.seq });
    }
  }
  return json({ success: 0 }, 404);
}

/** Served with `deno serve` (one worker or `--parallel`), like the service itself. */
export default { fetch: handle } satisfies Deno.ServeDefaultExport;
