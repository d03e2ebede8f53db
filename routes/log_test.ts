import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { bufferedWriter, logSink, requestLine, textLine } from "./log.ts";

/** An output that records what reaches it; `hold` keeps asynchronous writes pending until released. */
function output(options: { hold?: boolean; partial?: boolean; slow?: boolean } = {}) {
  const written: Uint8Array[] = [];
  const pending: (() => void)[] = [];
  return {
    written,
    pending,
    text: () => new TextDecoder().decode(new Uint8Array(written.flatMap((b) => [...b]))),
    write(bytes: Uint8Array): Promise<number> {
      // A partial write takes at most 1000 bytes, as a pipe may.
      const n = options.partial ? Math.min(1000, bytes.length) : bytes.length;
      written.push(bytes.slice(0, n));
      // A slow write finishes a turn of the event loop later, as a write to a pipe does.
      if (options.slow) return new Promise((resolve) => setTimeout(() => resolve(n), 1));
      if (!options.hold) return Promise.resolve(n);
      return new Promise((resolve) => pending.push(() => resolve(n)));
    },
    writeSync(bytes: Uint8Array): number {
      written.push(bytes.slice());
      return bytes.length;
    },
  };
}

Deno.test("bufferedWriter writes every line once, in order, across chunks and partial writes", async () => {
  const out = output({ partial: true });
  const w = bufferedWriter(out);
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${"é€😀".repeat(i % 7)}`);
  for (const line of lines) w.write(line);
  // Lines longer than a chunk go whole too.
  w.write("x".repeat(100_000));
  await new Promise((r) => setTimeout(r, 100));
  w.write("last");
  w.flushSync();
  assert.equal(out.text(), [...lines, "x".repeat(100_000), "last"].join("\n") + "\n");
});

Deno.test("bufferedWriter: an exit during a write writes the chunks not yet begun before the newer lines", async () => {
  const out = output({ hold: true });
  const w = bufferedWriter(out);
  // About 210 KB: four chunks, taken together for the asynchronous write, whose first write is then held.
  const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} ${"z".repeat(60)}`);
  for (const line of lines) w.write(line);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(out.pending.length, 1, "the first chunk's write is under way");
  w.write("after");
  // What an exit (unload) during that write does: the other three chunks first, then the line held since.
  w.flushSync();
  const all = [...lines, "after"].join("\n") + "\n";
  assert.equal(out.text(), all);
  for (const release of out.pending.splice(0)) release();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(out.text(), all, "nothing is written twice when the held write finishes");
});

Deno.test("bufferedWriter drops lines past 8 MiB held and says how many when it can write again", async () => {
  const out = output({ hold: true });
  const w = bufferedWriter(out);
  w.write("first");
  await new Promise((r) => setTimeout(r, 100));
  // The first write is still pending: about 8 MiB more are held, the rest dropped.
  assert.equal(out.pending.length, 1);
  const line = "y".repeat(1023);
  for (let i = 0; i < 9 * 1024; i++) w.write(line);
  w.flushSync();
  const text = out.text();
  assert.ok(text.startsWith("first\n"));
  const kept = text.split("\n").filter((l) => l === line).length;
  assert.ok(kept > 8 * 1024 - 64 && kept < 9 * 1024, `kept ${kept}`);
  assert.match(text, new RegExp(` WARN ${9 * 1024 - kept} log lines dropped: the output was too slow\n$`));
  for (const release of out.pending) release();
});

Deno.test("bufferedWriter writes lines that come in during a write later, in one write per interval, not one per turn", async () => {
  const out = output({ slow: true });
  const w = bufferedWriter(out);
  const lines = Array.from({ length: 120 }, (_, i) => `request ${i}`);
  // One line per turn of the event loop, as a busy server logs, while writes take a turn or two each.
  for (const line of lines) {
    w.write(line);
    await new Promise((r) => setTimeout(r, 0));
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.text(), lines.join("\n") + "\n");
  assert.ok(out.written.length <= lines.length / 4, `${out.written.length} writes for ${lines.length} lines`);
});

Deno.test("bufferedWriter: a line logged while a write is pending is written after it, without a flush", async () => {
  const out = output({ hold: true });
  const w = bufferedWriter(out);
  w.write("first");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(out.pending.length, 1);
  w.write("second");
  out.pending.shift()!();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.pending.length, 1);
  out.pending.shift()!();
  assert.equal(out.text(), "first\nsecond\n");
});

Deno.test("bufferedWriter: text request lines held as numbers come out as the sink makes them, in their place", () => {
  const out = output();
  const at = Date.UTC(2026, 10, 30, 12, 34, 56, 789);
  const w = bufferedWriter(out, { now: () => at });
  const record = (status: number, ms: number) => ({
    id: "r",
    caller: undefined,
    route: "/api/customer",
    method: "GET",
    path: "/api/customer",
    status,
    ms,
  });
  const expected: string[] = [];
  w.write("first");
  expected.push("first");
  // More than the 512 held at once, so that some are formatted before the write, in order.
  for (let i = 0; i < 700; i++) {
    const [status, ms] = [i % 3 === 0 ? 404 : 200, i / 7];
    w.textRequest("GET /api/customer", status, ms);
    expected.push(textLine(at, requestLine(false, record(status, ms))));
    if (i === 100 || i === 600) {
      w.write(`plain ${i}`);
      expected.push(`plain ${i}`);
    }
  }
  w.flushSync();
  assert.equal(out.text(), expected.join("\n") + "\n");
  assert.equal(expected[2], "2026-11-30T12:34:56.789Z GET /api/customer 200 0.1ms");
});

Deno.test("bufferedWriter: a request line logged while a write is pending is written after it, without a flush", async () => {
  const out = output({ hold: true });
  const w = bufferedWriter(out, { now: () => 0 });
  w.write("first");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(out.pending.length, 1);
  w.textRequest("GET /api/customer", 200, 1.25);
  out.pending.shift()!();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.pending.length, 1);
  out.pending.shift()!();
  assert.equal(out.text(), "first\n1970-01-01T00:00:00.000Z GET /api/customer 200 1.3ms\n");
});

Deno.test("logSink over a writer: text request lines go as numbers, JSON ones as lines", () => {
  const out = output();
  const w = bufferedWriter(out, { now: () => 0 });
  const text = logSink({ ...DEFAULT_CONFIG, logFormat: "text" }, w);
  assert.equal(typeof text.request, "function");
  text.request!("GET /api/customer", 200, 2);
  text("hello");
  assert.equal(logSink({ ...DEFAULT_CONFIG, logFormat: "json" }, w).request, undefined);
  assert.equal(logSink({ ...DEFAULT_CONFIG, logFormat: "text" }, (l) => w.write(l)).request, undefined);
  w.flushSync();
  const [request, hello] = out.text().split("\n");
  assert.equal(request, "1970-01-01T00:00:00.000Z GET /api/customer 200 2.0ms");
  assert.match(hello!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z hello$/);
});
