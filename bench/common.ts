/** Lua for wrk scripts shared by `deno task bench` (tasks/bench.ts) and bench/ab.ts. */

/** Lua: `body` and `check`, the EAN-13 of seeded card `id` (uid 1000000 + id; domain/ean13.ts uidToEan13). */
export const barcodeLua = `  local body = string.format("%012d", 1000000 + id)
  local sum = 0
  for i = 1, 12 do
    local d = string.byte(body, i) - 48
    if i % 2 == 1 then sum = sum + d else sum = sum + 3 * d end
  end
  local check = (10 - sum % 10) % 10
`;
