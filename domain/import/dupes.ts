/**
 * Duplicates inside one file: the first row claiming a phone, email, external id or card wins, a later one is
 * rejected naming the earlier line. Values are kept as 53-bit hashes beside their line, so a file of a million
 * rows costs tens of megabytes, not hundreds; a hash collision (about one in 10^9 for a million values) would
 * reject a row wrongly, naming the line it seems to repeat, and never lets a real duplicate through.
 */

/** Two 32-bit FNV-1a variants folded into one safe integer. */
function hash53(text: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 13;
  }
  return (h2 >>> 0) * 0x200000 + ((h1 >>> 0) & 0x1fffff);
}

/** A value already claimed by an earlier line. */
export interface Duplicate {
  field: string;
  value: string;
  line: number;
}

/** The unique values claimed so far in one file, per field. */
export class DuplicateTracker {
  #seen = new Map<string, Map<number, number>>();

  /**
   * Claims the row's unique values (null or empty ones are skipped) for `line`: the first clash found, or null
   * when every value is new, in which case all of them are recorded. A rejected row claims nothing.
   */
  claim(line: number, values: Record<string, string | null | undefined>): Duplicate | null {
    const hashes: [Map<number, number>, number][] = [];
    for (const [field, value] of Object.entries(values)) {
      if (value === null || value === undefined || value === "") continue;
      let seen = this.#seen.get(field);
      if (!seen) this.#seen.set(field, seen = new Map());
      const h = hash53(value);
      const earlier = seen.get(h);
      if (earlier !== undefined && earlier !== line) return { field, value, line: earlier };
      hashes.push([seen, h]);
    }
    for (const [seen, h] of hashes) seen.set(h, line);
    return null;
  }
}

/** The reject message of a duplicate: `phone "79001234567" is already in line 5`. */
export function duplicateMessage(d: Duplicate): string {
  return `${d.field} "${d.value}" is already in line ${d.line} of this file`;
}

/** Record ids per page of ClaimedLines. */
const PAGE = 1024;

/**
 * The lines of a file that claimed the unique values of stored records, by record id and field: a later line
 * whose value the store finds held by such a record repeats that line. Kept in pages of typed arrays, so a
 * record touched costs 4 bytes per field, not a map entry per value; the values themselves stay in the store.
 */
export class ClaimedLines {
  #pages = new Map<number, Int32Array>();
  #fields: Map<string, number>;

  constructor(fields: readonly string[]) {
    this.#fields = new Map(fields.map((f, i) => [f, i]));
  }

  /** The first line that claimed `field` of record `id`, or null. */
  get(id: number, field: string): number | null {
    const f = this.#fields.get(field);
    const page = this.#pages.get(Math.floor(id / PAGE));
    if (f === undefined || !page) return null;
    const line = page[(id % PAGE) * this.#fields.size + f]!;
    return line === 0 ? null : line;
  }

  /** Records that `line` claimed `field` of record `id`, unless an earlier line did. */
  set(id: number, field: string, line: number): void {
    const f = this.#fields.get(field);
    if (f === undefined) return;
    const n = Math.floor(id / PAGE);
    let page = this.#pages.get(n);
    if (!page) this.#pages.set(n, page = new Int32Array(PAGE * this.#fields.size));
    const at = (id % PAGE) * this.#fields.size + f;
    if (page[at] === 0) page[at] = line;
  }
}

/**
 * A set of record ids (non-negative integers) as a bitmap that grows with the largest id: 1,000,000 ids take 125 KB,
 * where a Set of numbers would take tens of MB.
 */
export class IdSet {
  #bits = new Uint8Array(1024);

  /** Adds an id; false when it was in already. */
  add(id: number): boolean {
    const byte = id >>> 3;
    if (byte >= this.#bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.#bits.length * 2));
      grown.set(this.#bits);
      this.#bits = grown;
    }
    const mask = 1 << (id & 7);
    if (this.#bits[byte]! & mask) return false;
    this.#bits[byte]! |= mask;
    return true;
  }
}

/** The line that claimed each record id (non-negative integers), in an array that grows with the largest id. */
export class IdLines {
  #lines = new Int32Array(1024);

  /** The line that claimed `id`, or 0. */
  get(id: number): number {
    return id < this.#lines.length ? this.#lines[id]! : 0;
  }

  set(id: number, line: number): void {
    if (id >= this.#lines.length) {
      const grown = new Int32Array(Math.max(id + 1, this.#lines.length * 2));
      grown.set(this.#lines);
      this.#lines = grown;
    }
    this.#lines[id] = line;
  }
}
