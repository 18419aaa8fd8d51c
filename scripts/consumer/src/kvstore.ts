// @datapath/kvstore from its published tarball: the in-memory store's compare-and-swap and watch.
import { MemoryStore } from '@datapath/kvstore';

const store = new MemoryStore();
const seen: string[] = [];
const watch = await store.watch('nodes/', (event) =>
  seen.push(event.type === 'put' ? `put:${event.entry.key}` : `delete:${event.key}`),
);
await store.put('nodes/a', '10.244.0.0/24');
await store.delete('nodes/a');
await new Promise((r) => setTimeout(r, 10));
await watch.close();
await store.close();
if (seen.length !== 2) throw new Error(`expected two watch events, saw ${seen.join(', ')}`);
console.log(seen.join(' '));
