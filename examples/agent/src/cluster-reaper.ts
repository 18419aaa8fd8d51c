/**
 * Gives the pod CIDRs of dead nodes back to the cluster pool. A node's liveness key (`nodes/<name>`) lives
 * under its lease; once a node has had none for a grace period (it crashed and did not come back), its
 * blocks are released so new nodes can have them. Every node of a cluster runs one reaper: the release is a
 * compare-and-swap that also requires the liveness key to be absent, so concurrent reapers release a block
 * once and never the block of a live node.
 */
import type { StoreClusterPool } from '@datapath/kvstore';

/** Options of {@link CidrReaper.start}. */
export interface CidrReaperOptions {
  /** How long a node must have been gone (no liveness key) before its CIDRs are released. */
  graceMs: number;
  /** How often to look (default a quarter of the grace period, within 200 ms..5 s). */
  intervalMs?: number;
  /** Called with the nodes whose CIDRs a round released. */
  onReaped?: (nodes: string[]) => void;
  /** Called when a round fails (etcd unreachable); the next round tries again. */
  onError?: (err: unknown) => void;
}

/** A periodic `StoreClusterPool.reapExpired`. */
export class CidrReaper implements Disposable {
  readonly #pool: StoreClusterPool;
  readonly #o: CidrReaperOptions;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<string[]> | undefined;
  #closed = false;

  private constructor(pool: StoreClusterPool, o: CidrReaperOptions) {
    this.#pool = pool;
    this.#o = o;
    const every = o.intervalMs ?? Math.min(5_000, Math.max(200, Math.floor(o.graceMs / 4)));
    this.#timer = setInterval(() => void this.tick().catch(() => undefined), every);
    this.#timer.unref();
  }

  /**
   * Starts looking every interval.
   * @example
   * ```ts
   * using reaper = CidrReaper.start(pool, { graceMs: 60_000 });
   * ```
   */
  static start(pool: StoreClusterPool, options: CidrReaperOptions): CidrReaper {
    if (!(options.graceMs >= 0)) throw new RangeError('graceMs must be ≥ 0');
    return new CidrReaper(pool, options);
  }

  /** One round now (rounds never overlap: a call during a round returns that round's result). */
  tick(): Promise<string[]> {
    if (this.#closed) return Promise.resolve([]);
    this.#running ??= this.#pool
      .reapExpired({ graceMs: this.#o.graceMs })
      .then(
        (released) => {
          if (released.length > 0) this.#o.onReaped?.(released);
          return released;
        },
        (err: unknown) => {
          if (!this.#closed) this.#o.onError?.(err);
          return [];
        },
      )
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** Stops; a round in flight finishes. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
