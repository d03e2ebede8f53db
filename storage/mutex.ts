/** Runs tasks one at a time per key inside this process, so writers of one hot key queue instead of retrying. */
export class KeyedMutex {
  #tails = new Map<string, Promise<unknown>>();

  /** Whether no task of this key is running or waiting. */
  isIdle(key: string): boolean {
    return !this.#tails.has(key);
  }

  /** Runs `task` after every earlier task of the same key has settled. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(() => {}, () => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
