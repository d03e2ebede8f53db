/**
 * Every KV key of the service is built here. Global keys (companies, API keys) sit at the top; everything a
 * company owns sits under ["company", companyId, ...]. Unique indexes hold the id of their record; list
 * indexes end with the id and hold nothing.
 */

/** The prefix under which a company's data lives. */
function company(cid: string): Deno.KvKey {
  return ["company", cid];
}

/** Key builders, one per collection, index and counter. */
export const keys = {
  company: (cid: string): Deno.KvKey => ["companies", cid],
  companies: (): Deno.KvKey => ["companies"],
  apiKey: (hash: string): Deno.KvKey => ["api_keys", hash],
  apiKeys: (): Deno.KvKey => ["api_keys"],
  bootstrap: (): Deno.KvKey => ["meta", "bootstrap_key"],

  sequence: (cid: string, name: string): Deno.KvKey => [...company(cid), "sequences", name],

  customer: (cid: string, id: number): Deno.KvKey => [...company(cid), "customers", id],
  customers: (cid: string): Deno.KvKey => [...company(cid), "customers"],
  customerByPhone: (cid: string, phone: string): Deno.KvKey => [...company(cid), "customers_by_phone", phone],
  customerByEmail: (cid: string, email: string): Deno.KvKey => [...company(cid), "customers_by_email", email],
  customerByExternalId: (cid: string, externalId: string): Deno.KvKey => [
    ...company(cid),
    "customers_by_external_id",
    externalId,
  ],
  /** Ordered list index: one key per customer in the list, ending with the customer id. */
  customerList: (cid: string, list: string): Deno.KvKey => [...company(cid), "customer_lists", list],
  customerListEntry: (cid: string, list: string, id: number): Deno.KvKey => [
    ...company(cid),
    "customer_lists",
    list,
    id,
  ],
  /** Count of customers that entered ("in") or left ("out") a list; both only grow. */
  customerTotal: (cid: string, list: string, dir: "in" | "out"): Deno.KvKey => [
    ...company(cid),
    "customer_totals",
    list,
    dir,
  ],
  customerBuckets: (cid: string, list: string): Deno.KvKey => [...company(cid), "customer_buckets", list],
  customerBucket: (cid: string, list: string, bucket: number, dir: "in" | "out"): Deno.KvKey => [
    ...company(cid),
    "customer_buckets",
    list,
    bucket,
    dir,
  ],
};
