// deno-lint-ignore-file no-console
/**
 * `deno task test`: runs the whole test suite with Deno's runner, passes its output through, and ends
 * with one plain line `N passed, N failed` counted from the runner's own summary.
 */
const args = ["test", "-A", "--unstable-kv", ...Deno.args];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit", stdin: "null" })
  .spawn();
const decoder = new TextDecoder();
let tail = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
}
const status = await child.status;
// deno-lint-ignore no-control-regex
const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
const summary = [...plain.matchAll(/(ok|FAILED) \| (\d+) passed(?: \([^)]*\))? \| (\d+) failed/g)].at(-1);
const passed = summary ? Number(summary[2]) : 0;
const failed = summary ? Number(summary[3]) : status.success ? 0 : 1;
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(status.success && summary ? 0 : 1);
