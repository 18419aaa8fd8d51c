/**
 * datapath reference agent: network namespaces on this machine become pods with an eBPF datapath
 * and network policy, in the spirit of cilium-agent.
 *
 * Shows: @datapath/ipam, netdev, loader, bpf-maps and policy composed into a node agent.
 * Needs: Linux ≥ 5.10 (bpf_redirect_peer; tcx from 6.6, tc otherwise), root (CAP_NET_ADMIN,
 * CAP_SYS_ADMIN, CAP_BPF), bpffs at /sys/fs/bpf, clang.
 * Run: `make demo`, or `pnpm --filter @datapath/example-agent exec tsx src/main.ts run scenarios/demo.json`.
 */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
});
