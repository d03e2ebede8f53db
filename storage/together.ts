/**
 * Creates committed together. A company's creates of one kind (customers, cards) take their ids from a checked
 * sequence, so they commit one at a time in this process's per-company queue: a chain of commits, one per turn of the
 * event loop. Creates that arrive while the queue is busy wait here, and whoever holds the queue next commits the
 * first in line and those right behind it of the same actor in one atomic write (one write has one actor: its audit
 * entries name it), so under a burst the queue serves several creates a turn, still in commit order with dense ids.
 */
import type { Actor } from "../domain/audit.ts";
import type { Store } from "./store.ts";

/** A create waiting for its company's queue, with how to answer its caller. */
export type Queued<T, R> = T & { actor: Actor; settle: (result: Promise<R>) => void };

/** What a write of several creates did not commit (it settles those it did, and those its error failed). */
export interface Left<Q> {
  /** For the one-at-a-time path, in order, on this turn of the queue. */
  alone: Q[];
  /** Past the write's limits: first in line for the queue's next turn, to go together again. */
  unfit: Q[];
}

/** How one kind of create is committed, together and alone. */
export interface TogetherOptions<T, R> {
  /** The per-company queue (KeyedMutex key) the kind's creates commit in. */
  queueKey: (cid: string) => string;
  /** Most creates tried in one write (the write's own limits usually stop it sooner). */
  perCommit: number;
  /** Commits several creates of one actor in one atomic write. */
  together: (store: Store, cid: string, queued: Queued<T, R>[]) => Promise<Left<Queued<T, R>>>;
  /** Commits one create alone (inside the queue). */
  alone: (store: Store, queued: Queued<T, R>) => Promise<R>;
}

/** A queue of creates committed together (see the module's comment): `add` resolves as the create commits. */
export function togetherQueue<T, R>(options: TogetherOptions<T, R>) {
  /** Creates waiting, by store and company. */
  const waiting = new WeakMap<Store, Map<string, Queued<T, R>[]>>();

  /** Takes the waiting creates when the company's queue comes to them. */
  const drainLater = (store: Store, cid: string, list: Queued<T, R>[]): void => {
    store.mutex.run(options.queueKey(cid), async () => {
      if (list.length === 0) return;
      // The first in line and those right behind it of the same actor go now, so a create of another caller waits
      // only for those that came before it.
      const first = list[0]!.actor;
      let run = 1;
      while (run < list.length && run < options.perCommit && sameActor(list[run]!.actor, first)) run++;
      const now = list.splice(0, run);
      if (list.length > 0) drainLater(store, cid, list);
      let alone = now;
      if (now.length > 1) {
        const left = await options.together(store, cid, now);
        alone = left.alone;
        if (left.unfit.length > 0) {
          const wasEmpty = list.length === 0;
          list.unshift(...left.unfit);
          if (wasEmpty) drainLater(store, cid, list);
        }
      }
      for (const q of alone) {
        const result = options.alone(store, q);
        q.settle(result);
        await result.catch(() => {});
      }
    }).catch(() => {});
  };

  return {
    /** Queues a create of `actor` for its company's next turn; resolves or rejects as it commits. */
    add(store: Store, actor: Actor, create: T): Promise<R> {
      const cid = actor.companyId;
      let byCompany = waiting.get(store);
      if (!byCompany) waiting.set(store, byCompany = new Map());
      let queue = byCompany.get(cid);
      if (!queue) byCompany.set(cid, queue = []);
      const list = queue;
      return new Promise<R>((resolve, reject) => {
        list.push({ ...create, actor, settle: (result: Promise<R>) => result.then(resolve, reject) });
        if (list.length === 1) drainLater(store, cid, list);
      });
    },
  };
}

function sameActor(a: Actor, b: Actor): boolean {
  return a.name === b.name && a.userId === b.userId;
}
