/**
 * The back office in a real browser: the service as a real process, Chromium driven by puppeteer-core, axe-core
 * injected into every page. Chromium comes from CHROMIUM_PATH or the Debian package (/usr/bin/chromium; .ci/run
 * installs it). With ADMIN_SCREENSHOTS=1 the main pages are saved to docs/admin/*.png.
 */
import assert from "node:assert/strict";
import axe from "axe-core";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { createApiKey } from "../storage/api_keys.ts";
import { webhookKeys } from "../storage/keys.ts";
import { killEvent, type WebhookEvent } from "../storage/webhooks.ts";
import { createStore } from "../storage/store.ts";
import { adminActor, createAdminUser } from "../usecases/admin_users.ts";
import { request, ROOT, startServer, tempDir } from "./kit.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const SCREENSHOTS = Deno.env.get("ADMIN_SCREENSHOTS") === "1";
const PASSWORD = "correct horse battery";

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Runs axe-core on the page and fails on any serious or critical violation. */
async function checkA11y(page: Page, what: string): Promise<void> {
  await page.addScriptTag({ content: axe.source });
  const violations: { id: string; impact: string; nodes: number; target: string }[] = await page.evaluate(
    async () => {
      // deno-lint-ignore no-explicit-any
      const result = await (globalThis as any).axe.run((globalThis as any).document, { resultTypes: ["violations"] });
      // deno-lint-ignore no-explicit-any
      return result.violations.map((v: any) => ({
        id: v.id,
        impact: v.impact,
        nodes: v.nodes.length,
        target: String(v.nodes[0]?.target ?? ""),
      }));
    },
  );
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${what}: accessibility violations`);
}

async function shoot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await Deno.mkdir(`${ROOT}docs/admin`, { recursive: true });
  await page.screenshot({ path: `${ROOT}docs/admin/${name}.png`, fullPage: false });
}

async function go(page: Page, url: string): Promise<void> {
  const res = await page.goto(url, { waitUntil: "load" });
  assert.ok(res, url);
}

/** Submits the form a button belongs to and waits for the next page. */
async function clickAndWait(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(selector)]);
}

async function signIn(page: Page, base: string, login: string): Promise<void> {
  await go(page, `${base}/admin`);
  assert.match(page.url(), /\/admin\/login$/);
  await page.type("#company", "acme");
  await page.type("#login", login);
  await page.type("#password", PASSWORD);
  await clickAndWait(page, "form.login button[type=submit]");
  assert.equal(new URL(page.url()).pathname, "/admin");
}

async function signOut(page: Page): Promise<void> {
  await clickAndWait(page, "form[action='/admin/logout'] button");
  assert.match(page.url(), /\/admin\/login$/);
}

/** Sends a POST from inside the page (as a forged form would), returning its status. */
function postFromPage(page: Page, path: string, form: Record<string, string>): Promise<number> {
  return page.evaluate(
    async (path, form) => {
      const res = await fetch(path, { method: "POST", body: new URLSearchParams(form), redirect: "manual" });
      return res.status;
    },
    path,
    form,
  );
}

Deno.test({
  name: "the back office in Chromium: sign in, find, edit, block, grant points, roles, CSRF, accessibility",
  ignore: !exists(CHROMIUM),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using dir = await tempDir("loyalty_admin_browser_");
    const kvPath = `${dir.path}/store.kv`;
    let key: string;
    {
      const kv = await Deno.openKv(kvPath);
      key = (await createApiKey(kv, { companyId: "acme", userId: 1, access: "write" })).key;
      const store = createStore(kv);
      for (const role of ["owner", "manager", "viewer"] as const) {
        await createAdminUser(store, adminActor("acme", "setup"), {
          login: role,
          role,
          password: PASSWORD,
          iterations: 1000,
        });
      }
      kv.close();
    }
    await using server = startServer({ kvPath });
    await server.ready(key);
    const base = server.base;
    const api = (method: string, path: string, options: Parameters<typeof request>[3] = {}) =>
      request(base, method, path, { key, ...options });

    const customer = await api("POST", "/api/customer/update", {
      form: { lname: "Смирнова", fname: "Ольга", phone: "+7 (912) 345-67-89", email: "olga@example.com" },
    });
    assert.equal(customer.status, 200, customer.text);
    const id = customer.body.id as number;
    const program = await api("POST", "/api/bonusprogram/update", { form: { name: "Основная", accrual_percent: 5 } });
    assert.equal(program.status, 200, program.text);
    for (
      const [path, form] of [
        ["/api/customergroup/update", { group_name: "Gold", min_accumulated_sales: 10000 }],
        ["/api/cardtype/update", { type_name: "Plastic" }],
      ] as const
    ) {
      const made = await api("POST", path, { form });
      assert.equal(made.status, 200, made.text);
    }
    const card = await api("POST", "/api/customer/insertCard", {
      query: { uid: "7000001" },
      form: { customer_id: id, status: "ACTIVE" },
    });
    assert.equal(card.status, 200, card.text);
    const sale = await api("POST", "/api/purchase", {
      form: { customer_id: id, bonus_id: program.body.id, order_id: "ORD-1001", amount: "1500" },
    });
    assert.equal(sale.status, 200, sale.text);
    for (let i = 0; i < 5; i++) {
      await api("POST", "/api/customer/update", {
        form: { lname: `Smith${i}`, fname: "John", phone: `+7900000000${i}` },
      });
    }

    const browser: Browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--lang=en-GB"],
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1024, height: 900 });
      page.setDefaultTimeout(30_000);
      // The pages forbid inline scripts (CSP); axe-core is injected by the test, so the test lifts that for itself.
      await page.setBypassCSP(true);

      await t.step("sign-in page and a manager signs in", async () => {
        await go(page, `${base}/admin/login`);
        await checkA11y(page, "sign-in");
        await shoot(page, "login");
        await signIn(page, base, "manager");
        await checkA11y(page, "dashboard");
        assert.match(await page.$eval("#stat-customers .big", (e) => e.textContent ?? ""), /6/);
        assert.ok(await page.$("svg[role=img]"), "the chart is drawn");
        await shoot(page, "dashboard");
      });

      await t.step("finds a customer by a phone written differently", async () => {
        await page.type("#q", "8 912 345 67 89");
        await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.keyboard.press("Enter")]);
        assert.equal(new URL(page.url()).pathname, `/admin/customers/${id}`);
        assert.match(await page.$eval("h1", (e) => e.textContent ?? ""), /Смирнова/);
        assert.match(await page.$eval("table.ledger", (e) => e.textContent ?? ""), /ORD-1001/);
        await checkA11y(page, "customer page");
        await shoot(page, "customer");
      });

      await t.step("search as you type lists matches of a last-name prefix", async () => {
        await page.type("#q", "smi");
        await page.waitForSelector("#suggest li a");
        const found = await page.$$eval("#suggest li a", (as) => as.map((a) => a.textContent ?? ""));
        assert.equal(found.length, 5);
        await page.$eval("#q", (e) => (e as unknown as { value: string }).value = "");
      });

      await t.step("edits a field and sees the audit entry", async () => {
        await page.$eval("#f-fname", (e) => (e as unknown as { value: string }).value = "");
        await page.type("#f-fname", "Олеся");
        await clickAndWait(page, "#save-profile");
        assert.equal(await page.$eval("#f-fname", (e) => (e as unknown as { value: string }).value), "Олеся");
        const history = await page.$eval("#history tbody", (e) => e.textContent ?? "");
        assert.match(history, /admin:manager/);
        assert.match(history, /fname/);
        assert.match(history, /Олеся/);
      });

      await t.step("refuses a bad email with the API's message", async () => {
        const apiReply = await api("POST", "/api/customer/update", {
          query: { id },
          form: { email: "olga@@example" },
        });
        assert.equal(apiReply.status, 400);
        await page.$eval("#f-email", (e) => (e as unknown as { value: string }).value = "");
        await page.type("#f-email", "olga@@example");
        await clickAndWait(page, "#save-profile");
        assert.equal(await page.$eval("#profile-error", (e) => e.textContent), apiReply.body.info);
        assert.equal(await page.$eval("#f-email", (e) => e.getAttribute("aria-invalid")), "true");
        await checkA11y(page, "customer page with an error");
        const stored = await api("GET", "/api/customer", { query: { id } });
        assert.equal(stored.body.customers[0].email, "olga@example.com");
      });

      await t.step("blocks a card", async () => {
        await go(page, `${base}/admin/customers/${id}`);
        await clickAndWait(page, `#card-${card.body.card_id ?? 1} button[value=BLOCKED]`);
        assert.equal(await page.$eval(`#card-${card.body.card_id ?? 1} .card-status`, (e) => e.textContent), "BLOCKED");
        const read = await api("GET", "/api/card", { query: { uid: "7000001" } });
        assert.match(read.text, /BLOCKED/);
      });

      await t.step("grants points with a comment and sees the ledger entry", async () => {
        await page.type("#adj-amount", "250");
        await page.type("#adj-comment", "Goodwill: broken coffee machine");
        await clickAndWait(page, "#apply-points");
        assert.match(await page.$eval("table.ledger", (e) => e.textContent ?? ""), /Goodwill: broken coffee machine/);
        const history = await api("GET", "/api/customer/bonusHistory", {
          query: { customer_id: id, bonus_id: program.body.id },
        });
        assert.match(history.text, /Goodwill: broken coffee machine/);
      });

      await t.step("directories page", async () => {
        await go(page, `${base}/admin/directories`);
        await checkA11y(page, "directories");
        await shoot(page, "directories");
      });

      await t.step("runs a small import with one bad row: the dry run names its line, then the run", async () => {
        const file = `${dir.path}/new_customers.csv`;
        await Deno.writeTextFile(
          file,
          "external_id;lname;fname;phone;email\n" +
            "IMP-1;Орлова;Вера;+7 901 000-00-01;vera@example.com\n" +
            "IMP-2;Волков;Ян;+7 901 000-00-02;not-an-email\n",
        );
        await go(page, `${base}/admin/import`);
        await checkA11y(page, "import page");
        const input = await page.$("#i-file");
        assert.ok(input, "the upload form is there");
        await (input as unknown as { uploadFile: (path: string) => Promise<void> }).uploadFile(file);
        await clickAndWait(page, "form[action='/admin/import/check'] button[type=submit]");
        assert.match(await page.$eval("h2#h-check", (e) => e.textContent ?? ""), /nothing was written/);
        assert.equal(await page.$eval("#check-counts [data-count=created]", (e) => e.textContent), "1");
        assert.equal(await page.$eval("#check-counts [data-count=rejected]", (e) => e.textContent), "1");
        assert.match(await page.$eval("tr[data-line='3']", (e) => e.textContent ?? ""), /^3email.*email/);
        await checkA11y(page, "dry run report");
        await shoot(page, "import_check");
        await clickAndWait(page, "#run-import");
        assert.match(new URL(page.url()).pathname, /^\/admin\/import\/jobs\//);
        await page.waitForSelector("#import-job[data-state=done]", { timeout: 60_000 });
        assert.equal(await page.$eval("#job-counts [data-count=created]", (e) => e.textContent), "1");
        await checkA11y(page, "import run");
        const found = await api("GET", "/api/customer", { query: { external_id: "IMP-1" } });
        assert.equal(found.body.customers?.[0]?.lname, "Орлова", found.text);
        await go(page, `${base}/admin/import`);
        assert.match(await page.$eval("#past-imports", (e) => e.textContent ?? ""), /new_customers\.csv/);
        await shoot(page, "import");
      });

      await t.step("the connections page shows a connection and retries a dead letter", async () => {
        const made = await api("POST", "/api/connection/update", {
          form: {
            platform: "shopify",
            shop: "acme.myshopify.com",
            secret: "whsec_browser_1",
            bonus_id: program.body.id,
          },
        });
        assert.equal(made.status, 200, made.text);
        const connectionId = made.body.connection_id as string;
        {
          // A delivery that kept failing, written beside the running service (as another process would).
          const kv = await Deno.openKv(kvPath);
          const now = Date.now();
          const event: WebhookEvent = {
            id: "browser-dead-1",
            company_id: "acme",
            connection_id: connectionId,
            platform: "shopify",
            topic: "orders/paid",
            received_date: now,
            dedupe: "browser-d1",
            size: 0,
            chunks: 0,
            status: "queued",
            attempts: 7,
            last_error: null,
            outcome: null,
            done_date: null,
          };
          await kv.set(webhookKeys.event(event.id), event);
          const entry = await kv.get<WebhookEvent>(webhookKeys.event(event.id));
          assert.ok(
            await killEvent(kv, entry as Deno.KvEntry<WebhookEvent>, {
              error: "Shop timed out",
              now,
              body: new Uint8Array(0),
              retentionMs: 30 * 86_400_000,
            }),
          );
          kv.close();
        }
        await go(page, `${base}/admin/connections`);
        assert.match(
          await page.$eval(`#connection-${connectionId} code.callback`, (e) => e.textContent ?? ""),
          new RegExp(`^${base.replace(/[.]/g, "\\.")}/webhooks/shopify/${connectionId}$`),
        );
        assert.ok(!(await page.content()).includes("whsec_browser_1"), "the secret is never shown");
        assert.match(await page.$eval("tr[data-dead='browser-dead-1']", (e) => e.textContent ?? ""), /Shop timed out/);
        await checkA11y(page, "connections");
        await shoot(page, "connections");
        await clickAndWait(page, "tr[data-dead='browser-dead-1'] button[type=submit]");
        assert.match(await page.$eval("#connections-ok", (e) => e.textContent ?? ""), /Put back in the queue/);
        // The delivery is queued again, and the service's queue listener may already have failed it anew (its body
        // is empty): the row is then back with that new error, never with the one it was put back with.
        if (await page.$("tr[data-dead='browser-dead-1']")) {
          assert.doesNotMatch(
            await page.$eval("tr[data-dead='browser-dead-1']", (e) => e.textContent ?? ""),
            /Shop timed out/,
          );
        }
        await go(page, `${base}/admin`);
        assert.ok(await page.$("[data-widget=webhooks] #stat-deliveries"), "the dashboard shows deliveries");
        assert.match(await page.$eval("#latest-imports", (e) => e.textContent ?? ""), /new_customers\.csv/);
        await checkA11y(page, "dashboard with widgets");
      });

      await t.step("a POST without the CSRF token is 403", async () => {
        assert.equal(await postFromPage(page, `/admin/customers/${id}`, { lname: "NoToken" }), 403);
      });

      await t.step("the session cookie does not open /api", async () => {
        const cookie = (await page.cookies()).find((c) => c.name === "bo_session");
        assert.ok(cookie, "signed in");
        assert.equal(cookie.httpOnly, true);
        assert.equal(cookie.sameSite, "Lax");
        const res = await fetch(`${base}/api/customer?id=${id}`, { headers: { cookie: `bo_session=${cookie.value}` } });
        assert.equal(res.status, 401);
        await res.body?.cancel();
      });

      await t.step("signs out; the pages need signing in again", async () => {
        await signOut(page);
        await go(page, `${base}/admin/customers/${id}`);
        assert.match(page.url(), /\/admin\/login$/);
      });

      await t.step("a viewer sees no change buttons and a forged POST gets 403", async () => {
        await signIn(page, base, "viewer");
        await go(page, `${base}/admin/customers/${id}`);
        assert.equal(await page.$("#save-profile"), null);
        assert.equal(await page.$("#apply-points"), null);
        assert.equal(await page.$("button[value=BLOCKED], button[value=ACTIVE]"), null);
        await checkA11y(page, "customer page as a viewer");
        const csrf = await page.$eval("input[name=_csrf]", (e) => (e as unknown as { value: string }).value);
        assert.equal(await postFromPage(page, `/admin/customers/${id}`, { _csrf: csrf, lname: "Forged" }), 403);
        await go(page, `${base}/admin/connections`);
        assert.equal(await page.$("form[action='/admin/connections']"), null);
        assert.equal(await postFromPage(page, "/admin/connections/dead/browser-dead-1/retry", { _csrf: csrf }), 403);
        await go(page, `${base}/admin/import`);
        assert.equal(await page.$("#i-file"), null);
        await checkA11y(page, "import page as a viewer");
        assert.equal(
          await postFromPage(page, `/admin/customers/${id}/points`, {
            _csrf: csrf,
            bonus_id: String(program.body.id),
            amount: "1000",
            comment: "forged",
          }),
          403,
        );
        const stored = await api("GET", "/api/customer", { query: { id } });
        assert.equal(stored.body.customers[0].lname, "Смирнова");
        await signOut(page);
      });

      await t.step("an owner sees users and API keys, in Russian", async () => {
        await signIn(page, base, "owner");
        await go(page, `${base}/admin/access?lang=ru`);
        assert.equal(await page.$eval("html", (e) => e.getAttribute("lang")), "ru");
        assert.match(await page.$eval("h1", (e) => e.textContent ?? ""), /Пользователи/);
        await checkA11y(page, "users and keys");
        await shoot(page, "access");
        await go(page, `${base}/admin`);
        await checkA11y(page, "dashboard in Russian");
        await page.setViewport({ width: 768, height: 1024 });
        await go(page, `${base}/admin/customers/${id}`);
        await shoot(page, "customer_tablet_ru");
        await page.setViewport({ width: 1024, height: 900 });
        await go(page, `${base}/admin?lang=en`);
        await signOut(page);
      });
    } finally {
      await browser.close();
    }
  },
});
