/**
 * Service load-balancing example: a ClusterIP-style service address that no interface owns; the socket
 * LB of @datapath/lb (cgroup connect/sendmsg/recvmsg/getpeername hooks) turns each connect() to it into a
 * connect() to one backend, so no packet ever carries the service address and nothing is translated per
 * packet; getpeername() still shows the service.
 *
 * Shows: @datapath/lb (SocketLb: the package's BPF compiled and attached through @datapath/loader, the
 * ServiceWriter's ordered map updates, random and Maglev selection), @datapath/netdev for the namespaces.
 * Needs: Linux ≥ 5.18 (bpf_set_retval in cgroup sock_addr hooks), a cgroup v2 mount, root, clang.
 * Run: `pnpm --filter @datapath/example-service-lb run demo` (as root). Only processes placed in the
 * example's own cgroup are affected; its namespaces and cgroup are removed afterwards.
 */
import { ServiceLab } from './lb.js';

const VIP = '10.96.0.10';
const PORT = 80;
const TARGET_PORT = 8080;
const CONNECTIONS = 30;

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('service-lb needs root: it creates namespaces, a cgroup and a BPF program');
    return 1;
  }
  const lab = await ServiceLab.create(`dplb${process.pid}`, 3, TARGET_PORT);
  try {
    const ips = lab.backends.map((b) => b.ip);
    lab.setService(VIP, PORT, ips, TARGET_PORT);
    console.log(`service ${VIP}:${PORT}/TCP → ${ips.map((ip) => `${ip}:${TARGET_PORT}`).join(', ')}`);
    console.log(`socket LB on cgroup ${lab.cgroupDir}\n`);
    const answers = lab.connect(VIP, PORT, CONNECTIONS);
    const byBackend = new Map<string, number>();
    for (const a of answers) byBackend.set(a, (byBackend.get(a) ?? 0) + 1);
    console.log('ANSWERED BY               CONNECTIONS');
    for (const [who, n] of [...byBackend].sort()) console.log(`${who.padEnd(26)}${n}`);
    // the same service selected through its Maglev table
    lab.setService(VIP, PORT, ips, TARGET_PORT, 'maglev');
    const maglev = lab.connect(VIP, PORT, 10);
    console.log(`\nmaglev: ${new Set(maglev).size} backends answered 10 connections`);
    // drain one backend: new connections avoid it at once, nothing is reattached
    lab.setService(VIP, PORT, ips.slice(0, 2), TARGET_PORT);
    const after = lab.connect(VIP, PORT, 10);
    console.log(
      `\nafter removing ${ips[2]}: ${after.filter((a) => a.startsWith('backend-2 ')).length}/10 connections reached it`,
    );
    return answers.every((a) => a.startsWith('backend-')) ? 0 : 1;
  } finally {
    await lab.close();
  }
}

process.exitCode = await main().catch((err: Error & { code?: string }) => {
  console.error(`service-lb: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  return 1;
});
