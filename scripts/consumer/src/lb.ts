// @datapath/lb from its published tarball: plan a Maglev service and check the ordered map updates.
import { LbError, ServiceTable } from '@datapath/lb';

const table = new ServiceTable({ tableSize: 251 });
const change = table.upsert({
  name: 'default/web:http',
  protocol: 'TCP',
  frontends: [{ address: '10.96.0.10', port: 80 }],
  backends: [
    { address: '10.244.1.5', port: 8080 },
    { address: '10.244.2.7', port: 8080, weight: 2 },
  ],
  selection: 'maglev',
});
const last = change.ops.at(-1);
if (last?.map !== 'services' || last.op !== 'put' || last.key.slot !== 0)
  throw new Error('master entry not last');
change.commit();
try {
  table.upsert({
    name: 'x',
    protocol: 'TCP',
    frontends: [{ address: '10.96.0.10', port: 80 }],
    backends: [],
  });
  throw new Error('duplicate frontend accepted');
} catch (e) {
  if (!(e instanceof LbError) || e.reason !== 'DuplicateFrontend') throw e;
}
console.log(`${change.ops.length} map updates, master entry last; duplicate frontend refused`);
