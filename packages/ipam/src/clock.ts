// Time source of HostScope's expiration timers, injectable so tests use virtual time.

/** A time source with timers. */
export interface Clock {
  /** Milliseconds since an arbitrary origin. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer. */
  clearTimeout(handle: unknown): void;
}

/**
 * The real clock (`Date.now`, `setTimeout`); its timers do not keep the process alive.
 *
 * @example
 * ```ts
 * import { systemClock } from '@datapath/ipam';
 * console.log(systemClock.now() > 0); // true
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A virtual clock for tests: time moves only when {@link ManualClock.advance} is called, which runs the
 * timers that fall due, in order.
 *
 * @example Expiring after 30 virtual seconds
 * ```ts
 * import { ManualClock } from '@datapath/ipam';
 * const clock = new ManualClock();
 * clock.setTimeout(() => console.log('fired at', clock.now()), 30_000);
 * clock.advance(30_000); // fired at 30000
 * ```
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  /** Starts at `start` milliseconds (default 0). */
  constructor(start = 0) {
    this.t = start;
  }

  /** The virtual time. */
  now(): number {
    return this.t;
  }

  /** Schedules `fn` at `now() + ms`. */
  setTimeout(fn: () => void, ms: number): unknown {
    const seq = ++this.seq;
    this.pending.set(seq, { at: this.t + Math.max(0, ms), seq, fn });
    return seq;
  }

  /** Cancels a timer. */
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Number of timers not yet run. */
  get timers(): number {
    return this.pending.size;
  }

  /** Moves time forward by `ms`, running every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending.values())
        if (p.at <= end && (next === undefined || p.at < next.at || (p.at === next.at && p.seq < next.seq)))
          next = p;
      if (next === undefined) break;
      this.pending.delete(next.seq);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}
