import type { KvStore, KvWatch, KvWatchEvent } from './types.js';

/**
 * Keeps a local copy of everything under a prefix in step with the store: lists the prefix, applies every
 * entry (and a delete for each key the copy holds that the store no longer has), then watches from the next
 * revision. When the store cancels the watch (compaction), it reloads and watches again, retrying every
 * second until closed. Internal: the allocators own the copy; this owns the list/watch loop.
 */
export class PrefixMirror {
  readonly #store: KvStore;
  readonly #prefix: string;
  readonly #apply: (event: KvWatchEvent, notify: boolean) => void;
  readonly #known: () => Iterable<string>;
  #watch: KvWatch | undefined;
  #closed = false;

  /**
   * @param apply applies one event to the copy (`notify` is false only for the first load).
   * @param known the keys the copy currently holds, to find deletes missed while not watching.
   */
  constructor(
    store: KvStore,
    prefix: string,
    apply: (event: KvWatchEvent, notify: boolean) => void,
    known: () => Iterable<string>,
  ) {
    this.#store = store;
    this.#prefix = prefix;
    this.#apply = apply;
    this.#known = known;
  }

  /** The first load: applies the current entries without notifying, then watches. */
  start(): Promise<void> {
    return this.#load(false);
  }

  /** Stops watching (a pending retry does nothing after this). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#watch?.close();
  }

  async #load(notify: boolean): Promise<void> {
    const { entries, revision } = await this.#store.list(this.#prefix);
    const present = new Set<string>();
    for (const e of entries) {
      present.add(e.key);
      this.#apply({ type: 'put', entry: e }, notify);
    }
    for (const key of [...this.#known()]) {
      if (!present.has(key)) this.#apply({ type: 'delete', key, modRevision: revision }, notify);
    }
    this.#watch = await this.#store.watch(this.#prefix, (ev) => this.#apply(ev, true), {
      startRevision: revision + 1,
      onError: () => this.#resync(),
    });
  }

  #resync(): void {
    if (this.#closed) return;
    this.#load(true).catch(() => {
      setTimeout(() => this.#resync(), 1_000).unref();
    });
  }
}

/** Runs async sections one at a time per key (in call order), concurrently across keys. Internal. */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier section for `key` settled; returns (or throws) what `fn` does. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * The `onChange` listeners of a watched copy (the ipcache, node registry, identity allocator and CIDR pool).
 * A listener that throws is its own failure: the others are still called, and the copy and the store's watch
 * (which delivers the change, inside another writer's request on the memory store) go on. Internal.
 */
export class ChangeListeners<C> {
  readonly #set = new Set<(change: C) => void>();

  /** Registers `listener`; returns the function that unregisters it. */
  add(listener: (change: C) => void): () => void {
    this.#set.add(listener);
    return () => {
      this.#set.delete(listener);
    };
  }

  /** Calls every listener with `change`. */
  emit(change: C): void {
    for (const l of this.#set) {
      try {
        l(change);
      } catch {
        // a listener's failure is its own
      }
    }
  }
}
