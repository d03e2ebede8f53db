import assert from "node:assert/strict";
import fc from "fast-check";
import { type Reply, type World, world } from "./kit.ts";

/** One step a client may take against one balance. */
type Op =
  | { kind: "add"; minor: number; style: number; keyed: boolean }
  | { kind: "overwrite"; minor: number; style: number; keyed: boolean }
  | { kind: "retry"; pick: number; style: number }
  | { kind: "misuse"; pick: number; delta: number };

/** A request as the model sees it: the normalised parameters and the key. */
interface Sent {
  minor: number;
  overwrite: boolean;
  key: string | null;
}

/** The in-memory model: a balance, its ledger, and the first reply given under each key. */
interface Model {
  balance: number;
  ledger: { amount: number; balance: number; overwrite: number }[];
  keys: Map<string, { minor: number; overwrite: boolean; reply: Record<string, number> }>;
}

/** Writes minor units in one of several spellings of the same decimal ("10", "10.00", "+10,0"...). */
function spell(minor: number, style: number): string {
  const sign = minor < 0 ? "-" : "";
  const abs = Math.abs(minor);
  const whole = Math.floor(abs / 100);
  const cents = String(abs % 100).padStart(2, "0");
  switch (style % 4) {
    case 0:
      return `${sign}${whole}.${cents}`;
    case 1:
      return `${sign}${whole}${cents === "00" ? "" : `.${cents.replace(/0$/, "")}`}`;
    case 2:
      return `${sign || "+"}${whole},${cents}`;
    default:
      return ` ${sign}${String(whole).padStart(3, "0")}.${cents} `;
  }
}

const CUSTOMER = 1;
const PROGRAM = 1;

function expected(model: Model, sent: Sent): { status: number; body: Record<string, unknown> } {
  const points = (m: number) => `${m < 0 ? "-" : ""}${spell(Math.abs(m), 0)}`;
  // A request that is invalid in itself is refused before its idempotency key is looked at: no accepted
  // request can have had these parameters, so there is no first reply to give.
  if (sent.overwrite && sent.minor < 0) {
    return {
      status: 400,
      body: {
        success: 0,
        info: `Invalid amount "${points(sent.minor)}": overwrite sets the balance, which cannot be negative`,
        field: "amount",
      },
    };
  }
  const earlier = sent.key === null ? undefined : model.keys.get(sent.key);
  if (earlier) {
    if (earlier.minor === sent.minor && earlier.overwrite === sent.overwrite) {
      return { status: 200, body: earlier.reply };
    }
    return {
      status: 422,
      body: {
        success: 0,
        info: `Cannot update bonus: idempotency key "${sent.key}" was already used with different parameters`,
        field: "idempotency_key",
      },
    };
  }
  const next = sent.overwrite ? sent.minor : model.balance + sent.minor;
  if (next < 0) {
    return {
      status: 409,
      body: {
        success: 0,
        info: `Cannot remove ${points(-sent.minor)} bonus points: the balance is ${points(model.balance)}`,
        field: "amount",
      },
    };
  }
  model.ledger.push({ amount: (next - model.balance) / 100, balance: next / 100, overwrite: sent.overwrite ? 1 : 0 });
  model.balance = next;
  const reply = {
    success: 1,
    customer_id: CUSTOMER,
    bonus_id: PROGRAM,
    balance: next / 100,
    pending: 0,
    transaction_id: model.ledger.length,
  };
  if (sent.key !== null) model.keys.set(sent.key, { minor: sent.minor, overwrite: sent.overwrite, reply });
  return { status: 200, body: reply };
}

function send(w: World, sent: Sent, style: number): Promise<Reply> {
  const form: Record<string, string> = {
    customer_id: String(CUSTOMER),
    bonus_id: String(PROGRAM),
    amount: spell(sent.minor, style),
  };
  if (sent.overwrite || style % 2 === 1) form.overwrite = sent.overwrite ? (style % 2 ? "true" : "1") : "0";
  // The key travels as a parameter or as the Idempotency-Key header, whichever the style says.
  const headers: Record<string, string> = {};
  if (sent.key !== null) {
    if (style % 3 === 0) headers["Idempotency-Key"] = sent.key;
    else form.idempotency_key = sent.key;
  }
  return w.call("POST", "/api/customer/updateBonus", { form, headers });
}

const amount = fc.integer({ min: -5_000, max: 5_000 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("add" as const), minor: amount, style: fc.nat(11), keyed: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("overwrite" as const),
      minor: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 10_000 }) }, {
        weight: 1,
        arbitrary: fc.integer({ min: -500, max: -1 }),
      }),
      style: fc.nat(11),
      keyed: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("retry" as const), pick: fc.nat(), style: fc.nat(11) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("misuse" as const),
      pick: fc.nat(),
      delta: fc.integer({ min: 1, max: 300 }),
    }),
  },
);

Deno.test("updateBonus agrees with a simple model over random sequences of adds, removals, overwrites and retries", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      await using w = await world();
      await w.call("POST", "/api/customer/update", { form: { fname: "Model" } });
      await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } });
      const model: Model = { balance: 0, ledger: [], keys: new Map() };
      const keyed: Sent[] = [];

      for (const [i, o] of ops.entries()) {
        let sent: Sent;
        let style: number;
        if (o.kind === "add" || o.kind === "overwrite") {
          sent = { minor: o.minor, overwrite: o.kind === "overwrite", key: o.keyed ? `key-${i}` : null };
          style = o.style;
          if (sent.key) keyed.push(sent);
        } else {
          const earlier = keyed[o.pick % Math.max(1, keyed.length)];
          if (!earlier) continue;
          if (o.kind === "retry") {
            sent = earlier;
            style = o.style;
          } else {
            sent = { ...earlier, minor: earlier.minor + o.delta };
            style = 0;
          }
        }
        const want = expected(model, sent);
        const got = await send(w, sent, style);
        assert.equal(got.status, want.status, `step ${i}: ${JSON.stringify(o)} -> ${got.text}`);
        assert.deepEqual(got.body, want.body, `step ${i}: ${JSON.stringify(o)}`);
      }

      const history = await w.call("GET", "/api/customer/bonusHistory", {
        query: { customer_id: CUSTOMER, bonus_id: PROGRAM, page_size: 1000 },
      });
      const ledger = history.body.transactions.map((t: Record<string, number>) => ({
        amount: t.amount,
        balance: t.balance,
        overwrite: t.overwrite,
      })).reverse();
      assert.deepEqual(ledger, model.ledger);
      assert.equal(history.body.balance, model.balance / 100);
      const cents = model.ledger.reduce((sum, e) => sum + Math.round(e.amount * 100), 0);
      assert.equal(cents, model.balance);
      const read = await w.call("GET", "/api/customer", { query: { id: CUSTOMER, bonuses: 1 } });
      assert.deepEqual(read.body.customers[0].bonuses, [{
        bonus_id: PROGRAM,
        bonus_name: "Points",
        balance: model.balance / 100,
        pending: 0,
        next_expire_date: null,
        next_expire_amount: 0,
      }]);
    }),
    { numRuns: 60 },
  );
});
