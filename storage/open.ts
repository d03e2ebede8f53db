/**
 * Opens the store: a local SQLite-backed KV file (its folder made when missing), ":memory:", or with no
 * path the platform's managed KV on Deno Deploy.
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path && path !== ":memory:") {
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  }
  return await Deno.openKv(path);
}
