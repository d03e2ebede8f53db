import assert from "node:assert/strict";
import { Gate } from "./gate.ts";

Deno.test("Gate runs at most max tasks at once, in arrival order, and frees a slot when a task throws", async () => {
  const gate = new Gate(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const task = (i: number) => async () => {
    started.push(i);
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    if (i === 1) throw new Error("boom");
    return i;
  };
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => gate.run(task(i))));
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
  assert.equal(results[1]!.status, "rejected");
  assert.deepEqual(results.filter((r) => r.status === "fulfilled").map((r) => r.value), [0, 2, 3, 4, 5]);
  assert.equal(await gate.run(() => Promise.resolve("after")), "after");
});
