/**
 * The back office's import and connections pages and the dashboard's widgets, through the real app (app.request):
 * roles (a viewer sees no buttons and a forged POST is 403), CSRF, bad input named, the dry run's rejected rows
 * with their lines, the run and its record, callback URLs, the write-only secret, and retrying a dead letter.
 */
import assert from "node:assert/strict";
import type { AdminRole } from "../domain/admin_user.ts";
import { getConnection } from "../storage/connections.ts";
import { keys, webhookKeys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { killEvent, type WebhookEvent } from "../storage/webhooks.ts";
import { adminActor, createAdminUser } from "../usecases/admin_users.ts";
import { type Config } from "../config.ts";
import { world } from "./kit.ts";

type App = { request: (url: string, init: RequestInit) => Response | Promise<Response> };

/** A browser-like client: keeps cookies and the CSRF token of the last page; sends forms and files. */
class Client {
  cookies = new Map<string, string>();
  csrf = "";
  constructor(readonly app: App) {}

  async send(method: string, path: string, body?: URLSearchParams | FormData) {
    const headers = new Headers();
    if (this.cookies.size > 0) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await this.app.request(path, { method, headers, body, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
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
  post(path: string, form: Record<string, string> = {}) {
    return this.send("POST", path, new URLSearchParams({ _csrf: this.csrf, ...form }));
  }
  upload(path: string, file: { name: string; text: string } | null, form: Record<string, string> = {}) {
    const data = new FormData();
    for (const [k, v] of Object.entries({ _csrf: this.csrf, ...form })) data.set(k, v);
    if (file) data.set("file", new File([file.text], file.name, { type: "text/csv" }));
    return this.send("POST", path, data);
  }
}

const PASSWORD = "correct horse battery";

async function setup(config: Partial<Config> = {}) {
  const w = await world({ config });
  const store = createStore(w.kv);
  for (const role of ["owner", "manager", "viewer"] as AdminRole[]) {
    await createAdminUser(store, adminActor("acme", "setup"), {
      login: role,
      role,
      password: PASSWORD,
      iterations: 1000,
    });
  }
  const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Main" } });
  assert.equal(program.status, 200, program.text);
  return { w, programId: program.body.id as number };
}

async function signedIn(app: App, role: AdminRole): Promise<Client> {
  const client = new Client(app);
  await client.get("/admin/login");
  const res = await client.post("/admin/login", { company: "acme", login: role, password: PASSWORD });
  assert.equal(res.status, 303, res.text);
  return client;
}

const CSV = "external_id;lname;fname;phone;email\n" +
  "A-1;Петрова;Мария;+7 900 000-00-01;maria@example.com\n" +
  "A-2;Сидоров;Пётр;+7 900 000-00-02;not-an-email\n" +
  "A-3;Кузнецов;Иван;+7 900 000-00-03;ivan@example.com\n";

async function customerCount(w: Awaited<ReturnType<typeof world>>): Promise<number> {
  return (await Array.fromAsync(w.kv.list({ prefix: keys.customers("acme") }))).length;
}

Deno.test("back office import page", async (t) => {
  const { w } = await setup();
  await using _ = w;

  await t.step("a viewer sees past imports but no upload form, and a forged upload or run is 403", async () => {
    const viewer = await signedIn(w.app, "viewer");
    const page = await viewer.get("/admin/import");
    assert.equal(page.status, 200);
    assert.match(page.text, /Past imports/);
    assert.doesNotMatch(page.text, /action="\/admin\/import\/check"/);
    const forged = await viewer.upload("/admin/import/check", { name: "a.csv", text: CSV });
    assert.equal(forged.status, 403);
    assert.match(forged.text, /Role &quot;viewer&quot; cannot change data|Role "viewer" cannot change data/);
    const run = await viewer.post("/admin/import/run", { upload: "001700000000000-0a1b2c3d" });
    assert.equal(run.status, 403);
  });

  await t.step("an upload without the CSRF token is 403 and keeps nothing", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/import");
    const res = await manager.upload("/admin/import/check", { name: "a.csv", text: CSV }, { _csrf: "" });
    assert.equal(res.status, 403);
    assert.match(res.text, /Missing or invalid CSRF token/);
    const page = await manager.get("/admin/import");
    assert.match(page.text, /No imports yet/);
  });

  await t.step("bad input is refused by name on the page, with the form kept", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/import");
    const noFile = await manager.upload("/admin/import/check", null, { type: "customers" });
    assert.equal(noFile.status, 400);
    assert.match(noFile.text, /Parameter &quot;file&quot; is required: choose a file to import/);
    const badType = await manager.upload("/admin/import/check", { name: "a.csv", text: CSV }, { type: "orders" });
    assert.equal(badType.status, 400);
    assert.match(badType.text, /Invalid type &quot;orders&quot;/);
    const badMatch = await manager.upload("/admin/import/check", { name: "a.csv", text: CSV }, { match: "name" });
    assert.equal(badMatch.status, 400);
    assert.match(badMatch.text, /Invalid match &quot;name&quot;/);
    assert.match(badMatch.text, /value="name"/, "the form shows what was sent");
    const noFormat = await manager.upload("/admin/import/check", { name: "a.dat", text: CSV });
    assert.equal(noFormat.status, 400);
    assert.match(noFormat.text, /Cannot tell the format of &quot;a.dat&quot;/);
    const badColumn = await manager.upload("/admin/import/check", { name: "a.csv", text: "shoe_size\n42\n" });
    assert.equal(badColumn.status, 400);
    assert.match(badColumn.text, /shoe_size/);
    assert.equal(await customerCount(w), 0);
  });

  let upload = "";
  await t.step("the dry run reports counts and the rejected row with its line, and writes no customer", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/import");
    const res = await manager.upload("/admin/import/check", { name: "people.csv", text: CSV });
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /Dry run: nothing was written: people.csv/);
    assert.match(res.text, /Read as: CSV, utf-8, CSV delimiter \(delimiter\) &quot;;&quot;/);
    assert.match(res.text, /data-count="created">2</);
    assert.match(res.text, /data-count="rejected">1</);
    assert.match(res.text, /<tr data-line="3"><td class="num">3<\/td><td>email<\/td>/);
    upload = /name="upload" value="([^"]+)"/.exec(res.text)?.[1] ?? "";
    assert.notEqual(upload, "");
    assert.equal(await customerCount(w), 0);
  });

  await t.step("the run writes the good rows as admin:<login>, shows its report, and runs an upload once", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/import");
    const res = await manager.post("/admin/import/run", { upload, rows: "3" });
    assert.equal(res.status, 303, res.text);
    const jobPath = res.headers.get("location") ?? "";
    assert.match(jobPath, /^\/admin\/import\/jobs\/\d{15}-[0-9a-f]{8}$/);
    let job = await manager.get(jobPath);
    for (let i = 0; i < 100 && !/data-state="done"/.test(job.text); i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = await manager.get(jobPath);
    }
    assert.match(job.text, /data-state="done"/);
    assert.match(job.text, /data-count="created">2</);
    assert.match(job.text, /data-line="3"/);
    const progress = await manager.get(`${jobPath}/progress`);
    assert.equal(progress.status, 200);
    assert.deepEqual(JSON.parse(progress.text), { state: "done", rows: 3, total: 3 });
    assert.equal(await customerCount(w), 2);
    const again = await manager.post("/admin/import/run", { upload, rows: "3" });
    assert.equal(again.headers.get("location"), jobPath);
    assert.equal(await customerCount(w), 2);
    const [first] = await Array.fromAsync(
      w.kv.list<{ id: number; external_id: string }>({ prefix: keys.customers("acme") }),
    );
    const id = first!.value.id;
    const page = await manager.get(`/admin/customers/${id}`);
    assert.match(page.text, /admin:manager/);
  });

  await t.step("past imports list the check and the run; the dashboard shows the latest", async () => {
    const viewer = await signedIn(w.app, "viewer");
    const page = await viewer.get("/admin/import");
    assert.equal((page.text.match(/people\.csv/g) ?? []).length >= 2, true);
    assert.match(page.text, /Line 3: email: /);
    const dash = await viewer.get("/admin");
    assert.match(dash.text, /data-widget="imports"/);
    assert.match(dash.text, /id="latest-imports"/);
    assert.match(dash.text, /people\.csv \(customers\)/);
  });

  await t.step("an unknown upload or job is named", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/import");
    const run = await manager.post("/admin/import/run", { upload: "001700000000000-0a1b2c3d" });
    assert.equal(run.status, 400);
    assert.match(run.text, /Upload &quot;001700000000000-0a1b2c3d&quot; not found/);
    const job = await manager.get("/admin/import/jobs/001700000000000-0a1b2c3d");
    assert.equal(job.status, 404);
  });
});

Deno.test("back office import refuses a file over the size setting with a clear message", async () => {
  const { w } = await setup({ importMaxBodyBytes: 1000 });
  await using _ = w;
  const manager = await signedIn(w.app, "manager");
  await manager.get("/admin/import");
  const page = await manager.get("/admin/import");
  assert.match(page.text, /At most 0 KiB|At most 1 KiB/);
  const big = "external_id\n" + "X\n".repeat(700);
  const res = await manager.upload("/admin/import/check", { name: "big.csv", text: big });
  assert.equal(res.status, 400);
  assert.match(res.text, /File is too large: at most 1000 bytes \(setting IMPORT_MAX_BODY_BYTES\)/);
  const huge = await manager.upload("/admin/import/check", { name: "big.csv", text: "X\n".repeat(60_000) });
  assert.equal(huge.status, 413);
  assert.match(huge.text, /File is too large: at most 1000 bytes/);
});

Deno.test("back office connections page", async (t) => {
  const { w, programId } = await setup();
  await using _ = w;

  await t.step("a manager connects a shop; the page shows its full callback URL and never the secret", async () => {
    const manager = await signedIn(w.app, "manager");
    const empty = await manager.get("/admin/connections");
    assert.equal(empty.status, 200);
    assert.match(empty.text, /No shops connected yet/);
    const res = await manager.post("/admin/connections", {
      platform: "shopify",
      shop: "acme.myshopify.com",
      secret: "whsec_secret_value_1",
      bonus_id: String(programId),
      percent: "5",
      min_order: "",
      name: "Acme online",
    });
    assert.equal(res.status, 303, res.text);
    assert.equal(res.headers.get("location"), "/admin/connections?ok=saved");
    const page = await manager.get("/admin/connections?ok=saved");
    assert.match(page.text, /Acme online \(shopify\)/);
    assert.match(page.text, /<code class="callback">http:\/\/localhost\/webhooks\/shopify\/[^<]+<\/code>/);
    assert.doesNotMatch(page.text, /whsec_secret_value_1/);
  });

  const id = (await Array.fromAsync(w.kv.list<{ id: string }>({ prefix: webhookKeys.connections() })))[0]!.value.id;

  await t.step("bad input is named and changes nothing", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/connections");
    const noSecret = await manager.post("/admin/connections", {
      platform: "woocommerce",
      shop: "https://shop.example",
      secret: "",
      bonus_id: String(programId),
    });
    assert.equal(noSecret.status, 400);
    assert.match(noSecret.text, /Parameter &quot;secret&quot; is required to create a connection/);
    const badPercent = await manager.post(`/admin/connections/${id}`, {
      platform: "shopify",
      shop: "acme.myshopify.com",
      secret: "",
      bonus_id: String(programId),
      percent: "many",
    });
    assert.equal(badPercent.status, 400);
    assert.match(badPercent.text, /percent/);
    assert.match(badPercent.text, /value="many"/);
    const badPlatform = await manager.post("/admin/connections", {
      platform: "ebay",
      shop: "x",
      secret: "12345678",
      bonus_id: String(programId),
    });
    assert.equal(badPlatform.status, 400);
    assert.match(badPlatform.text, /Invalid platform &quot;ebay&quot;/);
    const badProgram = await manager.post("/admin/connections", {
      platform: "shopify",
      shop: "x",
      secret: "12345678",
      bonus_id: "999",
    });
    assert.equal(badProgram.status, 404);
    assert.equal((await Array.fromAsync(w.kv.list({ prefix: webhookKeys.connections() }))).length, 1);
  });

  await t.step("an edit with an empty secret keeps the secret; a new one replaces it", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/connections");
    const base = { platform: "shopify", shop: "acme.myshopify.com", bonus_id: String(programId), percent: "" };
    const keep = await manager.post(`/admin/connections/${id}`, { ...base, secret: "", name: "Renamed" });
    assert.equal(keep.status, 303, keep.text);
    let stored = await getConnection(w.kv, id);
    assert.equal(stored?.secret, "whsec_secret_value_1");
    assert.equal(stored?.name, "Renamed");
    assert.equal(stored?.percent_bp, null);
    const change = await manager.post(`/admin/connections/${id}`, { ...base, secret: "whsec_new_secret_2" });
    assert.equal(change.status, 303);
    stored = await getConnection(w.kv, id);
    assert.equal(stored?.secret, "whsec_new_secret_2");
    assert.equal(stored?.secret_version, 2);
    const unknown = await manager.post("/admin/connections/nope", { ...base, secret: "" });
    assert.equal(unknown.status, 404);
  });

  // A delivery that kept failing.
  const now = Date.now();
  const event: WebhookEvent = {
    id: "dead-1",
    company_id: "acme",
    connection_id: id,
    platform: "shopify",
    topic: "orders/paid",
    received_date: now,
    dedupe: "d1",
    size: 0,
    chunks: 0,
    status: "queued",
    attempts: 7,
    last_error: null,
    outcome: null,
    done_date: null,
  };
  await w.kv.set(webhookKeys.event(event.id), event);
  const entry = await w.kv.get<WebhookEvent>(webhookKeys.event(event.id));
  assert.equal(
    await killEvent(w.kv, entry as Deno.KvEntry<WebhookEvent>, {
      error: "Boom: no such program",
      now,
      body: new Uint8Array(0),
      retentionMs: 30 * 86_400_000,
    }),
    true,
  );

  await t.step(
    "a viewer sees the dead letter and counts but no buttons, and a forged retry or edit is 403",
    async () => {
      const viewer = await signedIn(w.app, "viewer");
      const page = await viewer.get("/admin/connections");
      assert.match(page.text, /data-dead="dead-1"/);
      assert.match(page.text, /Boom: no such program/);
      assert.match(page.text, /id="stats-/);
      assert.doesNotMatch(page.text, /\/retry"/);
      assert.doesNotMatch(page.text, /action="\/admin\/connections"/);
      const retry = await viewer.post("/admin/connections/dead/dead-1/retry");
      assert.equal(retry.status, 403);
      const edit = await viewer.post(`/admin/connections/${id}`, { platform: "shopify", shop: "x", bonus_id: "1" });
      assert.equal(edit.status, 403);
      assert.equal((await w.kv.get(webhookKeys.deadLetter("dead-1"))).value !== null, true);
      const dash = await viewer.get("/admin");
      assert.match(dash.text, /id="stat-dead-letters"><div>Dead letters<\/div><div class="big">1</);
      assert.match(dash.text, /id="stat-delivery-failures"><div>[^<]+<\/div><div class="big">1</);
    },
  );

  await t.step("a retry without the CSRF token is 403; with it the dead letter goes back in the queue", async () => {
    const manager = await signedIn(w.app, "manager");
    await manager.get("/admin/connections");
    const noToken = await manager.post("/admin/connections/dead/dead-1/retry", { _csrf: "" });
    assert.equal(noToken.status, 403);
    const res = await manager.post("/admin/connections/dead/dead-1/retry");
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/admin/connections?ok=retried");
    assert.equal((await w.kv.get(webhookKeys.deadLetter("dead-1"))).value, null);
    assert.equal((await w.kv.get<WebhookEvent>(webhookKeys.event("dead-1"))).value?.status, "queued");
    const again = await manager.post("/admin/connections/dead/dead-1/retry");
    assert.equal(again.status, 404);
    const page = await manager.get("/admin/connections?ok=retried");
    assert.match(page.text, /Put back in the queue/);
    assert.match(page.text, /No dead letters/);
  });

  await t.step("Russian texts", async () => {
    const viewer = await signedIn(w.app, "viewer");
    const page = await viewer.get("/admin/connections?lang=ru");
    assert.match(page.text, /Подключённые магазины/);
    assert.match(page.text, /href="\/admin\/import"[^>]*>Импорт</);
  });
});
