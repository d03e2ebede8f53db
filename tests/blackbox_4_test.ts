/**
 * Black-box checks of the back office (issue 12), written by an outside tester from docs/admin.md only.
 * Each test is one reported defect: it FAILS while the defect is there. A real server process on a temporary store;
 * users, keys and imports through the real tasks.
 */
import assert from "node:assert/strict";
import { runTask, type ServerProcess, startServer, tempDir } from "./kit.ts";

const OPTS = { sanitizeResources: false, sanitizeOps: false };

/** A browser-like client of a real server: keeps cookies, reads the CSRF token of the last page. */
class Browser {
  cookies = new Map<string, string>();
  csrf = "";
  constructor(readonly base: string) {}

  async send(method: string, path: string, body?: Record<string, string> | FormData) {
    const headers = new Headers();
    if (this.cookies.size > 0) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const payload = body instanceof FormData ? body : body ? new URLSearchParams(body) : undefined;
    const res = await fetch(this.base + path, { method, headers, body: payload, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const [k, v] = pair!.split("=") as [string, string];
      if (/Max-Age=0/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    const text = await res.text();
    const m = text.match(/name="_csrf" value="([^"]+)"/);
    if (m) this.csrf = m[1]!;
    return { status: res.status, text, location: res.headers.get("location") };
  }
  get(path: string) {
    return this.send("GET", path);
  }
  post(path: string, form: Record<string, string>) {
    return this.send("POST", path, { _csrf: this.csrf, ...form });
  }
  async signIn(company: string, login: string, password: string) {
    await this.get("/admin/login");
    const r = await this.post("/admin/login", { company, login, password });
    assert.equal(r.status, 303, `sign-in of ${login}: ${r.status}`);
    await this.get("/admin");
  }
}

/** A store with company acme (write key), one owner "boss", and a running server. */
async function setup(dir: string): Promise<{ kvPath: string; key: string; server: ServerProcess; pw: string }> {
  const kvPath = `${dir}/kv.db`;
  const k = await runTask("apikey", ["create", "--company", "acme", "--access", "write"], { kvPath });
  const key = k.out.match(/lk_[A-Za-z0-9_-]+/)![0];
  const u = await runTask("admin", ["create", "--company", "acme", "--login", "boss", "--role", "owner"], { kvPath });
  const pw = u.out.match(/shown once\): (\S+)/)![1]!;
  const server = startServer({ kvPath });
  await server.ready(key);
  return { kvPath, key, server, pw };
}

async function newUser(kvPath: string, login: string, role: string): Promise<string> {
  const r = await runTask("admin", ["create", "--company", "acme", "--login", login, "--role", role], { kvPath });
  assert.equal(r.code, 0, r.err);
  return r.out.match(/shown once\): (\S+)/)![1]!;
}

Deno.test({
  name: "a deleted user's session does not come back when the login is created again (with the new role)",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { kvPath, server, pw } = await setup(dir.path);
    await using _ = server;
    const ivanPw = await newUser(kvPath, "ivan", "viewer");
    const ivan = new Browser(server.base);
    await ivan.signIn("acme", "ivan", ivanPw);
    const boss = new Browser(server.base);
    await boss.signIn("acme", "boss", pw);
    await boss.get("/admin/access");
    assert.equal((await boss.post("/admin/access/users/ivan/delete", {})).status, 303);
    assert.equal((await ivan.get("/admin")).status, 303, "deleted: out at once");
    // a different person gets the login "ivan", as an owner
    await boss.get("/admin/access");
    assert.equal((await boss.post("/admin/access/users", { login: "ivan", role: "owner" })).status, 200);
    const old = await ivan.get("/admin/access");
    assert.equal(old.status, 303, "the old viewer's cookie must not open the owners' page: " + old.status);
  },
});

Deno.test({
  name: "a new password (admin passwd) ends the user's existing sessions",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { kvPath, server } = await setup(dir.path);
    await using _ = server;
    const mPw = await newUser(kvPath, "mgr", "manager");
    const thief = new Browser(server.base);
    await thief.signIn("acme", "mgr", mPw);
    const r = await runTask("admin", ["passwd", "--company", "acme", "--login", "mgr"], { kvPath });
    assert.equal(r.code, 0, r.err);
    const after = await thief.get("/admin");
    assert.equal(after.status, 303, "a session made with the old password still works: " + after.status);
  },
});

Deno.test({
  name: "import upload: a file name with '=' is read as the browser sent it",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { server, pw } = await setup(dir.path);
    await using _ = server;
    const boss = new Browser(server.base);
    await boss.signIn("acme", "boss", pw);
    await boss.get("/admin/import");
    const form = new FormData();
    form.set("_csrf", boss.csrf);
    form.set("type", "customers");
    form.set("file", new File(["external_id,fname\nQ1,x\n"], "report v=2.csv"));
    const r = await boss.send("POST", "/admin/import/check", form);
    assert.doesNotMatch(r.text, /Cannot tell the format/);
    assert.match(r.text, /Dry run: nothing was written: report v=2\.csv/);
  },
});

Deno.test({
  name: "import cards dry run: a card whose customer does not exist is counted as rejected, as the run does",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const kvPath = `${dir.path}/kv.db`;
    const file = `${dir.path}/c.csv`;
    await Deno.writeTextFile(file, "uid,customer_external_id\nC9,NOPE\n");
    const dry = await runTask("import", [file, "--type", "cards", "--dry-run"], { kvPath });
    const run = await runTask("import", [file, "--type", "cards"], { kvPath });
    assert.match(run.out + run.err, /1 rejected/);
    assert.match(dry.out + dry.err, /0 created.*1 rejected/, dry.out + dry.err);
  },
});

Deno.test({
  name: "points adjustment: an invisible comment (zero-width space) is not a comment",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { server, pw, key } = await setup(dir.path);
    await using _ = server;
    await fetch(`${server.base}/api/bonusprogram/update?apikey=${key}`, {
      method: "POST",
      body: new URLSearchParams({ name: "P" }),
    })
      .then((r) => r.body?.cancel());
    await fetch(`${server.base}/api/customer/update?apikey=${key}`, {
      method: "POST",
      body: new URLSearchParams({ fname: "A", phone: "79001110001" }),
    }).then((r) => r.body?.cancel());
    const boss = new Browser(server.base);
    await boss.signIn("acme", "boss", pw);
    const page = await boss.get("/admin/customers/1");
    const idem = page.text.match(/name="idempotency_key" value="([^"]+)"/)![1]!;
    const r = await boss.post("/admin/customers/1/points", {
      bonus_id: "1",
      amount: "10",
      comment: "\u200b",
      idempotency_key: idem,
    });
    assert.equal(r.status, 400, "credited without a visible comment: " + r.status);
  },
});

Deno.test({
  name: "dead-letter retry with an over-long id is a 404 page, not a 500 (KV key too large)",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { server, pw } = await setup(dir.path);
    await using _ = server;
    const boss = new Browser(server.base);
    await boss.signIn("acme", "boss", pw);
    const r = await boss.post(`/admin/connections/dead/${"x".repeat(2100)}/retry`, {});
    assert.equal(r.status, 404);
  },
});

Deno.test({
  name: "sign-in CSRF: a cookie/field pair the client made up itself is not accepted",
  ...OPTS,
  fn: async () => {
    await using dir = await tempDir("bb4_");
    const { server, pw } = await setup(dir.path);
    await using _ = server;
    const res = await fetch(`${server.base}/admin/login`, {
      method: "POST",
      headers: { cookie: "bo_login_csrf=planted" },
      body: new URLSearchParams({ _csrf: "planted", company: "acme", login: "boss", password: pw }),
      redirect: "manual",
    });
    await res.body?.cancel();
    assert.equal(res.status, 403, "a planted bo_login_csrf value signs in: " + res.status);
  },
});
