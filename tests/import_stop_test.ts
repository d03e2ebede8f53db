/**
 * Stopping `deno task import`: SIGTERM (as Ctrl-C's SIGINT) stops it after the batch being written, and a task
 * whose parent (the `deno task` runner) was killed stops by itself instead of living on. Either way nothing is
 * half-written and a re-run resumes and finishes the file.
 */
import assert from "node:assert/strict";
import { countList } from "../storage/customers.ts";
import { verifyStore } from "../storage/verify.ts";
import { ROOT, runTask, tempDir } from "./kit.ts";

const N = 6000;

async function writeFile(path: string): Promise<void> {
  const lines = ["external_id,phone,email,card_uid"];
  for (let i = 1; i <= N; i++) lines.push(`s${i},7902${String(i).padStart(7, "0")},s${i}@example.com,5${i}`);
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Waits until some customers are in (the task is mid-file). */
async function waitForRows(kvPath: string, atLeast: number): Promise<void> {
  const probe = await Deno.openKv(kvPath);
  try {
    for (let i = 0; i < 2400; i++) {
      if (await countList(probe, "default", "all") >= atLeast) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error("the import never got going");
  } finally {
    probe.close();
  }
}

/** The re-run resumes after the stop, finishes the file, and leaves a store that verifies clean. */
async function finishes(kvPath: string, file: string, stoppedAfter: number): Promise<void> {
  const rerun = await runTask("import", [file], { kvPath });
  assert.equal(rerun.code, 0, rerun.out + rerun.err);
  assert.match(rerun.err, new RegExp(`import: resuming after line ${stoppedAfter}, `));
  assert.match(rerun.out, new RegExp(`Imported ${N} rows of stop.csv: `));
  const kv = await Deno.openKv(kvPath);
  try {
    assert.equal(await countList(kv, "default", "all"), N);
    const findings: unknown[] = [];
    await verifyStore(kv, { onFinding: (f) => findings.push(f) });
    assert.deepEqual(findings, []);
  } finally {
    kv.close();
  }
}

Deno.test("import: SIGTERM stops after the batch being written (exit 143); a re-run resumes and finishes", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  const file = `${dir.path}/stop.csv`;
  await writeFile(file);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/import.ts", file, "--batch-size", "100"],
    cwd: ROOT,
    env: { KV_PATH: kvPath },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await waitForRows(kvPath, 250);
  child.kill("SIGTERM");
  const { code, stderr } = await child.output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 143, err);
  const m = /import: stopped \(SIGTERM\) after line (\d+); nothing is half-written\. Run the same command again/
    .exec(err);
  assert.ok(m, err);
  const line = Number(m[1]);
  assert.ok(line > 1 && line < N + 1, err);
  const kv = await Deno.openKv(kvPath);
  try {
    // Whole batches only: every line up to the one named is in, and nothing after it.
    assert.equal(await countList(kv, "default", "all"), line - 1);
  } finally {
    kv.close();
  }
  await finishes(kvPath, file, line);
});

Deno.test("import: a task whose parent was killed stops by itself after its batch", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/kv.db`;
  const file = `${dir.path}/stop.csv`;
  await writeFile(file);
  // A parent like `deno task`: it starts the task and waits for it; the parent is then killed outright.
  const task = `"${Deno.execPath()}" run -A tasks/import.ts "${file}" --batch-size 100 2>"${dir.path}/err.txt" & ` +
    `echo $!; wait`;
  const parent = new Deno.Command("sh", {
    args: ["-c", task],
    cwd: ROOT,
    env: { KV_PATH: kvPath },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = parent.stdout.getReader();
  const first = await reader.read();
  const pid = Number(new TextDecoder().decode(first.value).trim());
  assert.ok(pid > 0);
  await waitForRows(kvPath, 250);
  parent.kill("SIGKILL");
  await parent.status;
  reader.releaseLock();
  await parent.stdout.cancel();
  // The orphaned task notices and exits (generous: the machine is shared).
  let gone = false;
  for (let i = 0; i < 1200 && !gone; i++) {
    try {
      await Deno.stat(`/proc/${pid}`);
      await new Promise((r) => setTimeout(r, 25));
    } catch {
      gone = true;
    }
  }
  assert.ok(gone, "the orphaned import exited");
  const err = await Deno.readTextFile(`${dir.path}/err.txt`);
  const m = /import: stopped \(the parent process is gone\) after line (\d+)/.exec(err);
  assert.ok(m, err);
  await finishes(kvPath, file, Number(m[1]));
});
