/**
 * XDP prefilter example: drops packets from a deny list of CIDRs at the earliest hook, before the
 * stack allocates anything, and counts the drops per CIDR.
 *
 * Shows: @datapath/loader (compile, load, xdpAttach native with generic fallback), an LPM trie of
 * CIDRs through @datapath/bpf-maps, per-CPU counters read back and summed.
 * Needs: Linux ≥ 5.9 (veth native XDP), root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF), clang.
 * Run: `pnpm --filter @datapath/example-xdp-prefilter run demo [cidr…]` (as root). Everything happens
 * in two namespaces it creates (a client and a server joined by a veth) and removes afterwards.
 */
import { PrefilterLab, SERVER_IP } from './prefilter.js';

const deny = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['10.244.9.0/26', '10.244.9.128/28'];
const sources = ['10.244.9.10', '10.244.9.130', '10.244.9.200'];
const COUNT = 20;

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('xdp-prefilter needs root: it creates namespaces, a veth and an XDP program');
    return 1;
  }
  const lab = await PrefilterLab.create(`dpx${process.pid}`, sources);
  try {
    lab.setDenyList(deny);
    console.log(`prefilter attached to the server's eth0 (${lab.mode} XDP); deny list: ${deny.join(', ')}`);
    console.log(`\nSOURCE          SENT  ANSWERED  (ping ${SERVER_IP})`);
    for (const s of sources) {
      const r = lab.ping(s, COUNT);
      console.log(`${r.source.padEnd(14)}  ${String(r.sent).padStart(4)}  ${String(r.received).padStart(8)}`);
    }
    const c = lab.counters();
    console.log(`\nXDP verdicts: ${c.passed} passed, ${c.dropped} dropped, ${c.notIp} not IPv4 (passed)`);
    for (const [cidr, n] of Object.entries(c.hits)) console.log(`  ${cidr.padEnd(18)} ${n} dropped`);
    return 0;
  } finally {
    lab.close();
  }
}

process.exitCode = await main().catch((err: Error & { code?: string }) => {
  console.error(`xdp-prefilter: ${err.message}${err.code ? ` [${err.code}]` : ''}`);
  return 1;
});
