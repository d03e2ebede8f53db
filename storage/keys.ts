/**
 * Every KV key of the service is built here. Global keys (companies, API keys) sit at the top; everything a
 * company owns sits under ["company", companyId, ...]. Unique indexes hold the id of their record (card indexes:
 * `[card_id, customer_id]`, storage/cards.ts; entries of older stores hold the bare card id); list indexes end with
 * the id and hold nothing.
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
  /** Everything a company owns, for "does the store hold anything of it". */
  companyData: (cid: string): Deno.KvKey => company(cid),

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

/** Key builders of the card collections; written by cards.ts. */
export const cardKeys = {
  card: (cid: string, id: number): Deno.KvKey => ["company", cid, "cards", id],
  cards: (cid: string): Deno.KvKey => ["company", cid, "cards"],
  byUid: (cid: string, uid: string): Deno.KvKey => ["company", cid, "cards_by_uid", uid],
  /** The whole uid index (every card number of a company). */
  uids: (cid: string): Deno.KvKey => ["company", cid, "cards_by_uid"],
  byBarcode: (cid: string, barcode: string): Deno.KvKey => ["company", cid, "cards_by_barcode", barcode],
  byExternalId: (cid: string, externalId: string): Deno.KvKey => ["company", cid, "cards_by_external_id", externalId],
  /** The cards of one customer: keys end with the card id and hold nothing. */
  ofCustomer: (cid: string, customerId: number): Deno.KvKey => ["company", cid, "cards_by_customer", customerId],
  ofCustomerEntry: (cid: string, customerId: number, cardId: number): Deno.KvKey => [
    "company",
    cid,
    "cards_by_customer",
    customerId,
    cardId,
  ],
  /** Last card id given out. */
  idSequence: (cid: string): Deno.KvKey => ["company", cid, "sequences", "cards"],
  /** Last position of the card-number sequence given out as a uid; never goes back, not even after a delete. */
  numberSequence: (cid: string): Deno.KvKey => ["company", cid, "sequences", "card_numbers"],
  /** Last position of the in-store (prefix 2) barcode sequence given out. */
  barcodeSequence: (cid: string): Deno.KvKey => ["company", cid, "sequences", "card_barcodes"],
};

/** Key builders of the bonus collections; written by bonuses.ts. */
export const bonusKeys = {
  /** A customer's balance in one program: { balance, last_transaction_id }. */
  balance: (cid: string, customerId: number, bonusId: number): Deno.KvKey => [
    "company",
    cid,
    "balances",
    customerId,
    bonusId,
  ],
  /** The ledger of one balance, ordered by transaction id. */
  ledger: (cid: string, customerId: number, bonusId: number): Deno.KvKey => [
    "company",
    cid,
    "ledger",
    customerId,
    bonusId,
  ],
  ledgerEntry: (cid: string, customerId: number, bonusId: number, transactionId: number): Deno.KvKey => [
    "company",
    cid,
    "ledger",
    customerId,
    bonusId,
    transactionId,
  ],
  /** Every balance of a company, for audits and tests. */
  balances: (cid: string): Deno.KvKey => ["company", cid, "balances"],
  /** Every ledger of a company, for exports. */
  ledgers: (cid: string): Deno.KvKey => ["company", cid, "ledger"],
  /** The first reply given under an idempotency key, with the fingerprint of its request. */
  idempotency: (cid: string, key: string): Deno.KvKey => ["company", cid, "idempotency", key],
};

/** The per-company directories: customer groups, card types and bonus programs. */
export type DirectoryKind = "groups" | "card_types" | "bonus_programs";

/** Key builders of a directory; written by directories.ts. */
export const directoryKeys = {
  entry: (cid: string, kind: DirectoryKind, id: number): Deno.KvKey => ["company", cid, kind, id],
  entries: (cid: string, kind: DirectoryKind): Deno.KvKey => ["company", cid, kind],
  byName: (cid: string, kind: DirectoryKind, nameKey: string): Deno.KvKey => [
    "company",
    cid,
    `${kind}_by_name`,
    nameKey,
  ],
  sequence: (cid: string, kind: DirectoryKind): Deno.KvKey => ["company", cid, "sequences", kind],
};

/** Key builders of the audit trail: one entry per change, filed under its entity and sorted by time. */
export const auditKeys = {
  /** Every entry of one entity, oldest first in key order. */
  ofEntity: (cid: string, entity: string, entityId: string): Deno.KvKey => [
    "company",
    cid,
    "audit",
    entity,
    entityId,
  ],
  entry: (cid: string, entity: string, entityId: string, at: number, options: { order: string }): Deno.KvKey => [
    "company",
    cid,
    "audit",
    entity,
    entityId,
    at,
    options.order,
  ],
};

/** Key builders of purchases: one record per order (unique per company), one per return of an order. */
export const orderKeys = {
  order: (cid: string, orderId: string): Deno.KvKey => ["company", cid, "orders", orderId],
  orders: (cid: string): Deno.KvKey => ["company", cid, "orders"],
  orderReturn: (cid: string, orderId: string, returnId: string): Deno.KvKey => [
    "company",
    cid,
    "order_returns",
    orderId,
    returnId,
  ],
};

/** Key builders of the expiry job (global: the job runs over every company). */
export const expiryKeys = {
  /** The lease of the scheduled job: who runs it and until when. */
  lease: (): Deno.KvKey => ["meta", "leases", "expire"],
};

/** Key builders of the back office: users per company, sessions by token hash, failed sign-ins by login and address. */
export const adminKeys = {
  user: (cid: string, login: string): Deno.KvKey => ["company", cid, "admin_users", login],
  users: (cid: string): Deno.KvKey => ["company", cid, "admin_users"],
  /** A session, under the SHA-256 of its token; expires by itself. */
  session: (tokenHash: string): Deno.KvKey => ["admin_sessions", tokenHash],
  sessions: (): Deno.KvKey => ["admin_sessions"],
  /** Failed sign-ins of one login from one address within the window; expires by itself. */
  failures: (login: string, address: string): Deno.KvKey => ["admin_sign_in_failures", login, address],
  /** Every ledger of a company (the dashboard's daily sums). */
  ledgers: (cid: string): Deno.KvKey => ["company", cid, "ledger"],
  /** A server secret of the back office (the sign-in form's CSRF key), made once per store. */
  secret: (name: string): Deno.KvKey => ["admin_secrets", name],
};

/** Key builders of the last-name index (non-unique: each key ends with the customer id and holds nothing). */
export const nameKeys = {
  entry: (cid: string, nameKey: string, id: number): Deno.KvKey => ["company", cid, "customers_by_lname", nameKey, id],
  all: (cid: string): Deno.KvKey => ["company", cid, "customers_by_lname"],
  /** Count of customers that entered ("in") or left ("out") the last-name index; both only grow. */
  total: (cid: string, dir: "in" | "out"): Deno.KvKey => ["company", cid, "customers_by_lname_totals", dir],
};

/** Key builders of import runs: one record per finished run, newest last by its id (start time, then a random tail). */
export const importKeys = {
  run: (cid: string, id: string): Deno.KvKey => ["company", cid, "imports", id],
  runs: (cid: string): Deno.KvKey => ["company", cid, "imports"],
  /** How far an unfinished import of one file got (keyed by the file's content hash and type). */
  checkpoint: (cid: string, key: string): Deno.KvKey => ["company", cid, "import_checkpoints", key],
};

/**
 * Key builders of shop connections and webhook deliveries. Connections and deliveries are global, like API keys: the
 * receiver finds a connection by the id in its URL before it knows the company (the record names the company).
 * What a connection does to a company's customers and orders sits under the company's prefix.
 */
export const webhookKeys = {
  connection: (id: string): Deno.KvKey => ["webhook_connections", id],
  connections: (): Deno.KvKey => ["webhook_connections"],
  /** A delivery as received: its metadata and state. */
  event: (id: string): Deno.KvKey => ["webhook_events", id],
  events: (): Deno.KvKey => ["webhook_events"],
  /** The raw body of a delivery, in chunks under the value size limit. */
  eventBody: (id: string, chunk: number): Deno.KvKey => ["webhook_event_bodies", id, chunk],
  eventBodies: (id: string): Deno.KvKey => ["webhook_event_bodies", id],
  /** Marks a delivery already accepted (Shopify webhook id, or WooCommerce topic + body hash); holds the event id. */
  dedupe: (connectionId: string, key: string): Deno.KvKey => ["webhook_dedupe", connectionId, key],
  /** Deliveries that kept failing. */
  deadLetter: (id: string): Deno.KvKey => ["webhook_dead_letters", id],
  deadLetters: (): Deno.KvKey => ["webhook_dead_letters"],
  /** Grow-only counters per connection, topic and outcome (received, processed, duplicate, ignored, failed). */
  stat: (connectionId: string, topic: string, kind: string): Deno.KvKey => [
    "webhook_stats",
    connectionId,
    topic,
    kind,
  ],
  stats: (connectionId: string): Deno.KvKey => ["webhook_stats", connectionId],
  /** The customer of ours a platform customer is linked to (one index per connection); holds our customer id. */
  customerLink: (cid: string, connectionId: string, externalId: string): Deno.KvKey => [
    "company",
    cid,
    "webhook_customer_links",
    connectionId,
    externalId,
  ],
  /** Marks a customer link made by matching one of our customers (phone/email), not by creating it: holds our id. */
  customerMatch: (cid: string, connectionId: string, externalId: string): Deno.KvKey => [
    "company",
    cid,
    "webhook_customer_matches",
    connectionId,
    externalId,
  ],
  /** An order closed (refunded, cancelled, deleted) before it was ever counted: it never accrues. */
  closedOrder: (cid: string, orderRef: string): Deno.KvKey => ["company", cid, "webhook_closed_orders", orderRef],
  /** A refund seen before its order was counted, applied once the order is: holds the money, minor units. */
  pendingRefund: (cid: string, orderRef: string, refundId: string): Deno.KvKey => [
    "company",
    cid,
    "webhook_pending_refunds",
    orderRef,
    refundId,
  ],
  pendingRefunds: (cid: string, orderRef: string): Deno.KvKey => ["company", cid, "webhook_pending_refunds", orderRef],
};

/** Key builders of the back office's import page: uploaded files (in chunks, expiring) and background runs. */
export const adminImportKeys = {
  /** An uploaded file's record (name, size, options, dry-run report); expires by itself. */
  upload: (cid: string, id: string): Deno.KvKey => ["company", cid, "admin_uploads", id],
  /** One chunk of an uploaded file's bytes; expires with the upload. */
  chunk: (cid: string, id: string, n: number): Deno.KvKey => ["company", cid, "admin_upload_chunks", id, n],
  chunks: (cid: string, id: string): Deno.KvKey => ["company", cid, "admin_upload_chunks", id],
  /** The run an upload started (one per upload: a form sent twice starts one run); holds the job id. */
  claim: (cid: string, id: string): Deno.KvKey => ["company", cid, "admin_upload_claims", id],
  /** A run started from the back office: its progress and, once finished, its report. */
  job: (cid: string, id: string): Deno.KvKey => ["company", cid, "admin_import_jobs", id],
};

/**
 * Key builders of the dashboard's aggregates, kept in the write path with KvU64 sums (grow-only): a company's points
 * credited, debited (spent, taken back) and expired in total and per UTC hour, points of lots not yet spendable by
 * the UTC hour they become spendable (in: added to such a lot, out: taken from it), and cards made and deleted.
 */
export const statKeys = {
  pointsTotal: (cid: string, kind: string): Deno.KvKey => ["company", cid, "points_totals", kind],
  pointsTotals: (cid: string): Deno.KvKey => ["company", cid, "points_totals"],
  pointsHour: (cid: string, hour: number, kind: string): Deno.KvKey => ["company", cid, "points_hours", hour, kind],
  pointsHours: (cid: string): Deno.KvKey => ["company", cid, "points_hours"],
  pending: (
    cid: string,
    hour: number,
    side: "in" | "out",
  ): Deno.KvKey => ["company", cid, "points_pending", hour, side],
  pendings: (cid: string): Deno.KvKey => ["company", cid, "points_pending"],
  cardTotal: (cid: string, side: "in" | "out"): Deno.KvKey => ["company", cid, "card_totals", side],
};
/**
 * The claims epoch of a company: set (blindly, with no read) by every write that claims a unique key, so a batch
 * that read many unique keys absent can check this one key's versionstamp instead of each key (storage/commit.ts,
 * storage/import_batch.ts).
 */
export const claimKeys = {
  epoch: (cid: string): Deno.KvKey => ["company", cid, "claims_epoch"],
  /** A grow-only count of the commits that changed anything of the company (storage/commit.ts). */
  changes: (cid: string): Deno.KvKey => ["company", cid, "changes"],
};

/** Collections of unique indexes under a company's prefix (one key per value, holding its record's id, or for cards
 * the card's id and owner). */
export const UNIQUE_INDEXES: ReadonlySet<string> = new Set([
  "customers_by_phone",
  "customers_by_email",
  "customers_by_external_id",
  "cards_by_uid",
  "cards_by_barcode",
  "cards_by_external_id",
  "groups_by_name",
  "card_types_by_name",
  "bonus_programs_by_name",
]);
