// deno-lint-ignore-file no-console
/**
 * `deno task crashtest [--runs N] [--clients N]`: starts the real server (`deno serve main.ts`) on a temp store,
 * drives mixed writes from many concurrent clients (customer creates and updates, card inserts, bonus changes
 * with idempotency keys, purchases and returns), SIGKILLs the server at a random moment, restarts it, and checks that every write
 * answered success=1 is there: customers with their values, cards with their owner, a ledger entry for each
 * acknowledged bonus change, and the same reply when an acknowledged idempotency key is replayed. Then it runs
 * the integrity check, which must find nothing. One line per run, a summary; exit 1 when any run is not clean.
 */
import { parseOptions, usageError } from "./_cli.ts";
import type { Card } from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import type { LedgerEntry } from "../domain/bonus.ts";
import { bonusKeys, cardKeys, keys } from "../storage/keys.ts";
import { openKv } from "../storage/open.ts";
import { createKey, type Finding, verifyStore } from "../usecases/mod.ts";
import { createStore } from "../storage/store.ts";

const USAGE = `Usage: deno task crashtest [--runs N] [--clients N]
  --runs N     crash-and-restart runs (default 1)
  --clients N  concurrent clients writing (default 16)`;

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CID = "crash";
/** Earliest and latest moment of the kill, ms after the clients start. */
const KILL_AFTER_MS = [300, 1500] as const;
/** How long a server may take to answer after it starts, ms (generous: the machine may be busy). */
const START_TIMEOUT_MS = 60_000;

function usage(message: string): never {
  usageError(message, USAGE);
}

function count(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) usage(`Invalid ${name} "${raw}": must be a whole number of at least 1`);
  return n;
}

/** What a customer must look like: the last acknowledged state, or the state of a request cut by the kill. */
interface CustomerState {
  fname: string;
  phone: string | null;
  email: string | null;
  external_id: string;
}

/** Everything the clients were told succeeded, and what was in flight when the server died. */
class Ledger {
  customers = new Map<number, { acked: CustomerState; pending: CustomerState | null }>();
  cards: { id: number; customerId: number; externalId: string | null }[] = [];
  bonuses: { form: Record<string, string>; reply: Record<string, unknown> }[] = [];
  /** Acknowledged purchases and returns, each with its form and first reply (a replay must give it again). */
  orders: { path: string; form: Record<string, string>; reply: Record<string, unknown> }[] = [];
  acked = 0;
}

/** A running server process with its port. */
interface Server {
  child: Deno.ChildProcess;
  base: string;
  stderr: () => string;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startServer(kvPath: string, apiKey: string): Promise<Server> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["serve", "-A", "--unstable-kv", "--port", String(port), "--host", "127.0.0.1", MAIN],
    env: { KV_PATH: kvPath, LOG_REQUESTS: "0" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  (async () => {
    for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
  })().catch(() => {});
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${base}/api/customer?apikey=${apiKey}&id=1`);
      await res.body?.cancel();
      if (res.status < 500) return { child, base, stderr: () => text };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`The server did not answer within ${START_TIMEOUT_MS} ms: ${text}`);
}

/** Posts a form; null when the connection failed (the server died), else the decoded reply. */
async function post(
  base: string,
  path: string,
  form: Record<string, string>,
  options: { key: string; query?: Record<string, string> },
): Promise<{ status: number; body: Record<string, unknown> } | null> {
  const url = new URL(path, base);
  url.searchParams.set("apikey", options.key);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
  try {
    const res = await fetch(url, { method: "POST", body: new URLSearchParams(form) });
    return { status: res.status, body: await res.json() };
  } catch {
    return null;
  }
}

/** One client: creates its own customers and writes only to them, so the expected state of each is known. */
async function client(
  n: number,
  ctx: { base: string; key: string; bonusId: number; ledger: Ledger; stop: () => boolean },
): Promise<void> {
  const { ledger } = ctx;
  const mine: number[] = [];
  /** This client's acknowledged orders and the money still returnable of each. */
  const myOrders: { orderId: string; left: number }[] = [];
  let serial = 0;
  const unique = () => `${n}${String(++serial).padStart(5, "0")}`;
  const phoneOf = (u: string) => `79${u.padStart(9, "0")}`;
  while (!ctx.stop()) {
    const roll = Math.random();
    const target = mine.length > 0 ? mine[Math.floor(Math.random() * mine.length)]! : null;
    if (target === null || roll < 0.3) {
      const u = unique();
      const state: CustomerState = {
        fname: `C${u}`,
        phone: phoneOf(u),
        email: `c${u}@example.com`,
        external_id: `ext-${u}`,
      };
      const res = await post(ctx.base, "/api/customer/update", {
        fname: state.fname,
        phone: state.phone!,
        email: state.email!,
        external_id: state.external_id,
      }, { key: ctx.key });
      if (!res) return; // the id of a create cut by the kill is unknown: nothing to expect of it
      if (res.body.success !== 1) throw new Error(`Create refused: ${JSON.stringify(res.body)}`);
      const id = res.body.id as number;
      ledger.customers.set(id, { acked: state, pending: null });
      ledger.acked++;
      mine.push(id);
    } else if (roll < 0.55) {
      const record = ledger.customers.get(target)!;
      const u = unique();
      const next: CustomerState = {
        ...record.acked,
        fname: `U${u}`,
        phone: Math.random() < 0.5 ? phoneOf(u) : record.acked.phone,
        email: Math.random() < 0.2 ? null : record.acked.email,
      };
      record.pending = next;
      const res = await post(
        ctx.base,
        "/api/customer/update",
        { fname: next.fname, phone: next.phone ?? "", email: next.email ?? "" },
        { key: ctx.key, query: { id: String(target) } },
      );
      if (!res) return;
      if (res.body.success !== 1) throw new Error(`Update refused: ${JSON.stringify(res.body)}`);
      record.acked = next;
      record.pending = null;
      ledger.acked++;
    } else if (roll < 0.75) {
      const externalId = Math.random() < 0.5 ? `card-${unique()}` : null;
      const res = await post(
        ctx.base,
        "/api/customer/insertCard",
        { customer_id: String(target) },
        { key: ctx.key, query: externalId ? { external_id: externalId } : {} },
      );
      if (!res) return;
      if (res.body.success !== 1) throw new Error(`Card insert refused: ${JSON.stringify(res.body)}`);
      ledger.cards.push({ id: res.body.card_id as number, customerId: target, externalId });
      ledger.acked++;
    } else if (roll < 0.85 || (roll >= 0.93 && myOrders.length === 0)) {
      const form = {
        customer_id: String(target),
        bonus_id: String(ctx.bonusId),
        amount: String(Math.floor(Math.random() * 200) - 50),
        idempotency_key: `idem-${unique()}`,
      };
      const res = await post(ctx.base, "/api/customer/updateBonus", form, { key: ctx.key });
      if (!res) return;
      // A debit below zero is refused: a refusal writes nothing and is no failure of the store.
      if (res.body.success !== 1) continue;
      ledger.bonuses.push({ form, reply: res.body });
      ledger.acked++;
    } else if (roll < 0.93) {
      const amount = 1 + Math.floor(Math.random() * 500);
      const form = {
        customer_id: String(target),
        bonus_id: String(ctx.bonusId),
        order_id: `order-${unique()}`,
        amount: String(amount),
        spend: String(Math.random() < 0.5 ? 0 : Math.floor(Math.random() * 20)),
      };
      const res = await post(ctx.base, "/api/purchase", form, { key: ctx.key });
      if (!res) return;
      // A spend above the balance is refused and writes nothing: no failure of the store.
      if (res.body.success !== 1) continue;
      ledger.orders.push({ path: "/api/purchase", form, reply: res.body });
      myOrders.push({ orderId: form.order_id, left: amount });
      ledger.acked++;
    } else {
      const order = myOrders[Math.floor(Math.random() * myOrders.length)]!;
      if (order.left <= 0) continue;
      const amount = 1 + Math.floor(Math.random() * order.left);
      const form = { order_id: order.orderId, return_id: `return-${unique()}`, amount: String(amount) };
      const res = await post(ctx.base, "/api/purchase/return", form, { key: ctx.key });
      if (!res) return;
      if (res.body.success !== 1) throw new Error(`Return refused: ${JSON.stringify(res.body)}`);
      order.left -= amount;
      ledger.orders.push({ path: "/api/purchase/return", form, reply: res.body });
      ledger.acked++;
    }
  }
}

function sameCustomer(stored: Customer, want: CustomerState): boolean {
  return stored.fname === want.fname && stored.phone === want.phone && stored.email === want.email &&
    stored.external_id === want.external_id;
}

/** Checks every acknowledged write against the store and the restarted server; returns the problems. */
async function checkAcknowledged(kv: Deno.Kv, server: Server, key: string, ledger: Ledger): Promise<string[]> {
  const problems: string[] = [];
  for (const [id, { acked, pending }] of ledger.customers) {
    const stored = (await kv.get<Customer>(keys.customer(CID, id))).value;
    if (!stored) problems.push(`customer ${id} is missing`);
    else if (!sameCustomer(stored, acked) && !(pending && sameCustomer(stored, pending))) {
      problems.push(`customer ${id} is ${JSON.stringify(stored)}, acknowledged as ${JSON.stringify(acked)}`);
    }
  }
  for (const card of ledger.cards) {
    const stored = (await kv.get<Card>(cardKeys.card(CID, card.id))).value;
    if (!stored) problems.push(`card ${card.id} is missing`);
    else if (stored.customer_id !== card.customerId || stored.external_id !== card.externalId) {
      problems.push(`card ${card.id} is ${JSON.stringify(stored)}`);
    }
  }
  for (const { form, reply } of ledger.bonuses) {
    const entryKey = bonusKeys.ledgerEntry(
      CID,
      Number(form.customer_id),
      Number(form.bonus_id),
      reply.transaction_id as number,
    );
    const entry = (await kv.get<LedgerEntry>(entryKey)).value;
    if (!entry || entry.idempotency_key !== form.idempotency_key) {
      problems.push(`ledger entry of acknowledged bonus change ${form.idempotency_key} is missing`);
      continue;
    }
    const again = await post(server.base, "/api/customer/updateBonus", form, { key });
    if (!again || JSON.stringify(again.body) !== JSON.stringify(reply)) {
      problems.push(
        `replaying ${form.idempotency_key} gave ${JSON.stringify(again?.body)}, first ${JSON.stringify(reply)}`,
      );
    }
  }
  for (const { path, form, reply } of ledger.orders) {
    // The order (or return) is kept: sending it again replays the first reply and changes nothing.
    const again = await post(server.base, path, form, { key });
    if (!again || JSON.stringify(again.body) !== JSON.stringify(reply)) {
      const id = form.return_id ?? form.order_id;
      problems.push(`replaying ${path} ${id} gave ${JSON.stringify(again?.body)}, first ${JSON.stringify(reply)}`);
    }
  }
  return problems;
}

/** One run: load, kill, restart, check, verify. */
async function run(options: { clients: number }): Promise<{ clean: boolean; line: string }> {
  const started = Date.now();
  const dir = await Deno.makeTempDir({ prefix: "crashtest-" });
  const kvPath = `${dir}/store.kv`;
  let server: Server | null = null;
  try {
    const setup = await openKv(kvPath);
    const key = (await createKey(createStore(setup), {
      companyId: CID,
      userId: 1,
      access: "write",
      actorName: "task:crashtest",
    })).key;
    setup.close();
    server = await startServer(kvPath, key);
    const program = await post(server.base, "/api/bonusprogram/update", { name: "Points", accrual_percent: "5" }, {
      key,
    });
    if (program?.body.success !== 1) throw new Error(`Cannot create a bonus program: ${JSON.stringify(program)}`);

    const ledger = new Ledger();
    let stopped = false;
    const ctx = { base: server.base, key, bonusId: program.body.id as number, ledger, stop: () => stopped };
    const clients = Array.from({ length: options.clients }, (_, n) => client(n + 1, ctx));
    const killAfter = KILL_AFTER_MS[0] + Math.floor(Math.random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]));
    await new Promise((r) => setTimeout(r, killAfter));
    server.child.kill("SIGKILL");
    await server.child.status;
    stopped = true;
    await Promise.all(clients);

    server = await startServer(kvPath, key);
    const kv = await openKv(kvPath);
    let problems: string[];
    try {
      problems = await checkAcknowledged(kv, server, key, ledger);
    } finally {
      kv.close();
    }
    server.child.kill("SIGTERM");
    await server.child.status;
    server = null;

    const verifyKv = await openKv(kvPath);
    const findings: Finding[] = [];
    try {
      await verifyStore(createStore(verifyKv), { onFinding: (f) => findings.push(f) });
    } finally {
      verifyKv.close();
    }
    for (const f of findings) if (f.severity === "defect") problems.push(`verify: ${f.check}: ${f.message}`);

    const counts = `${ledger.acked} acknowledged writes (${ledger.customers.size} customers, ` +
      `${ledger.cards.length} cards, ${ledger.bonuses.length} bonus changes, ${ledger.orders.length} purchases ` +
      `and returns)`;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const what = problems.length === 0 ? "clean" : `NOT CLEAN: ${problems.length} problems`;
    const detail = problems.slice(0, 20).map((p) => `\n  ${p}`).join("");
    return {
      clean: problems.length === 0,
      line: `${what}, ${counts}, killed after ${killAfter} ms, ${seconds} s${detail}`,
    };
  } finally {
    if (server) {
      server.child.kill("SIGKILL");
      await server.child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

const args = parseOptions({ runs: { type: "string" }, clients: { type: "string" } }, USAGE);
const runs = count(args.runs, "--runs", 1);
const clients = count(args.clients, "--clients", 16);
const started = Date.now();
let clean = 0;
for (let i = 1; i <= runs; i++) {
  let result: { clean: boolean; line: string };
  try {
    result = await run({ clients });
  } catch (error) {
    result = { clean: false, line: `FAILED: ${error instanceof Error ? error.stack : String(error)}` };
  }
  if (result.clean) clean++;
  console.log(`crashtest run ${i}/${runs}: ${result.line}`);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`crashtest: ${clean}/${runs} clean, ${clients} clients, ${seconds} s (${new Date().toISOString()})`);
Deno.exit(clean === runs ? 0 : 1);
