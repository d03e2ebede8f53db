import assert from "node:assert/strict";
import { type GuardOptions, serveGuarded } from "../server/guard.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves when the peer closes (or resets) the connection; never resolves while it stays open. */
async function closedByPeer(conn: Deno.Conn): Promise<true> {
  const buf = new Uint8Array(4096);
  try {
    while ((await conn.read(buf)) !== null) { /* a reply, keep reading */ }
  } catch { /* reset */ }
  return true;
}

/** Resolves with whether `promise` settled within `ms` (a generous bound, never a measurement). */
function within<T>(promise: Promise<T>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
  ]).finally(() => clearTimeout(timer));
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: await res.text() };
}

const encoder = new TextEncoder();

Deno.test({
  name: "a flood of idle connections beyond `ulimit -n 256` does not end the server; slow and idle ones are closed",
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir();
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = new Deno.Command("sh", {
      args: ["-c", 'ulimit -n 256 && exec "$0" run -A --unstable-kv serve.ts', Deno.execPath()],
      cwd: ROOT,
      env: {
        PORT: String(port),
        HOST: "127.0.0.1",
        KV_PATH: `${dir}/flood.kv`,
        LOG_REQUESTS: "0",
        HEADER_TIMEOUT_MS: "1000",
        BODY_TIMEOUT_MS: "1000",
        IDLE_TIMEOUT_MS: "1000",
      },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    let exited = false;
    const status = server.status.then((s) => {
      exited = true;
      return s;
    });
    const out = new Response(server.stdout).text();
    const err = new Response(server.stderr).text();
    const flood: Deno.Conn[] = [];
    try {
      await waitFor("the server", async () => (await get(`${base}/health`)).status === 200 || undefined);

      await t.step("400 idle connections: the server keeps answering during the flood", async () => {
        for (let i = 0; i < 400; i++) flood.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        const during = await waitFor("an answer during the flood", async () => {
          const r = await get(`${base}/health`);
          return r.status === 200 ? r : undefined;
        });
        assert.equal(JSON.parse(during.body).status, "ok");
        assert.equal(exited, false);
      });

      await t.step("every flood connection is closed by the server (evicted or timed out)", async () => {
        const closed = await Promise.all(flood.map((c) => within(closedByPeer(c), 30_000)));
        assert.equal(closed.filter((c) => !c).length, 0);
        assert.equal(exited, false);
      });

      await t.step("slow headers, a slow body and an idle kept-alive connection are closed", async () => {
        const slowHeader = await Deno.connect({ hostname: "127.0.0.1", port });
        await slowHeader.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n"));
        const slowBody = await Deno.connect({ hostname: "127.0.0.1", port });
        await slowBody.write(
          encoder.encode("POST /api/customer/update HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfname="),
        );
        const idle = await Deno.connect({ hostname: "127.0.0.1", port });
        await idle.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
        const buf = new Uint8Array(4096);
        const n = await idle.read(buf);
        assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 OK/);
        for (const conn of [slowHeader, slowBody, idle]) {
          assert.equal(await within(closedByPeer(conn), 20_000), true);
          conn.close();
        }
      });

      await t.step("after the flood: the process is alive and answers", async () => {
        for (const c of flood) c.close();
        flood.length = 0;
        const r = await get(`${base}/health`);
        assert.equal(r.status, 200);
        assert.equal(exited, false);
      });
    } finally {
      for (const c of flood) c.close();
      if (!exited) server.kill("SIGTERM");
      const s = await status;
      const [stdout, stderr] = await Promise.all([out, err]);
      await Deno.remove(dir, { recursive: true });
      assert.equal(s.code, 0, `server ended with ${s.code}:\n${stdout}\n${stderr}`);
      assert.doesNotMatch(stderr, /Uncaught|Too many open files/);
      assert.match(stdout, /WARN connections: /, "the guard logs what it closed");
    }
  },
});

/** A guard in this process over a handler that holds each request until released. */
function guarded(options: Partial<GuardOptions>) {
  const lines: string[] = [];
  const releases: (() => void)[] = [];
  const server = serveGuarded(async (req) => {
    if (new URL(req.url).pathname === "/hold") await new Promise<void>((r) => releases.push(r));
    return new Response("ok");
  }, {
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 2,
    headerTimeoutMs: 60_000,
    bodyTimeoutMs: 60_000,
    idleTimeoutMs: 60_000,
    log: (line) => lines.push(line),
    ...options,
  });
  return { server, lines, releases, port: server.addr.port };
}

async function rawRequest(port: number, path: string): Promise<{ conn: Deno.Conn; reply: Promise<string> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
  const reply = (async () => {
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  })();
  return { conn, reply };
}

Deno.test("guard: at the cap the oldest idle connection makes room; when all are busy the newcomer gets 503", async (t) => {
  const g = guarded({ maxConnections: 2 });
  try {
    await t.step("two idle connections, a third evicts the oldest and is served", async () => {
      const first = await Deno.connect({ hostname: "127.0.0.1", port: g.port });
      await waitFor("first accepted", () => g.server.stats().open === 1 || undefined);
      const second = await Deno.connect({ hostname: "127.0.0.1", port: g.port });
      await waitFor("second accepted", () => g.server.stats().open === 2 || undefined);
      const third = await rawRequest(g.port, "/");
      assert.match(await third.reply, /^HTTP\/1\.1 200 OK/);
      assert.equal(await within(closedByPeer(first), 10_000), true);
      assert.equal(g.server.stats().evicted, 1);
      for (const c of [first, second, third.conn]) c.close();
      await waitFor("all closed", () => g.server.stats().open === 0 || undefined);
    });
    await t.step(
      "two requests in progress: a third connection gets 503 with the envelope and Retry-After",
      async () => {
        const a = await rawRequest(g.port, "/hold");
        const b = await rawRequest(g.port, "/hold");
        await waitFor("both held", () => g.releases.length === 2 || undefined);
        const c = await rawRequest(g.port, "/");
        const busy = await c.reply;
        assert.match(busy, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
        assert.match(busy, /\r\nretry-after: 1\r\n/);
        assert.match(
          busy,
          /\r\n\r\n\{"success":0,"info":"Server busy: too many open connections, try again shortly"\}$/,
        );
        assert.equal(g.server.stats().refused, 1);
        for (const release of g.releases.splice(0)) release();
        assert.match(await a.reply, /^HTTP\/1\.1 200 OK/);
        assert.match(await b.reply, /^HTTP\/1\.1 200 OK/);
        for (const x of [a, b, c]) x.conn.close();
      },
    );
  } finally {
    for (const release of g.releases) release();
    await g.server.shutdown(1000);
  }
});

Deno.test("guard: a request whose reply takes longer than the body timeout has its connection closed", async () => {
  const g = guarded({ maxConnections: 10, bodyTimeoutMs: 200 });
  try {
    const held = await rawRequest(g.port, "/hold");
    assert.equal(await within(closedByPeer(held.conn), 10_000), true);
    assert.equal(g.server.stats().timedOut.body, 1);
    held.conn.close();
  } finally {
    for (const release of g.releases) release();
    await g.server.shutdown(1000);
  }
});
