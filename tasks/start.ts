/**
 * `deno task start`: serves main.ts with `deno serve` on PORT/HOST from the environment; WORKERS=N (or
 * "auto") runs N workers, one per core, sharing the same KV file.
 */
import { loadConfig } from "../config.ts";

const config = loadConfig((name) => Deno.env.get(name));
const workers = Deno.env.get("WORKERS");
const args = ["serve", "-A", "--unstable-kv", "--port", String(config.port), "--host", config.host];
const env: Record<string, string> = {};
if (workers && workers !== "1") {
  args.push("--parallel");
  if (workers !== "auto") env.DENO_JOBS = workers;
}
args.push(new URL("../main.ts", import.meta.url).pathname);
const child = new Deno.Command(Deno.execPath(), { args, env, stdin: "null" }).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
