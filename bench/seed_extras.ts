/** Seeds cards and bonus balances for the benchmark; filled in once cards and bonuses exist. */
export function seedExtras(_kv: Deno.Kv, _cid: string, _options: { customers: number; now: number }): Promise<void> {
  return Promise.resolve();
}
