/**
 * Expiration timers of the addresses the agent hands out unconfirmed (IPAM allocate with an expiration, CNI
 * ADD until the plugin confirms): one timer for the earliest expiration, re-armed as leases come and go. The
 * lease records themselves live in the agent's state (so a restarted agent releases what expired meanwhile);
 * this only says when.
 */
export class Leases {
  readonly #due = new Map<string, number>();
  readonly #onExpire: (ip: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #at = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(onExpire: (ip: string) => void) {
    this.#onExpire = onExpire;
  }

  /** Sets (or moves) the expiration of `ip` (epoch milliseconds). */
  set(ip: string, expiresAt: number): void {
    this.#due.set(ip, expiresAt);
    if (expiresAt < this.#at) this.#arm();
  }

  /** Forgets `ip` (confirmed or released). */
  delete(ip: string): void {
    this.#due.delete(ip);
    if (this.#due.size === 0) this.#disarm();
  }

  /** How many leases are pending. */
  get size(): number {
    return this.#due.size;
  }

  /** Calls the expiry handler for every lease that is due now, then re-arms for the next one. */
  fireExpired(): void {
    this.#disarm();
    const now = Date.now();
    for (const [ip, at] of [...this.#due]) {
      if (at > now) continue;
      this.#due.delete(ip);
      this.#onExpire(ip);
    }
    this.#arm();
  }

  /** Stops the timer (the records stay in the state for the next agent). */
  close(): void {
    this.#closed = true;
    this.#disarm();
    this.#due.clear();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Number.POSITIVE_INFINITY;
  }

  #arm(): void {
    if (this.#closed) return;
    this.#disarm();
    let next = Number.POSITIVE_INFINITY;
    for (const at of this.#due.values()) if (at < next) next = at;
    if (next === Number.POSITIVE_INFINITY) return;
    this.#at = next;
    // unref: pending leases never keep a process alive on their own (a resident agent has its server).
    this.#timer = setTimeout(() => this.fireExpired(), Math.max(0, next - Date.now()) + 5).unref();
  }
}
