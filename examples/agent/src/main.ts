/**
 * datapath reference agent (first version).
 *
 * Shows: the SDK talking to the kernel directly — it creates an endpoint map through bpf(2), fills it
 * with two pod entries and reads them back. The full agent (pods as network namespaces, eBPF datapath,
 * policy) grows from here.
 * Needs: Linux with BPF, root (CAP_BPF). Run: `make demo`.
 */
import { BpfError, fdClose, MapType, mapCreate, mapLookup, mapUpdate } from '@datapath/libbpf';

const pods = [
  { name: 'default/a', ip: [10, 244, 0, 10], ifindex: 101 },
  { name: 'default/b', ip: [10, 244, 0, 11], ifindex: 102 },
];

function main(): number {
  let fd: number;
  try {
    fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 64, name: 'agent_endpoints' });
  } catch (err) {
    if (err instanceof BpfError) {
      console.error(`agent: cannot create the endpoint map: ${err.message} [${err.code}]`);
      return 1;
    }
    throw err;
  }
  try {
    for (const pod of pods) {
      const value = new Uint8Array(4);
      new DataView(value.buffer).setUint32(0, pod.ifindex, true);
      mapUpdate(fd, Uint8Array.from(pod.ip), value);
    }
    console.log('endpoint map (read back from the kernel):');
    for (const pod of pods) {
      const value = new Uint8Array(4);
      const found = mapLookup(fd, Uint8Array.from(pod.ip), value);
      const ifindex = found ? new DataView(value.buffer).getUint32(0, true) : 'missing';
      console.log(`  ${pod.ip.join('.').padEnd(12)} ${pod.name.padEnd(10)} ifindex ${ifindex}`);
    }
    return 0;
  } finally {
    fdClose(fd);
  }
}

process.exitCode = main();
