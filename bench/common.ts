/** What `deno task bench` (tasks/bench.ts) and bench/ab.ts share: wrk's Lua, waiting for a server, CPU from /proc. */

/**
 * Lua run once when wrk loads its script: the EAN-13 barcode of each seeded card (uid 1000000 + id, as
 * bench/seed_extras.ts makes them) in a table `barcodes`, so a request takes `barcodes[id]` instead of computing a check
 * digit. wrk shares the machine's two cores with the service, and the baselines' requests do no such work: computed
 * per request, it took CPU from the service in the barcode scenario only.
 */
export const barcodeTableLua = (customers: number) =>
  `local barcodes = {}
for id = 1, ${customers} do
  local body = string.format("%012d", 1000000 + id)
  local sum = 0
  for i = 1, 12 do
    local d = string.byte(body, i) - 48
    if i % 2 == 1 then sum = sum + d else sum = sum + 3 * d end
  end
  barcodes[id] = body .. ((10 - sum % 10) % 10)
end
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

/** A port no one listens on now (the system's pick), for a service the bench starts. */
export function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
