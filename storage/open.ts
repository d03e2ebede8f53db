/** Most attempts at one store call that found the SQLite file locked by another process or worker. */
const BUSY_ATTEMPTS = 100;

function isBusy(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}

async function retryBusy<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isBusy(error) || attempt >= BUSY_ATTEMPTS) throw error;
      await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2) * Math.random()));
    }
  }
}

/**
 * Makes a local KV handle wait for a SQLite file that another process or `deno serve --parallel` worker
 * holds locked, as SQLite's busy timeout would: a locked commit has not been applied, so it is simply
 * tried again. Remote KV (Deno Deploy) never reports this and is left as it is.
 */
export function waitWhenBusy(kv: Deno.Kv): Deno.Kv {
  const atomic = kv.atomic.bind(kv);
  kv.atomic = () => {
    const op = atomic();
    const commit = op.commit.bind(op);
    op.commit = () => retryBusy(commit);
    return op;
  };
  const get = kv.get.bind(kv);
  kv.get =
    ((key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) =>
      retryBusy(() => get(key, options))) as typeof kv.get;
  const getMany = kv.getMany.bind(kv);
  kv.getMany =
    ((keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) =>
      retryBusy(() => getMany(keys, options))) as typeof kv.getMany;
  return kv;
}

/**
 * Opens the store: a local SQLite-backed KV file (its folder made when missing), ":memory:", a remote
 * KV connect URL (https://..., with DENO_KV_ACCESS_TOKEN), or with no path the platform's managed KV on
 * Deno Deploy.
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path && path !== ":memory:" && !/^https?:\/\//.test(path)) {
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
    // Processes started together on a new file (WORKERS=2) may find it locked while another sets up its tables.
    return waitWhenBusy(await retryBusy(() => Deno.openKv(path)));
  }
  return await Deno.openKv(path);
}
