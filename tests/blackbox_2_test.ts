/**
 * Black-box checks of the new capabilities against the real server process (and, where a thousand requests are
 * needed, the real app in process): purchases and returns under concurrency and SIGKILL, money limits, the task
 * command lines, rate limits, JSON logs and a connection flood. Written by a black-box pass; the defects it found
 * (accumulated_sales without a limit, tasks crashing on an unknown option) are fixed and these tests hold them.
 */
import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import {
  assertJson,
  freePort,
  type Reply,
  request,
  ROOT,
  runTask,
  type ServerProcess,
  startServer,
  tempDir,
  waitFor,
  world,
} from "./kit.ts";

/** Makes a write key of company "bb" in the store file, before any server opens it. */
async function makeKey(kvPath: string, companyId = "bb"): Promise<string> {
  const kv = await Deno.openKv(kvPath);
  try {
    return (await createApiKey(kv, { companyId, userId: 1, access: "write", now: Date.now() })).key;
  } finally {
    kv.close();
  }
}

function post(base: string, key: string, path: string, form: Record<string, string | number>): Promise<Reply> {
  return request(base, "POST", path, { key, form });
}

/** The sum of a balance's ledger in minor units, and the balance it shows, read through the API. */
async function ledgerOf(base: string, key: string, customerId: number, bonusId = 1) {
  const entries: { amount: number }[] = [];
  let cursor: string | null = null;
  let balance = 0;
  let pending = 0;
  do {
    const query: Record<string, string | number> = { customer_id: customerId, bonus_id: bonusId, page_size: 1000 };
    if (cursor) query.cursor = cursor;
    const body = assertJson(await request(base, "GET", "/api/customer/bonusHistory", { key, query }), 200);
    entries.push(...body.transactions);
    balance = body.balance;
    pending = body.pending;
    cursor = body.next_cursor ?? null;
  } while (cursor);
  const sum = entries.reduce((s, t) => s + Math.round(t.amount * 100), 0);
  return { sum, shown: Math.round((balance + pending) * 100), count: entries.length };
}

Deno.test({
  name: "many clients buying, returning and changing one balance at once: no 500, the ledger adds up to the balance",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb2_conc_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    await using server = startServer({ kvPath });
    await server.ready(key);
    const B = server.base;
    assertJson(await post(B, key, "/api/bonusprogram/update", { name: "P", accrual_percent: "7.77" }), 200);
    const cid = assertJson(await post(B, key, "/api/customer/update", { fname: "C", phone: "79001230000" }), 200).id;
    assertJson(await post(B, key, "/api/customer/updateBonus", { customer_id: cid, bonus_id: 1, amount: "500" }), 200);
    const statuses: number[] = [];
    const orders: string[] = [];
    await Promise.all(Array.from({ length: 45 }, async (_, i) => {
      let r: Reply;
      if (i % 3 === 0) {
        r = await post(B, key, "/api/purchase", {
          customer_id: cid,
          bonus_id: 1,
          order_id: `o${i}`,
          amount: "123.45",
          spend: "3.33",
        });
        if (r.status === 200) orders.push(`o${i}`);
      } else if (i % 3 === 1) {
        r = await post(B, key, "/api/customer/updateBonus", {
          customer_id: cid,
          bonus_id: 1,
          amount: "1.11",
          idempotency_key: `k${i}`,
        });
      } else {
        r = await post(B, key, "/api/customer/updateBonus", { customer_id: cid, bonus_id: 1, amount: "-0.37" });
      }
      statuses.push(r.status);
    }));
    // three partial returns per order, all at once, plus a replay of the first
    await Promise.all(
      orders.flatMap((o) =>
        ([["a", "41.15"], ["b", "41.15"], ["c", "41.15"], ["a", "41.15"]] as const).map(async ([rid, amount]) => {
          statuses.push((await post(B, key, "/api/purchase/return", { order_id: o, return_id: rid, amount })).status);
        })
      ),
    );
    assert.deepEqual(statuses.filter((s) => s !== 200), []);
    const l = await ledgerOf(B, key, cid);
    assert.equal(l.sum, l.shown);
    // every order returned in full: points back where they were, accumulated sales back to 0
    // 500 + 15 credits of 1.11 - 15 debits of 0.37
    assert.equal(l.shown, 50000 + 15 * 111 - 15 * 37);
    const c = assertJson(await request(B, "GET", "/api/customer", { key, query: { id: cid } }), 200);
    assert.equal(c.customers[0].accumulated_sales, 0);
  },
});

Deno.test({
  name: "SIGKILL during concurrent purchases, returns and credits: every acknowledged one survives, verify is clean",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb2_kill_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    let server: ServerProcess = startServer({ kvPath });
    try {
      await server.ready(key);
      const B = server.base;
      assertJson(await post(B, key, "/api/bonusprogram/update", { name: "P", accrual_percent: "10" }), 200);
      const customers: number[] = [];
      for (let i = 0; i < 4; i++) {
        const id = assertJson(await post(B, key, "/api/customer/update", { fname: "K", phone: `7900555000${i}` }), 200)
          .id;
        assertJson(
          await post(B, key, "/api/customer/updateBonus", { customer_id: id, bonus_id: 1, amount: "1000" }),
          200,
        );
        customers.push(id);
      }
      type Acked = { path: string; form: Record<string, string | number>; body: Record<string, unknown> };
      const acked: Acked[] = [];
      let dead = false;
      let serial = 0;
      const client = async (n: number) => {
        while (!dead) {
          const cid = customers[n % customers.length]!;
          const s = serial++;
          const steps: [string, Record<string, string | number>][] = [
            ["/api/purchase", { customer_id: cid, bonus_id: 1, order_id: `k${s}`, amount: "99.99", spend: "9.99" }],
            ["/api/purchase/return", { order_id: `k${s}`, return_id: "r1", amount: "33.33" }],
            ["/api/customer/updateBonus", { customer_id: cid, bonus_id: 1, amount: "0.01", idempotency_key: `i${s}` }],
          ];
          for (const [path, form] of steps) {
            try {
              const r = await post(B, key, path, form);
              if (r.status === 200 && r.body.success === 1) acked.push({ path, form, body: r.body });
              else if (r.status >= 500) throw new Error(`${path} answered ${r.status}: ${r.text}`);
              else break;
            } catch (e) {
              if (dead) return;
              throw e;
            }
          }
        }
      };
      const clients = Array.from({ length: 12 }, (_, n) => client(n));
      // kill once a fair number of writes were acknowledged, whatever the machine's speed
      await waitFor("acknowledged writes", () => acked.length >= 60 + Math.floor(Math.random() * 90) || undefined);
      dead = true;
      await server.stop("SIGKILL");
      await Promise.allSettled(clients);
      const port = server.port;
      server = startServer({ kvPath, port });
      await server.ready(key);
      for (const a of acked) {
        const r = await post(server.base, key, a.path, a.form);
        assertJson(r, 200);
        if (a.path === "/api/customer/updateBonus") {
          assert.equal(r.body.transaction_id, a.body.transaction_id, `credit ${JSON.stringify(a.form)} was lost`);
        } else {
          assert.equal(r.headers.get("idempotent-replayed"), "true", `${a.path} ${JSON.stringify(a.form)} was lost`);
          assert.deepEqual(r.body, a.body);
        }
      }
      for (const cid of customers) {
        const l = await ledgerOf(server.base, key, cid);
        assert.equal(l.sum, l.shown, `customer ${cid}: ledger ${l.sum} vs balance ${l.shown}`);
      }
      await server.stop();
      const v = await runTask("verify", [], { kvPath });
      assert.equal(v.code, 0, v.out + v.err);
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "purchases of the largest amount stop at the accumulated_sales limit (409) and reads never answer 500",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using w = await world();
    assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Zero", accrual_percent: 0 } }), 200);
    const id = assertJson(await w.call("POST", "/api/customer/update", { form: { fname: "Big" } }), 200).id;
    let refused: Reply | null = null;
    for (let i = 0; i < 905 && !refused; i++) {
      const r = await w.call("POST", "/api/purchase", {
        form: { customer_id: id, bonus_id: 1, order_id: `b${i}`, amount: "100000000000" },
      });
      if (r.status !== 200) refused = r;
    }
    // Either the purchase that would overflow is refused naming amount, or the customer stays readable: never a 500.
    const read = await w.call("GET", "/api/customer", { query: { id } });
    assert.notEqual(read.status, 500, `after ${refused ? "a refusal" : "905 purchases"}: ${read.text}`);
    const list = await w.call("GET", "/api/customer");
    assert.notEqual(list.status, 500, "one customer's sum breaks the company's whole customer list");
  },
});

Deno.test("unknown options of apikey, group, bonusprogram end in a usage error (exit 2), not a stack trace", async (t) => {
  await using dir = await tempDir("bb2_cli_");
  const kvPath = `${dir.path}/s.kv`;
  for (
    const args of [
      ["apikey", "create", "--company", "acme", "--read"],
      ["group", "create", "--company", "acme", "--name", "T", "--min_accumulated_sales", "5"],
      ["bonusprogram", "create", "--company", "acme", "--name", "X", "--accrual_percent", "5"],
      ["apikey", "create", "--company", "acme", "--rate", "-5"],
    ]
  ) {
    await t.step(args.join(" "), async () => {
      const r = await runTask(args[0]!, args.slice(1), { kvPath });
      assert.equal(r.code, 2, r.err);
      assert.doesNotMatch(r.err, /Uncaught|TypeError|\n\s+at /);
      assert.match(r.err, /Usage/);
    });
  }
});

Deno.test({
  name: "rate limit: 429 with Retry-After in both formats, bad keys from one address are slowed, /health never",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb2_rate_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    await using server = startServer({
      kvPath,
      env: { RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "2", BAD_KEY_LIMIT: "3", BAD_KEY_WINDOW_MS: "600000" },
    });
    // ready() itself spends tokens; wait for a refusal instead of counting
    await server.ready(key).catch(() => {});
    const limited = await waitFor("a 429", async () => {
      const r = await request(server.base, "GET", "/api/bonusprogram", { key });
      return r.status === 429 ? r : undefined;
    });
    assertJson(limited, 429);
    assert.equal(limited.body.success, 0);
    assert.match(limited.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    const xml = await request(server.base, "GET", "/api/bonusprogram", { key, query: { format: "xml" } });
    if (xml.status === 429) {
      assert.match(xml.text, /<success>0<\/success>/);
      assert.ok(xml.headers.get("retry-after"));
    }
    for (let i = 0; i < 3; i++) {
      assert.equal((await request(server.base, "GET", "/api/bonusprogram", { key: `lk_bad${i}` })).status, 401);
    }
    const slowed = await request(server.base, "GET", "/api/bonusprogram", { key: "lk_bad9" });
    assert.equal(slowed.status, 429);
    assert.ok(slowed.headers.get("retry-after"));
    assert.equal((await request(server.base, "GET", "/health")).status, 200);
    assert.equal((await request(server.base, "GET", "/openapi.json")).status, 200);
  },
});

Deno.test({
  name: "LOG_FORMAT=json: one object per line with the reply's X-Request-Id, and no key from any source in it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb2_log_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    await using server = startServer({ kvPath, env: { LOG_FORMAT: "json", LOG_REQUESTS: "1" } });
    await server.ready(key);
    const B = server.base;
    const ids: string[] = [];
    const sent = [
      await request(B, "GET", "/api/customer", { key, query: { phone: "79001112233" } }),
      await request(B, "GET", "/api/customer", { key: null, headers: { "x-api-key": key } }),
      await request(B, "GET", "/api/customer", { key: null, headers: { authorization: `Bearer ${key}` } }),
      await request(B, "POST", "/api/customer/update", { key: null, form: { apikey: key, fname: "L" } }),
      await request(B, "POST", "/api/customer/update", { key: null, json: { apikey: key, fname: "L2" } }),
      await request(B, "GET", "/api/customer", { key: "lk_wrongwrongwrongwrongwrong" }),
      await request(B, "POST", "/api/purchase", {
        key,
        form: { customer_id: 1, bonus_id: 9, order_id: "x", amount: 1 },
      }),
    ];
    for (const r of sent) {
      const id = r.headers.get("x-request-id");
      assert.ok(id, "every reply carries X-Request-Id");
      ids.push(id);
    }
    await server.stop();
    const lines = server.stdout().split("\n").filter((l) => l.trim() !== "").concat(
      server.stderr().split("\n").filter((l) => l.startsWith("{")),
    );
    for (const line of lines) JSON.parse(line);
    const text = lines.join("\n");
    assert.ok(!text.includes(key), "the key appears in the log");
    assert.ok(!text.includes("lk_wrongwrong"), "a wrong key appears in the log");
    for (const id of ids) assert.ok(text.includes(`"request_id":"${id}"`), `request ${id} not logged`);
  },
});

Deno.test({
  name:
    "a flood of 600 idle, slow-header and slow-body connections under ulimit -n 256: normal requests still answered",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb2_flood_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    const port = freePort();
    const child = new Deno.Command("bash", {
      args: ["-c", 'ulimit -n 256 && ulimit -Hn 256 && exec "$0" task start', Deno.execPath()],
      cwd: ROOT,
      env: { KV_PATH: kvPath, PORT: String(port), HOST: "127.0.0.1", LOG_REQUESTS: "0", RATE_LIMIT_PER_SECOND: "0" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const base = `http://127.0.0.1:${port}`;
    const conns: Deno.TcpConn[] = [];
    try {
      await waitFor("the server", async () => (await fetch(`${base}/health`)).status === 200 || undefined);
      const enc = new TextEncoder();
      for (let i = 0; i < 600; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(c);
        const head = i % 3 === 0
          ? "GET /health HTTP/1.1\r\nHost: x\r\n"
          : i % 3 === 1
          ? `POST /api/customer/update?apikey=${key} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n` +
            "Content-Type: application/x-www-form-urlencoded\r\n\r\nfname=a"
          : "";
        if (head) await c.write(enc.encode(head));
      }
      for (let i = 0; i < 10; i++) {
        const r = await request(base, "GET", "/api/bonusprogram", { key });
        assertJson(r, 200);
        const w = await request(base, "POST", "/api/customer/update", { key, form: { fname: `F${i}` } });
        assertJson(w, 200);
      }
      const st = await Promise.race([child.status, new Promise<null>((r) => setTimeout(() => r(null), 200))]);
      assert.equal(st, null, "the server exited under the flood");
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the server */ }
      }
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
  },
});
