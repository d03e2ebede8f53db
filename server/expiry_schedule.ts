/**
 * Runs the expiry of points on its own: on Deno Deploy through `Deno.cron` (hourly, acting in the configured local
 * hour), elsewhere through timers (shortly after start, then daily at the configured local hour). Every run takes
 * the job's KV lease first, so of several processes over one store only one runs at a time; errors are logged and
 * never reach the server; the timers are unref'd, so they never keep a process alive.
 */
import { addDays, formatDate, localDate, parseDateTime } from "../domain/dates.ts";
import type { Store } from "../storage/store.ts";
import { expirePointsLeased, type ExpirySummary } from "../usecases/admin.ts";

/** The actor the scheduled job writes as (user id 0: no API key). */
export const EXPIRE_ACTOR_NAME = "task:expire";
/** How long a run may hold the lease before another process may take it over (a crashed holder's lease lapses). */
export const EXPIRE_LEASE_MS = 30 * 60 * 1000;
/** How long after start the first run waits, so that start-up and readiness checks go first. */
export const EXPIRE_START_DELAY_MS = 60 * 1000;

/** Settings of the schedule. */
export interface ExpiryScheduleOptions {
  /** Local hour of the daily run, 0-23. */
  atHour: number;
  /** The zone of that hour. */
  timeZone: string;
  /** Where a line per run (and every error) goes. */
  log: (line: string) => void;
  /** Delay of the run after start, ms (default EXPIRE_START_DELAY_MS); null for none. */
  startDelayMs?: number | null;
  /** Lease time, ms (default EXPIRE_LEASE_MS). */
  leaseMs?: number;
  /** Use timers even where Deno.cron exists (tests). */
  timersOnly?: boolean;
}

/** A running schedule. */
export interface ExpirySchedule {
  /** Which way it runs. */
  mode: "cron" | "timer";
  /** Runs once now (under the lease); resolves with the summary, or null when another process held the lease. */
  runNow: () => Promise<ExpirySummary | null>;
  /** Clears the timers (a cron cannot be unregistered; its runs stop doing anything). */
  stop: () => void;
}

/** The next start of `hour` o'clock in `timeZone` after `now`, epoch ms. */
export function nextRunAt(now: number, hour: number, timeZone: string): number {
  const at = (offset: number) => {
    const day = formatDate(addDays(localDate(now, timeZone), offset));
    return parseDateTime(`${day} ${String(hour).padStart(2, "0")}:00:00`, "EXPIRE_AT_HOUR", timeZone);
  };
  for (let offset = 0; offset < 3; offset++) {
    const t = at(offset);
    if (t > now) return t;
  }
  return at(3);
}

type Cron = (name: string, schedule: string, handler: () => Promise<void>) => unknown;

/** Starts the schedule for a store (one per process); it logs each run and each failure. */
export function startExpirySchedule(store: Store, options: ExpiryScheduleOptions): ExpirySchedule {
  const holder = crypto.randomUUID();
  const actor = { companyId: "", name: EXPIRE_ACTOR_NAME, userId: 0 };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let stopped = false;

  const runNow = async (): Promise<ExpirySummary | null> => {
    const started = performance.now();
    const summary = await expirePointsLeased(store, actor, {
      holder,
      leaseMs: options.leaseMs ?? EXPIRE_LEASE_MS,
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (summary === null) options.log("expire: skipped, another process is running it");
    else {
      options.log(
        `expire: ${summary.lots} lots (${summary.points / 100} points) written off in ${summary.expiredBalances} ` +
          `of ${summary.balances} balances, ${summary.companies.length} companies, ${seconds} s` +
          (summary.skipped ? `; ${summary.skipped} balances kept changing, left for the next run` : ""),
      );
    }
    return summary;
  };
  const guarded = async () => {
    if (stopped) return;
    try {
      await runNow();
    } catch (error) {
      options.log(`expire: failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    }
  };
  const later = (ms: number, run: () => void) => {
    const id = setTimeout(() => {
      timers.delete(id);
      run();
    }, Math.max(0, ms));
    Deno.unrefTimer(id);
    timers.add(id);
  };

  const cron = (Deno as unknown as { cron?: Cron }).cron;
  if (typeof cron === "function" && !options.timersOnly) {
    // Deploy's cron runs in UTC: run hourly and act in the configured local hour (right across DST changes).
    cron("expire points", "0 * * * *", async () => {
      const hour = Number(
        new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: options.timeZone })
          .format(new Date(store.clock())),
      );
      if (hour === options.atHour) await guarded();
    });
    return { mode: "cron", runNow, stop: () => void (stopped = true) };
  }

  const daily = () => {
    later(nextRunAt(store.clock(), options.atHour, options.timeZone) - store.clock(), async () => {
      await guarded();
      if (!stopped) daily();
    });
  };
  const startDelay = options.startDelayMs === undefined ? EXPIRE_START_DELAY_MS : options.startDelayMs;
  if (startDelay !== null) later(startDelay, () => void guarded());
  daily();
  return {
    mode: "timer",
    runNow,
    stop: () => {
      stopped = true;
      for (const id of timers) clearTimeout(id);
      timers.clear();
    },
  };
}
