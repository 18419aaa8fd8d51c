// @datapath/lb/datapath from its published tarball (root): compile a program that includes the shipped
// lb.h through the loader, and load it (the shared service maps are created).
import { LB_BPF_DIR, lbConfig } from '@datapath/lb/datapath';
import { compile, load, openObject } from '@datapath/loader';

const { path } = await compile({
  source: '#include "lb.h"\nchar _license[] SEC("license") = "Dual BSD/GPL";\n',
  includeDirs: [LB_BPF_DIR],
  config: lbConfig({ maglevTableSize: 251, serviceMapMax: 64, backendMapMax: 64 }),
});
const coll = load(openObject(path, 'lb'));
const names = Object.keys(coll.maps).sort();
coll.close();
if (!names.includes('lb_services') || !names.includes('lb_maglev'))
  throw new Error(`maps: ${names.join(', ')}`);
console.log(`lb.h maps: ${names.join(', ')}`);
