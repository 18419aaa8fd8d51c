/** Time source and timers, injectable so lease expiry and grace periods can be tested in virtual time. */
export interface Clock {
  /** Milliseconds since an arbitrary epoch. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer; unknown or fired handles are ignored. */
  clearTimeout(handle: unknown): void;
}

/**
 * The real clock: `Date.now()` and unref'd Node timers (a pending lease timer never keeps a process alive).
 *
 * @example Using the system clock explicitly
 * ```ts
 * import { MemoryStore, systemClock } from '@datapath/kvstore';
 * const store = new MemoryStore({ clock: systemClock });
 * await store.close();
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface PendingTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A virtual clock for tests: time moves only when {@link ManualClock.advance} is called, which fires the
 * due timers in time order (including timers they schedule).
 *
 * @example Expiring a lease in virtual time
 * ```ts
 * import { ManualClock, MemoryStore } from '@datapath/kvstore';
 * const clock = new ManualClock();
 * const store = new MemoryStore({ clock });
 * const lease = await store.grantLease(2);
 * await store.put('nodes/a', 'up', { lease: lease.id });
 * lease.release();          // stop keep-alives, as a crashed node would
 * clock.advance(2_000);     // the TTL passes
 * console.log(await store.get('nodes/a')); // undefined
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #next = 1;
  #timers: PendingTimer[] = [];

  /** Starts the clock at `start` milliseconds. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at `now() + ms` virtual milliseconds. */
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  /** Cancels a timer scheduled by {@link ManualClock.setTimeout}. */
  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let due: PendingTimer | undefined;
      for (const t of this.#timers) if (t.at <= target && (due === undefined || t.at < due.at)) due = t;
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = target;
  }
}
