import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import { request } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Reads a child's output into a growing string. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("deno task start: first start prints a key once, serves JSON and XML, never logs the key", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const env = { PORT: String(port), HOST: "127.0.0.1", KV_PATH: `${dir}/data/loyalty.kv` };
  const start = () =>
    new Deno.Command(Deno.execPath(), {
      args: ["task", "start"],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
  let server = start();
  let out = collect(server.stdout);
  let err = collect(server.stderr);
  const base = `http://127.0.0.1:${port}`;
  try {
    const key = await waitFor("the first key", () => /lk_[A-Za-z0-9_-]{32}/.exec(out.text())?.[0]);
    await waitFor(
      "the server",
      async () => (await fetch(`${base}/api/customer?apikey=${key}`)).status === 200 || undefined,
    );
    const created = await request(base, "POST", "/api/customer/update", {
      key,
      form: { fname: "Иван", phone: "8 900 123-45-67", email: "ivan@example.com" },
    });
    assert.equal(created.status, 200);
    assert.deepEqual(created.body, { success: 1, id: 1, isnew: 1 });
    const json = await request(base, "GET", "/api/customer", { key, query: { phone: "+79001234567" } });
    assert.equal(json.body.customers[0].fname, "Иван");
    const xml = await request(base, "GET", "/api/customer", { key, query: { id: 1, format: "xml" } });
    assert.equal(xml.type, "application/xml; charset=UTF-8");
    assert.match(xml.text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<root>\n<success>1<\/success>\n/);
    assert.match(xml.text, /<fname>Иван<\/fname>/);
    const logLine = await waitFor(
      "the request log",
      () => out.text().includes("POST /api/customer/update 200") || undefined,
    );
    assert.ok(logLine);
    const afterKey = out.text().slice(out.text().indexOf(key) + key.length);
    assert.ok(!afterKey.includes(key), "the key is printed once and never logged");
    assert.ok(!err.text().includes(key));

    // A restart on the same store keeps the data and prints no new key.
    server.kill("SIGTERM");
    await server.status;
    await out.done;
    await err.done;
    server = start();
    out = collect(server.stdout);
    err = collect(server.stderr);
    await waitFor(
      "the restarted server",
      async () => (await fetch(`${base}/api/customer?id=1&apikey=${key}`)).status === 200 || undefined,
    );
    const again = await request(base, "GET", "/api/customer", { key, query: { id: 1 } });
    assert.equal(again.body.customers[0].email, "ivan@example.com");
    assert.ok(!/lk_[A-Za-z0-9_-]{32}/.test(out.text()));
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await out.done;
    await err.done;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno serve --parallel: uniqueness, ids and balances hold across workers sharing one KV file", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/loyalty.kv`;
  const kv = await Deno.openKv(kvPath);
  const { key } = await createApiKey(kv, { companyId: "acme", userId: 5, access: "write", now: Date.now() });
  kv.close();
  const port = freePort();
  const server = new Deno.Command(Deno.execPath(), {
    args: ["serve", "--parallel", "-A", "--unstable-kv", "--host", "127.0.0.1", "--port", String(port), "main.ts"],
    cwd: ROOT,
    env: { KV_PATH: kvPath, LOG_REQUESTS: "0", DENO_JOBS: "2" },
    stdout: "null",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      "the server",
      async () => (await fetch(`${base}/api/customer?apikey=${key}`)).status === 200 || undefined,
    );
    const same = await Promise.all(
      Array.from(
        { length: 40 },
        (_, i) =>
          request(base, "POST", "/api/customer/update", { key, form: { fname: `S${i}`, phone: "+7 900 000 00 77" } }),
      ),
    );
    assert.equal(same.filter((r) => r.status === 200).length, 1);
    assert.ok(same.every((r) => r.status === 200 || (r.status === 409 && r.body.field === "phone")));
    const distinct = await Promise.all(
      Array.from(
        { length: 60 },
        (_, i) =>
          request(base, "POST", "/api/customer/update", { key, form: { fname: `D${i}`, email: `d${i}@example.com` } }),
      ),
    );
    assert.deepEqual(distinct.filter((r) => r.status !== 200).map((r) => r.text), []);
    assert.ok(distinct.every((r) => r.body.isnew === 1));
    assert.equal(new Set(distinct.map((r) => r.body.id)).size, 60);
    const page = await request(base, "GET", "/api/customer", { key, query: { page: 1, page_size: 1000 } });
    assert.equal(page.body.total_count, 61);
    assert.equal(page.body.count, 61);

    // Balances: 200 concurrent changes of one balance through both workers lose nothing.
    await request(base, "POST", "/api/bonusprogram/update", { key, form: { name: "Points" } });
    const customerId = distinct[0]!.body.id;
    const opening = await request(base, "POST", "/api/customer/updateBonus", {
      key,
      form: { customer_id: customerId, bonus_id: 1, amount: "100" },
    });
    assert.equal(opening.status, 200);
    const amounts = Array.from({ length: 200 }, (_, i) => (i % 4 === 3 ? "-0.07" : "1.10"));
    const changes = await Promise.all(
      amounts.map((amount, i) =>
        request(base, "POST", "/api/customer/updateBonus", {
          key,
          form: { customer_id: customerId, bonus_id: 1, amount, idempotency_key: `k${i}` },
        })
      ),
    );
    assert.deepEqual(changes.filter((r) => r.status !== 200).map((r) => r.text), []);
    const history = await request(base, "GET", "/api/customer/bonusHistory", {
      key,
      query: { customer_id: customerId, bonus_id: 1, page_size: 1000 },
    });
    const expected = amounts.reduce((sum, a) => sum + Math.round(Number(a) * 100), 10_000);
    assert.equal(Math.round(history.body.balance * 100), expected);
    assert.equal(history.body.total_count, 201);
    const deltas = history.body.transactions.reduce(
      (sum: number, t: { amount: number }) => sum + Math.round(t.amount * 100),
      0,
    );
    assert.equal(deltas, expected);
    assert.deepEqual(
      history.body.transactions.map((t: { transaction_id: number }) => t.transaction_id),
      Array.from({ length: 201 }, (_, i) => 201 - i),
    );
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
});
