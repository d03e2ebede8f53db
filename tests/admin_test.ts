/**
 * The back office through the real app (app.request): sign-in, sessions, CSRF, roles, and every form's
 * validation with the API's messages. The browser tests (admin_browser_test.ts) drive the same pages in Chromium.
 */
import assert from "node:assert/strict";
import type { AdminRole } from "../domain/admin_user.ts";
import { hashPassword, verifyPassword } from "../domain/admin_user.ts";
import { createStore } from "../storage/store.ts";
import { adminActor, createAdminUser, MAX_FAILED_SIGN_INS } from "../usecases/admin_users.ts";
import { world } from "./kit.ts";

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
