/**
 * `deno task start`: runs the service (serve.ts: main.ts's app behind the connection guard) on PORT/HOST from
 * the environment. WORKERS=N (or "auto", one per core) runs N such processes sharing the port (SO_REUSEPORT)
 * and the KV file. Each runs with its open-file soft limit raised to the hard limit where the shell allows.
 */
import { loadConfig } from "../config.ts";
import { SERVICE_V8_FLAGS } from "../server/v8_flags.ts";

loadConfig((name) => Deno.env.get(name)); // fail here, once, on a bad setting
const raw = Deno.env.get("WORKERS") ?? "1";
const workers = raw === "auto" ? navigator.hardwareConcurrency : Number(raw);
if (!Number.isSafeInteger(workers) || workers < 1) {
  throw new Error(`Invalid WORKERS "${raw}": must be a whole number from 1, or auto`);
}
const serve = [
  Deno.execPath(),
  "run",
  "-A",
  "--unstable-kv",
  "--unstable-net",
  `--v8-flags=${SERVICE_V8_FLAGS.join(",")}`,
  new URL("../serve.ts", import.meta.url).pathname,
];
// `ulimit -n` up to the hard limit is a second line of defence behind the connection cap, not a fix on its own.
const raise = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec "$@"';
const command = Deno.build.os === "windows" ? serve : ["sh", "-c", raise, "sh", ...serve];
const env: Record<string, string> = workers > 1 ? { REUSE_PORT: "1" } : {};
const children = Array.from(
  { length: workers },
  () => new Deno.Command(command[0]!, { args: command.slice(1), env, stdin: "null" }).spawn(),
);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    for (const child of children) child.kill(signal);
  });
}
// When one process ends, the others are stopped too, so that a supervisor restarts the whole service.
const first = await Promise.race(children.map((child) => child.status));
for (const child of children) {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
}
await Promise.all(children.map((child) => child.status));
Deno.exit(first.code);
