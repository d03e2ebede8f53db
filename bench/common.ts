/** What `deno task bench` (tasks/bench.ts) and bench/ab.ts share: wrk's Lua, waiting for a server, CPU from /proc. */

/** Lua: `body` and `check`, the EAN-13 of seeded card `id` (uid 1000000 + id; domain/ean13.ts uidToEan13). */
export const barcodeLua = `  local body = string.format("%012d", 1000000 + id)
  local sum = 0
  for i = 1, 12 do
    local d = string.byte(body, i) - 48
    if i % 2 == 1 then sum = sum + d else sum = sum + 3 * d end
  end
  local check = (10 - sum % 10) % 10
`;

/** Waits until the server at `url` answers (up to 10 s); throws naming `what` when it never does. */
export async function untilServing(url: string, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await (await fetch(`${url}/`)).body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what} did not start`);
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
