// @datapath/bpf-maps from its published tarball (root): a hash map created, written and read back.
import { createMap, ipv4, u32 } from '@datapath/bpf-maps';

using endpoints = createMap({ type: 'hash', key: ipv4, value: u32, maxEntries: 16, name: 'consumer_ep' });
endpoints.set('10.244.0.10', 101);
endpoints.set('10.244.0.11', 102);
const dump = [...endpoints.entries()].map(([k, v]) => `${k}=${v}`).sort();
if (endpoints.get('10.244.0.11') !== 102 || dump.length !== 2) throw new Error(`unexpected map ${dump}`);
console.log(dump.join(' '));
