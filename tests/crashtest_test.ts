import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("deno task crashtest: one SIGKILL run keeps every acknowledged write and verifies clean", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "crashtest", "--runs", "1", "--clients", "8"],
    cwd: ROOT,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
  assert.match(stdout, /^crashtest run 1\/1: clean, \d+ acknowledged writes \(\d+ customers, \d+ cards, \d+ bonus/m);
  assert.match(stdout, /^crashtest: 1\/1 clean, 8 clients/m);
});

Deno.test("deno task crashtest: a usage error exits 2", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "crashtest", "--runs", "0"],
    cwd: ROOT,
    stdin: "null",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /^Invalid --runs "0": must be a whole number of at least 1/);
});
