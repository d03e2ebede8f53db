/**
 * At most `max` tasks at once inside this process; the rest wait in arrival order. Pages of customers are built
 * through one, so 32 clients asking for pages of 200 at once hold 4 pages in memory, not 32 (about 6 MB of objects
 * each while being built): the two cores could not build them faster in parallel anyway.
 */
export class Gate {
  #running = 0;
  #waiting: (() => void)[] = [];
  constructor(readonly max: number) {}

  /** Runs `task` when a slot is free. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
