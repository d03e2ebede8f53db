/**
 * Back-office security fixes (issue 12, the outside tester's report): sessions tied to the user's credential
 * stamp, server-signed sign-in CSRF tokens with a `__Host-` cookie over https, the multipart reader's file names,
 * the points form's checks, and bounded ids in every /admin URL. Through the real app (app.request).
 */
import assert from "node:assert/strict";
import { LOGIN_CSRF_MS, signLoginCsrf, verifyLoginCsrf } from "../domain/admin_user.ts";
import { parseContentDisposition, parseMultipart } from "../routes/admin/multipart.ts";
import { createStore } from "../storage/store.ts";
import {
  adminActor,
  createAdminUser,
  removeAdminUser,
  sessionOf,
  setAdminPassword,
  signIn,
} from "../usecases/admin_users.ts";
import { world } from "./kit.ts";

type App = { request: (url: string, init: RequestInit) => Response | Promise<Response> };

const PASSWORD = "correct horse battery";

/** A browser-like client: keeps cookies (by name, as sent back), reads the CSRF token of the last page. */
class Client {
  cookies = new Map<string, string>();
  setCookies: string[] = [];
  csrf = "";
  constructor(readonly app: App, readonly headers: Record<string, string> = {}) {}

  async send(method: string, path: string, form?: Record<string, string | number>) {
    const headers = new Headers(this.headers);
    if (this.cookies.size > 0) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const body = form ? new URLSearchParams(Object.entries(form).map(([k, v]) => [k, String(v)])) : undefined;
    const res = await this.app.request(path, { method, headers, body, redirect: "manual" });
    this.setCookies = res.headers.getSetCookie();
    for (const line of this.setCookies) {
      const [pair] = line.split(";");
      const [name, ...value] = pair!.split("=");
      if (/max-age=0/i.test(line)) this.cookies.delete(name!);
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
  post(path: string, form: Record<string, string | number> = {}) {
    return this.send("POST", path, { _csrf: this.csrf, ...form });
  }
  async signIn(login: string, password = PASSWORD) {
    await this.get("/admin/login");
    return await this.post("/admin/login", { company: "acme", login, password });
  }
}

async function setup(options: { now?: () => number } = {}) {
  const w = await world({ now: options.now });
  const store = createStore(w.kv, { clock: options.now });
  for (const role of ["owner", "manager"] as const) {
    await createAdminUser(store, adminActor("acme", "setup"), {
      login: role,
      role,
      password: PASSWORD,
      iterations: 1000,
    });
  }
  return { w, store };
}

Deno.test("sessions end when the password changes or the user is deleted, and stay ended when re-created", async () => {
  const { w, store } = await setup();
  await using _ = w;
  const actor = adminActor("acme", "owner");
  const first = await signIn(store, { companyId: "acme", login: "manager", password: PASSWORD, address: "a" });
  assert.ok(first);
  assert.ok(await sessionOf(store, first.token));
  await setAdminPassword(store, actor, { login: "manager", password: "another password 1", iterations: 1000 });
  assert.equal(await sessionOf(store, first.token), null, "a session of the old password is over");

  const second = await signIn(store, {
    companyId: "acme",
    login: "manager",
    password: "another password 1",
    address: "a",
  });
  assert.ok(second);
  assert.ok(await sessionOf(store, second.token), "a session of the new password works");
  await removeAdminUser(store, actor, "manager");
  await createAdminUser(store, actor, {
    login: "manager",
    role: "owner",
    password: "another password 1",
    iterations: 1000,
  });
  assert.equal(await sessionOf(store, second.token), null, "the re-created user does not inherit the session");
});

Deno.test("sign-in CSRF tokens are signed by the store, bound to the cookie's nonce, and expire", async (t) => {
  let now = Date.UTC(2026, 0, 1);
  const { w } = await setup({ now: () => now });
  await using _ = w;

  await t.step("verifyLoginCsrf() takes only its own tokens, for their nonce, before they expire", async () => {
    const token = await signLoginCsrf("secret", "nonce-a", 1000 + LOGIN_CSRF_MS);
    assert.equal(await verifyLoginCsrf("secret", { nonce: "nonce-a", token, now: 1000 }), true);
    assert.equal(await verifyLoginCsrf("secret", { nonce: "nonce-b", token, now: 1000 }), false);
    assert.equal(await verifyLoginCsrf("other", { nonce: "nonce-a", token, now: 1000 }), false);
    assert.equal(await verifyLoginCsrf("secret", { nonce: "nonce-a", token, now: 1000 + LOGIN_CSRF_MS }), false);
    assert.equal(await verifyLoginCsrf("secret", { nonce: "nonce-a", token: "planted", now: 1000 }), false);
  });

  await t.step("over http: a plain cookie on /admin, and a made-up pair is 403", async () => {
    const client = new Client(w.app);
    await client.get("/admin/login");
    const line = client.setCookies.find((l) => l.startsWith("bo_login_csrf="))!;
    assert.match(line, /Path=\/admin/);
    assert.match(line, /HttpOnly/);
    assert.doesNotMatch(line, /Secure/);
    const nonce = client.cookies.get("bo_login_csrf")!;
    assert.notEqual(client.csrf, nonce, "the form's token is not the cookie's value");
    client.cookies.set("bo_login_csrf", "planted");
    const planted = await client.send("POST", "/admin/login", {
      _csrf: "planted",
      company: "acme",
      login: "owner",
      password: PASSWORD,
    });
    assert.equal(planted.status, 403);
    // The form's token with another client's cookie is refused too.
    const other = new Client(w.app);
    await other.get("/admin/login");
    client.cookies.set("bo_login_csrf", other.cookies.get("bo_login_csrf")!);
    const swapped = await client.post("/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(swapped.status, 403);
  });

  await t.step("a sign-in form older than its token's life is refused; a fresh one works", async () => {
    const client = new Client(w.app);
    await client.get("/admin/login");
    now += LOGIN_CSRF_MS + 1;
    const stale = await client.post("/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(stale.status, 403);
    assert.match(stale.text, /Missing or invalid CSRF token/);
    const fresh = await client.signIn("owner");
    assert.equal(fresh.status, 303);
  });

  await t.step("over https (behind a proxy): a __Host- cookie with Path=/ and Secure, and sign-in works", async () => {
    const client = new Client(w.app, { "x-forwarded-proto": "https" });
    await client.get("/admin/login");
    const line = client.setCookies.find((l) => l.startsWith("__Host-bo_login_csrf="))!;
    assert.ok(line, client.setCookies.join("\n"));
    assert.match(line, /Path=\/(;|$)/);
    assert.match(line, /Secure/);
    assert.doesNotMatch(line, /Domain=/i);
    // The plain cookie is not read over https (it could have been planted by another host).
    const plain = new Client(w.app, { "x-forwarded-proto": "https" });
    plain.cookies.set("bo_login_csrf", client.cookies.get("__Host-bo_login_csrf")!);
    plain.csrf = client.csrf;
    const refused = await plain.post("/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(refused.status, 403);
    const res = await client.post("/admin/login", { company: "acme", login: "owner", password: PASSWORD });
    assert.equal(res.status, 303);
    assert.ok(client.setCookies.some((l) => /^__Host-bo_login_csrf=;.*Max-Age=0/i.test(l)), "the nonce is dropped");
  });
});

Deno.test("parseContentDisposition() reads quoted names with '=', ';' and escapes, and filename* wins", () => {
  const p = (v: string) => parseContentDisposition(v).params;
  assert.equal(p('form-data; name="file"; filename="report v=2.csv"').filename, "report v=2.csv");
  assert.equal(p('form-data; name="file"; filename="a; b=c.csv"').filename, "a; b=c.csv");
  assert.equal(p('form-data; name="file"; filename="say \\"hi\\".csv"').filename, 'say "hi".csv');
  assert.equal(p('form-data; name="file"; filename="say %22hi%22.csv"').filename, 'say "hi".csv');
  assert.equal(p("form-data; name=file; filename=plain.csv").filename, "plain.csv");
  assert.equal(
    p('form-data; name="file"; filename="fallback.csv"; filename*=UTF-8\'\'%D0%BE%D1%82%D1%87%D1%91%D1%82.csv')
      .filename,
    "отчёт.csv",
  );
  assert.equal(p('form-data; name="f"; filename="x.csv"; filename*=bogus').filename, "x.csv");
  assert.equal(parseContentDisposition('Form-Data; NAME="f"').type, "form-data");
  assert.equal(p('form-data; NAME="f"').name, "f");
});

Deno.test("parseMultipart() reads what a browser's FormData sends, file names as given", async () => {
  const form = new FormData();
  form.set("_csrf", "t=1");
  form.set("type", "customers");
  form.set("note", "строка\r\nдве");
  const bytes = new Uint8Array([0, 13, 10, 45, 45, 255, 1]);
  form.set("file", new File([bytes], "report v=2.csv", { type: "text/csv" }));
  const req = new Request("http://x/", { method: "POST", body: form });
  const parsed = parseMultipart(new Uint8Array(await req.arrayBuffer()), req.headers.get("content-type")!);
  assert.equal(parsed._csrf, "t=1");
  assert.equal(parsed.type, "customers");
  assert.equal(parsed.note, "строка\r\nдве");
  const file = parsed.file as File;
  assert.ok(file instanceof File);
  assert.equal(file.name, "report v=2.csv");
  assert.equal(file.type, "text/csv");
  assert.deepEqual(new Uint8Array(await file.arrayBuffer()), bytes);
  assert.throws(() => parseMultipart(new Uint8Array(), "multipart/form-data"), /multipart body cannot be read/);
  assert.throws(
    () => parseMultipart(new TextEncoder().encode("--b\r\nno end"), "multipart/form-data; boundary=b"),
    /multipart body cannot be read/,
  );
});

Deno.test("points form: a key is required, zero and invisible comments are refused, typed values are kept", async () => {
  const { w } = await setup();
  await using _ = w;
  const customer = await w.call("POST", "/api/customer/update", { form: { fname: "A", phone: "79001110001" } });
  const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Main" } });
  const page = `/admin/customers/${customer.body.id}`;
  const manager = new Client(w.app);
  assert.equal((await manager.signIn("manager")).status, 303);
  const keyOf = (text: string) => /name="idempotency_key" value="([^"]+)"/.exec(text)![1]!;
  const balance = async () => {
    const r = await w.call("GET", "/api/customer", { query: { id: customer.body.id, bonuses: 1 } });
    return JSON.stringify(r.body);
  };
  const before = await balance();

  for (const comment of ["\u200b", "\u200b\u2060 \ufeff", "\u00a0\u200d"]) {
    const key = keyOf((await manager.get(page)).text);
    const res = await manager.post(`${page}/points`, {
      bonus_id: program.body.id,
      amount: "10",
      comment,
      idempotency_key: key,
    });
    assert.equal(res.status, 400, JSON.stringify(comment));
    assert.match(res.text, /A comment is required to adjust points/);
  }

  await manager.get(page);
  const noKey = await manager.post(`${page}/points`, { bonus_id: program.body.id, amount: "10", comment: "Gift" });
  assert.equal(noKey.status, 400);
  assert.match(noKey.text, /Parameter &quot;idempotency_key&quot; is required|Parameter "idempotency_key" is required/);

  const zero = await manager.post(`${page}/points`, {
    bonus_id: program.body.id,
    amount: "0,00",
    comment: "Gift for the lost card",
    idempotency_key: keyOf((await manager.get(page)).text),
  });
  assert.equal(zero.status, 400);
  assert.match(zero.text, /Invalid amount (&quot;|")0,00(&quot;|"): must not be 0/);
  assert.match(zero.text, /id="adj-amount"[^>]*value="0,00"/, "the amount typed is shown again");
  assert.match(zero.text, /id="adj-comment"[^>]*value="Gift for the lost card"/, "the comment typed is shown again");
  assert.equal(await balance(), before, "nothing was credited");

  const ok = await manager.post(`${page}/points`, {
    bonus_id: program.body.id,
    amount: "5",
    comment: "Gift \u200b",
    idempotency_key: keyOf(zero.text),
  });
  assert.equal(ok.status, 303, "a visible comment with a format character is a comment");
});

Deno.test("every /admin URL id is bounded: an over-long or odd one is a 404 page, never a 500", async () => {
  const { w } = await setup();
  await using _ = w;
  const owner = new Client(w.app);
  assert.equal((await owner.signIn("owner")).status, 303);
  await owner.get("/admin");
  const long = "x".repeat(2100);
  for (
    const path of [
      `/admin/connections/dead/${long}/retry`,
      `/admin/connections/${long}`,
      `/admin/access/keys/${long}/revoke`,
      `/admin/access/users/${long}/delete`,
      `/admin/access/users/a%20b/delete`,
      `/admin/directories/groups/${long}`,
      `/admin/directories/groups/1x`,
      `/admin/customers/${long}/points`,
      `/admin/customers/1/cards/${long}/status`,
      `/admin/import/jobs/${long}`,
    ]
  ) {
    const res = path.startsWith("/admin/import/jobs") ? await owner.get(path) : await owner.post(path, {});
    assert.equal(res.status, 404, `${path.slice(0, 60)}: ${res.status}`);
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.ok(res.text.length < 20_000, "the page does not echo the whole id");
  }
});
