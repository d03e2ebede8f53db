import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { cardsOfCustomers } from "../storage/cards.ts";
import { JSON_TYPE, request, world, XML_TYPE } from "./kit.ts";

Deno.test("GET /api/customer?cards=1 adds each customer's cards, in XML and JSON", async (t) => {
  await using w = await world({ now: () => Date.UTC(2016, 9, 24, 10, 0, 0) });
  await w.call("POST", "/api/customer/update", {
    form: { fname: "Сергей", lname: "Иванов", external_id: "1C-7", register_date: "2016-07-18 13:54:37" },
  });
  await w.call("POST", "/api/customer/update", { form: { fname: "Пустой" } });
  const card = await w.call("POST", "/api/customer/insertCard", {
    query: { uid: "100500", external_id: "C-1" },
    form: {
      medium: "PLASTIC",
      status: "ACTIVE",
      activate_date: "2016-07-18",
      type_name: "Gold & <VIP>",
      customer_external_id: "1C-7",
    },
  });
  assert.deepEqual(card.body, { success: 1, card_id: 1, isnew: 1 });

  await t.step("XML: one customer with one card, exactly", async () => {
    const r = await w.call("GET", "/api/customer", { query: { format: "xml", id: 1, cards: 1 } });
    assert.equal(r.status, 200);
    assert.equal(r.type, XML_TYPE);
    assert.equal(
      r.text,
      `<?xml version="1.0" encoding="UTF-8"?>
<root>
<success>1</success>
<type>customer</type>
<count>1</count>
<customers>
<customer>
<id>1</id>
<external_id>1C-7</external_id>
<fname>Сергей</fname>
<lname>Иванов</lname>
<mname/>
<age/>
<email/>
<phone/>
<gender/>
<custom_information/>
<birth_day/>
<birth_month/>
<birth_year/>
<register_date>2016-07-18 13:54:37</register_date>
<accumulated_sales>0</accumulated_sales>
<send_push>0</send_push>
<send_email>0</send_email>
<send_sms>0</send_sms>
<group_id/>
<group_name/>
<created_date>2016-10-24 10:00:00</created_date>
<created_by>2</created_by>
<last_update_date>2016-10-24 10:00:00</last_update_date>
<last_update_by>2</last_update_by>
<cards>
<card>
<card_id>1</card_id>
<external_id>C-1</external_id>
<uid>100500</uid>
<uid_ean13>0000001005004</uid_ean13>
<barcode>0000001005004</barcode>
<medium>PLASTIC</medium>
<status>ACTIVE</status>
<block_date/>
<activate_date>2016-07-18 00:00:00</activate_date>
<type_id>1</type_id>
<type_name>Gold &amp; &lt;VIP&gt;</type_name>
<customer_id>1</customer_id>
<customer_external_id>1C-7</customer_external_id>
<created_date>2016-10-24 10:00:00</created_date>
<created_by>2</created_by>
<last_update_date>2016-10-24 10:00:00</last_update_date>
<last_update_by>2</last_update_by>
</card>
</cards>
</customer>
</customers>
</root>
`,
    );
  });

  await t.step("XML: a customer without cards has an empty cards element", async () => {
    const r = await w.call("GET", "/api/customer", { query: { format: "xml", id: 2, cards: "true" } });
    assert.match(r.text, /<last_update_by>2<\/last_update_by>\n<cards\/>\n<\/customer>/);
  });

  await t.step("JSON: cards is an array of card objects, [] when none", async () => {
    const r = await w.call("GET", "/api/customer", { query: { cards: 1 } });
    assert.equal(r.status, 200);
    assert.equal(r.type, JSON_TYPE);
    const [first, second] = r.body.customers;
    assert.deepEqual(first.cards, [{
      card_id: 1,
      external_id: "C-1",
      uid: "100500",
      uid_ean13: "0000001005004",
      barcode: "0000001005004",
      medium: "PLASTIC",
      status: "ACTIVE",
      block_date: null,
      activate_date: "2016-07-18 00:00:00",
      type_id: 1,
      type_name: "Gold & <VIP>",
      customer_id: 1,
      customer_external_id: "1C-7",
      created_date: "2016-10-24 10:00:00",
      created_by: 2,
      last_update_date: "2016-10-24 10:00:00",
      last_update_by: 2,
    }]);
    assert.deepEqual(second.cards, []);
    assert.deepEqual(Object.keys(first).slice(-2), ["last_update_by", "cards"]);
  });

  await t.step("cards=0 or absent: no cards element at all", async () => {
    const queries: Record<string, string | number>[] = [{}, { cards: 0 }, { cards: "false" }];
    for (const query of queries) {
      const json = await w.call("GET", "/api/customer", { query });
      assert.equal(json.status, 200);
      assert.ok(json.body.customers.every((c: object) => !("cards" in c)), JSON.stringify(query));
      const xml = await w.call("GET", "/api/customer", { query: { ...query, format: "xml" } });
      assert.ok(!xml.text.includes("<cards"), JSON.stringify(query));
    }
  });

  await t.step("paged and filtered reads carry cards too", async () => {
    const paged = await w.call("GET", "/api/customer", { query: { cards: 1, page: 1, page_size: 1 } });
    assert.equal(paged.body.customers[0].cards.length, 1);
    const byExt = await w.call("GET", "/api/customer", { query: { cards: 1, external_id: "1C-7" } });
    assert.equal(byExt.body.customers[0].cards[0].uid, "100500");
  });
});

/** Wraps a store to count its reads and the sequential rounds they come in (a round starts when none is in flight). */
function countingKv(kv: Deno.Kv) {
  let inFlight = 0;
  const stats = { rounds: 0, calls: 0 };
  const begin = () => {
    if (inFlight++ === 0) stats.rounds++;
    stats.calls++;
  };
  const end = () => void inFlight--;
  const counted = <T>(run: () => Promise<T>): Promise<T> => {
    begin();
    return run().finally(end);
  };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "get") return (...a: Parameters<Deno.Kv["get"]>) => counted(() => target.get(...a));
      if (prop === "getMany") {
        return (...a: Parameters<Deno.Kv["getMany"]>) => counted(() => target.getMany(...a));
      }
      if (prop === "list") {
        // One list of a few keys is one round trip: read it whole, then hand the entries out.
        return (...a: Parameters<Deno.Kv["list"]>) =>
          (async function* () {
            yield* await counted(() => Array.fromAsync(target.list(...a)));
          })();
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    kv: proxy,
    measure: async <T>(run: () => Promise<T>) => {
      stats.rounds = 0;
      stats.calls = 0;
      const result = await run();
      return { result, ...stats };
    },
  };
}

Deno.test("cards=1 for a page of 200 customers costs the same few sequential round trips as for 2", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const counting = countingKv(kv);
    const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };
    const app = createApp({ kv: counting.kv, config });
    const { key } = await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now: Date.now() });
    const call = (path: string, query: Record<string, string | number>) => request(app, "GET", path, { key, query });
    for (let i = 1; i <= 200; i++) {
      await call("/api/customer/update", { fname: `C${i}` });
      await call("/api/customer/insertCard", { customer_id: i, type_name: `T${i % 3}` });
      if (i % 2 === 0) await call("/api/customer/insertCard", { customer_id: i, type_name: "Extra" });
    }
    const page = (size: number) => () => call("/api/customer", { page: 1, page_size: size, cards: 1 });
    const small = await counting.measure(page(2));
    const large = await counting.measure(page(200));
    assert.equal(small.result.status, 200);
    assert.equal(large.result.status, 200);
    assert.equal(large.result.body.count, 200);
    const cards = large.result.body.customers.map((c: { cards: unknown[] }) => c.cards.length);
    assert.equal(cards.reduce((a: number, b: number) => a + b, 0), 300);
    // The owner index is read by range and the 30 getMany batches of records go out together.
    assert.equal(large.rounds, small.rounds, `rounds: ${small.rounds} for 2, ${large.rounds} for 200`);
    assert.ok(large.rounds <= 6, `rounds: ${large.rounds}`);

    // Scattered customers (every 10th): one list per customer, all in flight at once, then the records.
    const scattered = Array.from({ length: 20 }, (_, i) => 10 * i + 1);
    const direct = await counting.measure(() => cardsOfCustomers(counting.kv, "acme", scattered));
    assert.deepEqual([...direct.result.keys()], scattered);
    assert.equal([...direct.result.values()].flat().length, 20);
    assert.equal(direct.calls, 20 + 2);
    assert.equal(direct.rounds, 2);

    // Nearby customers (1, 3, 5): one range list; the cards of 2 and 4 inside the range are skipped.
    const nearby = await counting.measure(() => cardsOfCustomers(counting.kv, "acme", [5, 1, 3]));
    assert.deepEqual(
      [...nearby.result].map(([id, cs]) => [id, cs.map((c) => c.customer_id)]),
      [[5, [5]], [1, [1]], [3, [3]]],
    );
    assert.equal(nearby.calls, 2);
  } finally {
    kv.close();
  }
});
