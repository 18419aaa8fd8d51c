// @datapath/bpf-maps from its published tarball (root): a hash map created, written and read back, with
// bpf(2) through the native addon that @datapath/libbpf's tarball ships for this Node (when it ships one).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createMap, ipv4, u32 } from '@datapath/bpf-maps';
import { bpfBackend } from '@datapath/libbpf';

using endpoints = createMap({ type: 'hash', key: ipv4, value: u32, maxEntries: 16, name: 'consumer_ep' });
endpoints.set('10.244.0.10', 101);
endpoints.set('10.244.0.11', 102);
const dump = [...endpoints.entries()].map(([k, v]) => `${k}=${v}`).sort();
if (endpoints.get('10.244.0.11') !== 102 || dump.length !== 2) throw new Error(`unexpected map ${dump}`);

const libbpf = dirname(createRequire(import.meta.url).resolve('@datapath/libbpf/package.json'));
const prebuild = join(
  libbpf,
  'prebuilds',
  `${process.platform}-${process.arch}`,
  `bpf.abi${process.versions.modules}.node`,
);
const expected = existsSync(prebuild) ? 'native' : 'koffi';
if (bpfBackend() !== expected) throw new Error(`bpf(2) backend ${bpfBackend()}, expected ${expected}`);
console.log(`${dump.join(' ')} (bpf(2): ${bpfBackend()})`);
