/**
 * The back office through the real app (app.request): sign-in, sessions, CSRF, roles, and every form's
 * validation with the API's messages. The browser tests (admin_browser_test.ts) drive the same pages in Chromium.
 */
import assert from "node:assert/strict";
import type { AdminRole } from "../domain/admin_user.ts";
import { hashPassword, verifyPassword } from "../domain/admin_user.ts";
import { nameKeys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { type Finding, verifyStore } from "../storage/verify.ts";
import {
  adminActor,
  createAdminUser,
  dashboardStats,
  listAdminUsers,
  MAX_FAILED_SIGN_INS,
  removeAdminUser,
  SESSION_MS,
  signIn,
} from "../usecases/admin_users.ts";
import { searchCustomers } from "../usecases/back_office.ts";
import { ROOT, runTask, tempDir, world } from "./kit.ts";

type App = { request: (url: string, init: RequestInit) => Response | Promise<Response> };

/** A browser-like client of the app: keeps cookies, reads the CSRF token of the last page. */
class Client {
  cookies = new Map<string, string>();
  csrf = "";
  constructor(readonly app: App, readonly headers: Record<string, string> = {}) {}

  async send(method: string, path: string, form?: Record<string, string | number>): Promise<{
    status: number;
    text: string;
    headers: Headers;
  }> {
    const headers = new Headers(this.headers);
    if (this.cookies.size > 0) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const body = form ? new URLSearchParams(Object.entries(form).map(([k, v]) => [k, String(v)])) : undefined;
    const res = await this.app.request(path, { method, headers, body, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, ...value] = pair!.split("=");
      if (/max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name!);
      else this.cookies.set(name!, value.join("="));
    }
    const text = await res.text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(text)?.[1];
    if (csrf) this.csrf = csrf;
    return { status: res.status, text, headers: res.headers };
  }
  get(path: string) {
    return this.send("GET", path);
  }
  /** Posts a form with the CSRF token of the last page (unless `_csrf` is given). */
  post(path: string, form: Record<string, string | number> = {}) {
    return this.send("POST", path, { _csrf: this.csrf, ...form });
  }
  async signIn(company: string, login: string, password: string) {
    await this.get("/admin/login");
    return await this.post("/admin/login", { company, login, password });
  }
}

const PASSWORD = "correct horse battery";

async function setup(roles: AdminRole[] = ["owner", "manager", "viewer"]) {
  const errors: string[] = [];
  const w = await world({ log: (line) => errors.push(line) });
  const store = createStore(w.kv);
  for (const role of roles) {
    await createAdminUser(store, adminActor("acme", "setup"), {
      login: role,
      role,
      password: PASSWORD,
      iterations: 1000,
    });
  }
  const customer = await w.call("POST", "/api/customer/update", {
    form: { lname: "Иванова", fname: "Анна", phone: "+7 900 111-22-33", email: "anna@example.com" },
  });
  assert.equal(customer.status, 200, customer.text);
  const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Main" } });
  assert.equal(program.status, 200, program.text);
  const card = await w.call("POST", "/api/customer/insertCard", {
    query: { uid: "1000001" },
    form: { customer_id: customer.body.id, status: "ACTIVE" },
  });
  assert.equal(card.status, 200, card.text);
  return { w, errors, customerId: customer.body.id as number, programId: program.body.id as number };
}

async function signedIn(app: App, role: AdminRole): Promise<Client> {
  const client = new Client(app);
  const res = await client.signIn("acme", role, PASSWORD);
  assert.equal(res.status, 303, res.text);
  assert.equal(res.headers.get("location"), "/admin");
  return client;
}

Deno.test("hashPassword() salts each hash and verifyPassword() accepts only the password", async () => {
  const a = await hashPassword("secret password", 1000);
  const b = await hashPassword("secret password", 1000);
  assert.notEqual(a, b);
  assert.match(a, /^pbkdf2-sha256\$1000\$/);
  assert.equal(await verifyPassword("secret password", a), true);
  assert.equal(await verifyPassword("secret passwore", a), false);
  assert.equal(await verifyPassword("secret password", "garbage"), false);
});

Deno.test("back office sign-in and sessions", async (t) => {
  const { w, errors } = await setup();
  await using _ = w;

  await t.step("pages need a session: GET redirects to the sign-in page, POST is 403", async () => {
    const client = new Client(w.app);
    const page = await client.get("/admin");
    assert.equal(page.status, 303);
    assert.equal(page.headers.get("location"), "/admin/login");
    const post = await client.send("POST", "/admin/customers/1", { lname: "X" });
    assert.equal(post.status, 403);
    assert.match(post.headers.get("content-type") ?? "", /text\/html/);
  });

  await t.step("an API key does not open the back office", async () => {
    const res = await w.app.request(`/admin?apikey=${w.key}`, { headers: { "x-api-key": w.key }, redirect: "manual" });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/admin/login");
  });

  await t.step("a wrong password is 401 with one message; the right one sets a rotated HttpOnly cookie", async () => {
    const client = new Client(w.app);
    const bad = await client.signIn("acme", "owner", "wrong password!");
    assert.equal(bad.status, 401);
    assert.match(bad.text, /Wrong company, login or password/);
    const unknown = await client.signIn("acme", "nobody", PASSWORD);
    assert.equal(unknown.status, 401);
    assert.match(unknown.text, /Wrong company, login or password/);
    client.cookies.set("bo_session", "planted-by-someone-else");
    await client.get("/admin/login");
    const res = await client.post("/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(res.status, 303);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("bo_session="))!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.doesNotMatch(cookie, /Secure/);
    assert.notEqual(client.cookies.get("bo_session"), "planted-by-someone-else");
    const home = await client.get("/admin");
    assert.equal(home.status, 200);
    assert.match(home.text, /Dashboard/);
  });

  await t.step("behind https the cookie is Secure", async () => {
    const client = new Client(w.app, { "x-forwarded-proto": "https" });
    const res = await client.signIn("acme", "owner", PASSWORD);
    assert.equal(res.status, 303);
    assert.match(res.headers.getSetCookie().find((c) => c.startsWith("bo_session="))!, /Secure/);
  });

  await t.step("a session cookie does not open /api", async () => {
    const client = await signedIn(w.app, "owner");
    const res = await client.send("GET", "/api/customer");
    assert.equal(res.status, 401);
    assert.match(res.text, /Missing API key/);
  });

  await t.step("sign-in without the form's CSRF token is 403", async () => {
    const client = new Client(w.app);
    await client.get("/admin/login");
    const res = await client.send("POST", "/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(res.status, 403);
    assert.match(res.text, /CSRF/);
  });

  await t.step("sign-out ends the session on the server", async () => {
    const client = await signedIn(w.app, "manager");
    const token = client.cookies.get("bo_session")!;
    await client.get("/admin");
    const out = await client.post("/admin/logout");
    assert.equal(out.status, 303);
    const replay = new Client(w.app);
    replay.cookies.set("bo_session", token);
    const res = await replay.get("/admin");
    assert.equal(res.status, 303, "the old token no longer opens a page");
  });

  await t.step(
    `after ${MAX_FAILED_SIGN_INS} failures a login is refused for a while, even with the password`,
    async () => {
      const client = new Client(w.app);
      for (let i = 0; i < MAX_FAILED_SIGN_INS; i++) {
        assert.equal((await client.signIn("acme", "viewer", `wrong password ${i}`)).status, 401);
      }
      const locked = await client.signIn("acme", "viewer", PASSWORD);
      assert.equal(locked.status, 429);
      assert.match(locked.text, /Too many failed sign-ins/);
      // Another login from the same address is not affected.
      assert.equal((await client.signIn("acme", "manager", PASSWORD)).status, 303);
    },
  );
  assert.deepEqual(errors, [], "no internal errors");
});

Deno.test("back office forms: CSRF, roles and the API's validation", async (t) => {
  const { w, errors, customerId, programId } = await setup();
  await using _ = w;
  const manager = await signedIn(w.app, "manager");
  const viewer = await signedIn(w.app, "viewer");
  const page = `/admin/customers/${customerId}`;

  await t.step("every page answers 200 in HTML with a CSRF token", async () => {
    for (const path of ["/admin", `/admin/find?q=ив&all=1`, page, "/admin/directories"]) {
      const res = await manager.get(path);
      assert.equal(res.status, 200, `${path}: ${res.text.slice(0, 300)}`);
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(res.text, /name="_csrf"/);
    }
  });

  await t.step("a POST without the CSRF token is 403 and changes nothing", async () => {
    const res = await manager.send("POST", page, { lname: "Changed" });
    assert.equal(res.status, 403);
    const other = await manager.post(page, { _csrf: "not-the-token", lname: "Changed" });
    assert.equal(other.status, 403);
    const after = await w.call("GET", "/api/customer", { query: { id: customerId } });
    assert.equal(after.body.customers[0].lname, "Иванова");
  });

  await t.step("a field is edited, audited as admin:<login>", async () => {
    await manager.get(page);
    const res = await manager.post(page, { fname: "Анна-Мария" });
    assert.equal(res.status, 303, res.text.slice(0, 500));
    const history = await w.call("GET", "/api/customer/history", { query: { customer_id: customerId } });
    assert.equal(history.status, 200);
    assert.ok(JSON.stringify(history.body).includes("admin:manager"), JSON.stringify(history.body).slice(0, 500));
    const shown = await manager.get(page);
    assert.match(shown.text, /admin:manager/);
    assert.match(shown.text, /Анна-Мария/);
  });

  await t.step("a bad email is refused with the API's message and nothing changes", async () => {
    await manager.get(page);
    const api = await w.call("POST", "/api/customer/update", {
      query: { id: customerId },
      form: { email: "not-an-email" },
    });
    assert.equal(api.status, 400);
    assert.match(api.body.info, /email/);
    const res = await manager.post(page, { email: "not-an-email" });
    assert.equal(res.status, 400);
    assert.ok(res.text.includes(api.body.info.replaceAll('"', "&quot;")), api.body.info);
    assert.match(res.text, /value="not-an-email"/, "the entered value is kept");
  });

  await t.step("a phone taken by another customer is 409 with the API's message", async () => {
    assert.equal((await w.call("POST", "/api/customer/update", { form: { phone: "+79005554433" } })).status, 200);
    await manager.get(page);
    const res = await manager.post(page, { phone: "8 (900) 555-44-33" });
    assert.equal(res.status, 409);
    assert.match(res.text, /already taken/);
  });

  await t.step("points: a comment is required, the amount is parsed like the API's, the ledger shows it", async () => {
    await manager.get(page);
    const noComment = await manager.post(`${page}/points`, { bonus_id: programId, amount: "10", comment: " " });
    assert.equal(noComment.status, 400);
    assert.match(noComment.text, /A comment is required/);
    await manager.get(page);
    const badAmount = await manager.post(`${page}/points`, { bonus_id: programId, amount: "ten", comment: "x" });
    assert.equal(badAmount.status, 400);
    assert.match(badAmount.text, /Invalid amount/);
    await manager.get(page);
    const key = /name="idempotency_key" value="([^"]+)"/.exec((await manager.get(page)).text)![1]!;
    const ok = await manager.post(`${page}/points`, {
      bonus_id: programId,
      amount: "12,50",
      comment: "Goodwill",
      idempotency_key: key,
    });
    assert.equal(ok.status, 303, ok.text.slice(0, 400));
    // The same form sent twice (a double click) credits once.
    await manager.post(`${page}/points`, {
      bonus_id: programId,
      amount: "12,50",
      comment: "Goodwill",
      idempotency_key: key,
    });
    const balance = await w.call("GET", "/api/customer", { query: { id: customerId, bonuses: 1 } });
    assert.equal(JSON.stringify(balance.body).includes("12.5"), true, JSON.stringify(balance.body));
    const shown = await manager.get(page);
    assert.match(shown.text, /Goodwill/);
  });

  await t.step("cards: block, activate, move to a missing customer is refused, issue one", async () => {
    const cardRow = /id="card-(\d+)"/.exec((await manager.get(page)).text)!;
    const cardId = cardRow[1]!;
    const blocked = await manager.post(`${page}/cards/${cardId}/status`, { status: "BLOCKED" });
    assert.equal(blocked.status, 303);
    let card = await w.call("GET", "/api/card", { query: { card_id: cardId } });
    assert.equal(JSON.stringify(card.body).includes("BLOCKED"), true);
    const history = /<table id="history">([\s\S]*?)<\/table>/.exec((await manager.get(page)).text)![1]!;
    assert.match(history, /<td>card update<\/td><td>status<\/td><td>ACTIVE<\/td><td>BLOCKED<\/td>/);
    await manager.get(page);
    assert.equal((await manager.post(`${page}/cards/${cardId}/status`, { status: "ACTIVE" })).status, 303);
    card = await w.call("GET", "/api/card", { query: { card_id: cardId } });
    assert.equal(JSON.stringify(card.body).includes('"ACTIVE"'), true);
    await manager.get(page);
    const move = await manager.post(`${page}/cards/${cardId}/move`, { customer_id: "999999" });
    assert.equal(move.status, 404);
    await manager.get(page);
    const bad = await manager.post(`${page}/cards/${cardId}/status`, { status: "LOST" });
    assert.equal(bad.status, 400);
    await manager.get(page);
    const issued = await manager.post(`${page}/cards`, { uid: "", type_id: "" });
    assert.equal(issued.status, 303, issued.text.slice(0, 400));
    assert.equal(((await manager.get(page)).text.match(/id="card-\d+"/g) ?? []).length, 2);
  });

  await t.step("directories: an empty name is refused, a program's rules are validated and saved", async () => {
    await manager.get("/admin/directories");
    const empty = await manager.post("/admin/directories/groups", { name: " " });
    assert.equal(empty.status, 400);
    await manager.get("/admin/directories");
    const badRule = await manager.post(`/admin/directories/bonus_programs/${programId}`, {
      name: "Main",
      accrual_percent: "120",
    });
    assert.equal(badRule.status, 400);
    assert.match(badRule.text, /Invalid accrual_percent/);
    await manager.get("/admin/directories");
    const ok = await manager.post(`/admin/directories/bonus_programs/${programId}`, {
      name: "Main",
      accrual_percent: "5",
    });
    assert.equal(ok.status, 303);
    const list = await w.call("GET", "/api/bonusprogram");
    assert.equal(list.body.bonus_programs[0].accrual_percent, 5);
  });

  await t.step("a viewer sees no change buttons, and a forged POST is 403", async () => {
    const res = await viewer.get(page);
    assert.equal(res.status, 200);
    assert.doesNotMatch(res.text, /id="save-profile"/);
    assert.doesNotMatch(res.text, /id="apply-points"/);
    assert.doesNotMatch(res.text, />Block/);
    for (
      const [path, form] of [
        [page, { lname: "Forged" }],
        [`${page}/points`, { bonus_id: programId, amount: "1000", comment: "forged" }],
        ["/admin/directories/groups", { name: "Forged" }],
        ["/admin/access/users", { login: "evil", role: "owner" }],
      ] as const
    ) {
      const forged = await viewer.post(path, form);
      assert.equal(forged.status, 403, path);
    }
    assert.equal((await viewer.get("/admin/access")).status, 403);
  });

  await t.step("a manager cannot manage users or keys", async () => {
    assert.equal((await manager.get("/admin/access")).status, 403);
    await manager.get("/admin");
    assert.equal((await manager.post("/admin/access/keys", { access: "write" })).status, 403);
  });

  await t.step("an owner creates a user (password shown once) and a key, and revokes it", async () => {
    const owner = await signedIn(w.app, "owner");
    await owner.get("/admin/access");
    const bad = await owner.post("/admin/access/users", { login: "bad login!", role: "viewer" });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /Invalid login/);
    const created = await owner.post("/admin/access/users", { login: "kate", role: "viewer" });
    assert.equal(created.status, 200);
    const password = /id="secret">([^<]+)</.exec(created.text)![1]!;
    assert.equal((await new Client(w.app).signIn("acme", "kate", password)).status, 303);
    const key = await owner.post("/admin/access/keys", { access: "read", label: "till 3" });
    const plain = /id="secret">([^<]+)</.exec(key.text)![1]!;
    assert.equal((await w.call("GET", "/api/bonusprogram", { key: plain })).status, 200);
    const id = new RegExp(`/admin/access/keys/([0-9a-f]+)/revoke`).exec(key.text.split("till 3")[1]!)![1]!;
    assert.equal((await owner.post(`/admin/access/keys/${id}/revoke`)).status, 303);
    assert.equal((await w.call("GET", "/api/bonusprogram", { key: plain })).status, 401);
  });

  await t.step("find: a phone written differently, an email, a card number and a last-name prefix", async () => {
    for (const q of ["8 900 111 22 33", "ANNA@example.com", "1000001", "иван", "ИВАНО"]) {
      const res = await manager.get(`/admin/find?q=${encodeURIComponent(q)}`);
      assert.equal(res.status, 303, q);
      assert.equal(res.headers.get("location"), `/admin/customers/${customerId}`, q);
    }
    const none = await manager.get(`/admin/find?q=${encodeURIComponent("Петров")}`);
    assert.equal(none.status, 200);
    assert.match(none.text, /Nothing found/);
    const suggest = await manager.send("GET", "/admin/suggest?q=ива");
    assert.equal(suggest.status, 200);
    assert.equal(JSON.parse(suggest.text)[0].href, `/admin/customers/${customerId}`);
  });

  await t.step("Russian from Accept-Language, switchable with ?lang= and remembered", async () => {
    const ru = new Client(w.app, { "accept-language": "ru-RU,ru;q=0.9,en;q=0.5" });
    const login = await ru.get("/admin/login");
    assert.match(login.text, /Войти/);
    assert.match(login.text, /<html lang="ru">/);
    assert.match((await manager.get("/admin/find?q=x&all=1")).text, /href="\?q=x&amp;all=1&amp;lang=ru"/);
    await ru.get("/admin/login?lang=en");
    assert.match((await ru.get("/admin/login")).text, /Sign in/);
  });

  await t.step("unknown pages and customers are 404 in HTML", async () => {
    for (const path of ["/admin/nowhere", "/admin/customers/999999", "/admin/customers/abc"]) {
      const res = await manager.get(path);
      assert.equal(res.status, 404, path);
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    }
  });

  await t.step("a form body over the back office's limit is 413 in HTML", async () => {
    const res = await manager.post(page, { custom_information: "x".repeat(70 * 1024) });
    assert.equal(res.status, 413);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  });
  assert.deepEqual(errors, [], "no internal errors");
});

Deno.test("a session expires after SESSION_MS, and a deleted user's session stops at once", async () => {
  let now = Date.now();
  const errors: string[] = [];
  await using w = await world({ now: () => now, log: (line) => errors.push(line) });
  const store = createStore(w.kv);
  for (const login of ["anna", "boris"]) {
    await createAdminUser(store, adminActor("acme", "setup"), {
      login,
      role: "manager",
      password: PASSWORD,
      iterations: 1000,
    });
  }
  const anna = await signedIn(w.app, "anna" as AdminRole);
  const boris = await signedIn(w.app, "boris" as AdminRole);
  assert.equal((await anna.get("/admin")).status, 200);
  now += SESSION_MS - 1000;
  assert.equal((await anna.get("/admin")).status, 200);
  now += 2000;
  assert.equal((await anna.get("/admin")).status, 303, "expired");
  await removeAdminUser(store, adminActor("acme", "setup"), "boris");
  assert.equal((await boris.get("/admin")).status, 303, "deleted");
  assert.deepEqual(errors, []);
});

Deno.test("the dashboard counts customers, cards and points, and sums points per local day", async () => {
  const { w, errors, customerId, programId } = await setup(["viewer"]);
  await using _ = w;
  const grant = async (amount: string) =>
    assert.equal(
      (await w.call("POST", "/api/customer/updateBonus", {
        form: { customer_id: customerId, bonus_id: programId, amount },
      })).status,
      200,
    );
  await grant("100.25");
  await grant("-30");
  const viewer = await signedIn(w.app, "viewer");
  const page = (await viewer.get("/admin?fresh=1")).text;
  const figure = (id: string) => new RegExp(`id="${id}"><div>[^<]*</div><div class="big">([^<]*)<`).exec(page)?.[1];
  assert.equal(figure("stat-customers"), "1");
  assert.equal(figure("stat-cards"), "1");
  assert.equal(figure("stat-outstanding"), "70.25");
  assert.equal(figure("stat-pending"), "0.00");
  const stats = await dashboardStats(createStore(w.kv), adminActor("acme", "x"), { timeZone: "UTC" });
  assert.equal(stats.days.length, 30);
  assert.deepEqual(stats.days.at(-1), {
    day: new Date().toISOString().slice(0, 10),
    accrued: 10025,
    spent: 3000,
  });
  assert.equal(stats.days.slice(0, -1).every((d) => d.accrued === 0 && d.spent === 0), true);
  assert.deepEqual(errors, []);
});

Deno.test("the last-name index follows renames, and verify reports and rebuilds a missing entry", async () => {
  await using w = await world();
  const made = await w.call("POST", "/api/customer/update", { form: { lname: "Петров", phone: "+79001112233" } });
  const id = made.body.id as number;
  const store = createStore(w.kv);
  const actor = adminActor("acme", "x");
  const find = async (q: string) =>
    (await searchCustomers(store, actor, q, { defaultCountryCode: "7", limit: 10 })).map((c) => c.id);
  assert.deepEqual(await find("пет"), [id]);
  await w.call("POST", "/api/customer/update", { query: { id }, form: { lname: "Сидоров" } });
  assert.deepEqual(await find("пет"), []);
  assert.deepEqual(await find("СИД"), [id]);
  await w.call("POST", "/api/customer/update", { query: { id }, form: { lname: "" } });
  assert.deepEqual(await find("сид"), []);
  assert.deepEqual((await verifyAll(w.kv)).map((f) => f.check), []);
  // A store from before the index: the entry is missing until verify --repair writes it.
  await w.call("POST", "/api/customer/update", { query: { id }, form: { lname: "Орлова" } });
  await w.kv.delete(nameKeys.entry("acme", "орлова", id));
  await w.kv.set(nameKeys.entry("acme", "ghost", 999), null);
  assert.deepEqual(await find("орл"), []);
  const found = await verifyAll(w.kv);
  assert.deepEqual(found.map((f) => f.check).sort(), ["missing_name_entry", "orphan_list_entry"]);
  await verifyAll(w.kv, true);
  assert.deepEqual(await verifyAll(w.kv), []);
  assert.deepEqual(await find("орл"), [id]);
});

async function verifyAll(kv: Deno.Kv, repair = false): Promise<Finding[]> {
  const findings: Finding[] = [];
  await verifyStore(kv, { repair, onFinding: (f) => findings.push(f) });
  return findings.filter((f) => f.severity === "defect");
}

Deno.test("deno task admin: create prints a one-time password once, --stdin takes one, bad input exits 2 or 1", async () => {
  await using dir = await tempDir("loyalty_admin_task_");
  const kvPath = `${dir.path}/store.kv`;
  const created = await runTask("admin", ["create", "--company", "acme", "--login", "Olga", "--role", "owner"], {
    kvPath,
  });
  assert.equal(created.code, 0, created.err);
  const password = /One-time password \(shown once\): (\S+)/.exec(created.out)?.[1];
  assert.ok(password, created.out);
  const piped = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "admin", "create", "--company", "acme", "--login", "ivan", "--role", "viewer", "--stdin"],
    cwd: ROOT,
    env: { KV_PATH: kvPath },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = piped.stdin.getWriter();
  await writer.write(new TextEncoder().encode("a long enough password\n"));
  await writer.close();
  const out = await piped.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.doesNotMatch(text, /password/i, "a given password is never printed");
  const list = await runTask("admin", ["list", "--company", "acme"], { kvPath });
  assert.match(list.out, /^ivan\tviewer\t/m);
  assert.match(list.out, /^olga\towner\t/m);
  const taken = await runTask("admin", ["create", "--company", "acme", "--login", "olga", "--role", "viewer"], {
    kvPath,
  });
  assert.equal(taken.code, 1);
  assert.match(taken.err, /login "olga" is already taken/);
  const badRole = await runTask("admin", ["create", "--company", "acme", "--login", "x", "--role", "boss"], { kvPath });
  assert.equal(badRole.code, 1);
  assert.match(badRole.err, /Invalid role "boss"/);
  const noCompany = await runTask("admin", ["list"], { kvPath });
  assert.equal(noCompany.code, 2);
  {
    const kv = await Deno.openKv(kvPath);
    const store = createStore(kv);
    const user = (await listAdminUsers(store, adminActor("acme", "x"))).find((u) => u.login === "ivan")!;
    assert.equal(await verifyPassword("a long enough password", user.password), true);
    assert.doesNotMatch(JSON.stringify(user), /a long enough password/);
    const signed = await signIn(store, { companyId: "acme", login: "OLGA", password: password!, address: "test" });
    assert.ok(signed, "the one-time password signs in");
    kv.close();
  }
  const deleted = await runTask("admin", ["delete", "--company", "acme", "--login", "ivan"], { kvPath });
  assert.equal(deleted.code, 0, deleted.err);
});

Deno.test("concurrent creates of one login make one user; concurrent failed sign-ins are all counted", async () => {
  await using w = await world();
  const store = createStore(w.kv);
  const actor = adminActor("acme", "setup");
  const results = await Promise.allSettled(
    Array.from(
      { length: 5 },
      () => createAdminUser(store, actor, { login: "same", role: "viewer", password: PASSWORD, iterations: 1000 }),
    ),
  );
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  for (const r of results) {
    if (r.status === "rejected") assert.match(String(r.reason), /login "same" is already taken/);
  }
  assert.equal((await listAdminUsers(store, actor)).length, 1);
  const tries = await Promise.allSettled(
    Array.from(
      { length: MAX_FAILED_SIGN_INS },
      (_, i) =>
        signIn(store, {
          companyId: "acme",
          login: "same",
          password: `wrong ${i}`,
          address: "10.0.0.1",
          iterations: 1000,
        }),
    ),
  );
  assert.deepEqual(tries.map((r) => r.status === "fulfilled" && r.value), Array(MAX_FAILED_SIGN_INS).fill(null));
  await assert.rejects(
    signIn(store, { companyId: "acme", login: "same", password: PASSWORD, address: "10.0.0.1" }),
    /Too many failed sign-ins/,
  );
});
