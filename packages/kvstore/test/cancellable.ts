// Test helper: a store whose watches can be made blind and then cancelled, as etcd does after a compaction
// (resync.test.ts, cluster-state.test.ts).
import {
  KvError,
  type KvStore,
  type KvWatchEvent,
  type KvWatchOptions,
  type MemoryStore,
} from '../src/index.js';

/** A store whose watches can be made blind and then cancelled, as etcd does after a compaction. */
export function cancellable(inner: MemoryStore) {
  const watches: { blind: boolean; options: KvWatchOptions }[] = [];
  const store: KvStore = {
    get: (k) => inner.get(k),
    list: (p) => inner.list(p),
    put: (k, v, o) => inner.put(k, v, o),
    delete: (k) => inner.delete(k),
    deletePrefix: (p) => inner.deletePrefix(p),
    txn: (c, s, f) => inner.txn(c, s, f),
    grantLease: (t) => inner.grantLease(t),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
    watch: async (prefix: string, listener: (e: KvWatchEvent) => void, options: KvWatchOptions = {}) => {
      const w = { blind: false, options };
      watches.push(w);
      return inner.watch(prefix, (e) => (w.blind ? undefined : listener(e)), options);
    },
  };
  return {
    store,
    blind: () => {
      for (const w of watches) w.blind = true;
    },
    cancel: () => {
      for (const w of watches.splice(0))
        w.options.onError?.(new KvError('NotFound', 'compacted', { op: 'watch' }));
    },
  };
}
