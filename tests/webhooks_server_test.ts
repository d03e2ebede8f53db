import assert from "node:assert/strict";
import { hmacKey, signBody } from "../domain/webhooks.ts";
import { runTask, startServer, tempDir, waitFor } from "./kit.ts";
import { fixture, SECRET } from "./webhooks_kit.ts";

Deno.test({
  name:
    "a real server: tasks make a connection, deliveries are processed by its queue listener, failures listed and retried",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/store.kv`;
    const env = { EXPIRE_SCHEDULE: "0", WEBHOOK_RETRY_BASE_MS: "10", WEBHOOK_MAX_ATTEMPTS: "2" };
    const program = await runTask("bonusprogram", ["create", "--company", "default", "--name", "Web"], { kvPath });
    assert.equal(program.code, 0, program.err);
    const made = await runTask("connect", [
      "create",
      "--company",
      "default",
      "--platform",
      "woocommerce",
      "--shop",
      "https://shop.example.com",
      "--secret",
      SECRET,
      "--bonus-id",
      "1",
      "--percent",
      "10",
    ], { kvPath });
    assert.equal(made.code, 0, made.err);
    const path = /webhook URL: (\/webhooks\/woocommerce\/[0-9a-f]+)/.exec(made.out)?.[1];
    assert.ok(path, made.out);
    const listed = await runTask("connect", ["list", "--company", "default"], { kvPath });
    assert.ok(listed.out.includes(path) && !listed.out.includes(SECRET));

    await using server = startServer({ kvPath, env });
    await waitFor("the server", async () => (await fetch(`${server.base}/health`)).status === 200 || undefined);
    const send = async (body: Uint8Array, topic: string) => {
      const res = await fetch(`${server.base}${path}`, {
        method: "POST",
        headers: {
          "X-WC-Webhook-Topic": topic,
          "X-WC-Webhook-Signature": await signBody(await hmacKey(SECRET), body),
          "content-type": "application/json",
        },
        body: body as Uint8Array<ArrayBuffer>,
      });
      await res.body?.cancel();
      return res.status;
    };
    assert.equal(await send(await fixture("woocommerce_order_created.json"), "order.created"), 200);
    assert.equal(await send(new TextEncoder().encode("[broken"), "order.updated"), 200);
    const ping = await fetch(`${server.base}${path}`, { method: "POST", body: "webhook_id=12" });
    assert.equal(ping.status, 200);
    await ping.body?.cancel();

    const stats = await waitFor("the delivery to be processed", async () => {
      const r = await runTask("webhooks", ["stats"], { kvPath });
      return /order\.created\s+received 1\s+processed 1/.test(r.out) && /order\.updated.*failed 1/.test(r.out)
        ? r.out
        : undefined;
    });
    assert.match(stats, /duplicate 0/);
    const failed = await runTask("webhooks", ["failed"], { kvPath });
    const id = /^([0-9a-z]{21})\s/m.exec(failed.out)?.[1];
    assert.ok(id, failed.out);
    const retried = await runTask("webhooks", ["retry", id], { kvPath });
    assert.equal(retried.code, 0, retried.err);
    assert.match(
      retried.out,
      /Retried 1 dead letter: processed 0, ignored 0, skipped 0, failed again, retried later by the service 0, failed again, a dead letter again 1/,
    );
    assert.doesNotMatch(retried.out, /Queued/);
    // Attempted at once by the task: still not JSON, so a dead letter again (the payload can never be processed).
    assert.match(retried.out, new RegExp(`${id}: failed again and is a dead letter \\(PayloadError`));
    const again = await runTask("webhooks", ["failed"], { kvPath });
    assert.ok(again.out.startsWith(id), again.out);
    const stats2 = await runTask("webhooks", ["stats"], { kvPath });
    assert.match(stats2.out, /order\.updated.*failed 2/);
  },
});
