/**
 * Run time of from_container per packet on the established-flow fast path (BPF_PROG_TEST_RUN), the
 * agent's current program against the same source at an older git revision, both loaded on the
 * same pinned maps of one agent: see bench/prog-cost.ts (the command) and bench/run.ts (a table row).
 * The first run admits the flow, every later one is the fast path (conntrack hit at the current
 * revision, MAC rewrite, TTL − 1, bpf_redirect_peer, which test-run does not carry out). TTL starts
 * at 255 and drops by one per run, so `repeat` stays below 250 and the segment is rewritten per call;
 * each measurement gets its own flow (source port), so its conntrack entries are its own. Runs go
 * through `program.run` (@datapath/loader); `bpftool prog run` on the same input is the baseline row.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, load, openObject, skbContext, TcAct } from '@datapath/loader';
import type { Agent } from '../src/agent.js';
import { setConstants } from '../src/datapath.gen.js';
import { GATEWAY, ipv4HostU32 } from '../src/gateway.js';
import { datapathCompileOptions } from '../src/layout.js';
import { median } from './profile-setup.js';

const BPF_DIR = fileURLToPath(new URL('../bpf/', import.meta.url));

const ip4 = (s: string) => s.split('.').map(Number);

/** An Ethernet + IPv4 + TCP (ACK) frame of `size` bytes from `src`:`sport` to `dst`:5201, TTL 255. */
function segment(src: string, dst: string, sport: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], 0);
  v.setUint16(12, 0x0800);
  b[14] = 0x45;
  v.setUint16(16, size - 14);
  b[22] = 255; // TTL
  b[23] = 6; // TCP
  b.set(ip4(src), 26);
  b.set(ip4(dst), 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(24, ~sum & 0xffff);
  v.setUint16(34, sport);
  v.setUint16(36, 5201);
  b[46] = 5 << 4; // data offset
  b[47] = 0x10; // ACK
  return b;
}

/** Median ns per run, and the spread. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median ns per run of each program through `program.run`, and of the current one through `bpftool prog run`. */
export interface ProgCost {
  current: Spread;
  before: Spread;
  /** The current program on the same input through `bpftool prog run` (the shell-out this bench used to make). */
  bpftool: Spread;
}

/**
 * Times from_container of the running `agent` (policy must allow `client` → `server`) against the
 * program compiled from bpf/datapath.c at git revision `rev`: `samples` alternating
 * `program.run({ repeat })` calls each (BPF_PROG_TEST_RUN through @datapath/libbpf: ns per run, the
 * kernel's average over the repeats), plus the current program through `bpftool prog run` on the same
 * input in the same rounds, the baseline of the SDK's own test-run path.
 */
export async function progCost(
  agent: Agent,
  client: string,
  server: string,
  rev: string,
  samples: number,
  repeat: number,
): Promise<ProgCost> {
  const dir = mkdtempSync(join(tmpdir(), 'dpcost-'));
  try {
    for (const f of ['datapath.c', 'datapath.h']) {
      writeFileSync(
        join(dir, f),
        execFileSync('git', ['show', `${rev}:examples/agent/bpf/${f}`], { cwd: BPF_DIR }),
      );
    }
    const old = await compile({
      ...datapathCompileOptions(),
      files: [join(dir, 'datapath.c'), join(dir, 'datapath.h')],
    });
    const oldColl = load(openObject(old.path, 'datapath_old'), { pinDir: agent.datapath.pinDir });
    const spec = openObject(agent.datapath.objectPath, 'datapath_new');
    setConstants(spec, { gateway_ipv4: ipv4HostU32(GATEWAY) });
    const newColl = load(spec, { pinDir: agent.datapath.pinDir });
    try {
      const c = agent.state.pods[client]!;
      const s = agent.state.pods[server]!;
      const ctx = skbContext({ ifindex: c.hostIfindex });
      writeFileSync(join(dir, 'ctx'), ctx.subarray(0, 48));
      const progs = { before: oldColl.program('from_container'), current: newColl.program('from_container') };
      const packet = (flow: number) => segment(c.ip, s.ip, 40000 + flow, 1514);
      // The device is the client's host-side veth, in the agent's node namespace.
      const run = (which: 'before' | 'current', flow: number, n: number): number =>
        agent.node.run(() => {
          const r = progs[which].run({ data: packet(flow), ctx, repeat: n });
          if (r.retval !== TcAct.REDIRECT)
            throw new Error(`from_container returned ${r.verdict}, not TC_ACT_REDIRECT`);
          return r.durationNs;
        });
      const bpftoolRun = (flow: number, n: number): number => {
        const pkt = join(dir, `pkt${flow}`);
        writeFileSync(pkt, packet(flow));
        const out = execFileSync(
          'nsenter',
          [
            `--net=${agent.node.path}`,
            'bpftool',
            'prog',
            'run',
            'id',
            String(progs.current.info().id),
            'data_in',
            pkt,
            'ctx_in',
            join(dir, 'ctx'),
            'repeat',
            String(n),
          ],
          { encoding: 'utf8' },
        );
        const m = out.match(/Return value: (\d+), duration(?: \(average\))?: (\d+)ns/);
        if (!m) throw new Error(`bpftool prog run: ${out}`);
        if (Number(m[1]) !== TcAct.REDIRECT)
          throw new Error(`from_container returned ${m[1]}, not TC_ACT_REDIRECT`);
        return Number(m[2]);
      };
      // Each measurement has its own flow, admitted by its first run.
      run('before', 0, 1);
      run('current', 1, 1);
      bpftoolRun(2, 1);
      const times = { before: [] as number[], current: [] as number[], bpftool: [] as number[] };
      for (let i = 0; i < samples; i++) {
        times.before.push(run('before', 0, repeat));
        times.current.push(run('current', 1, repeat));
        times.bpftool.push(bpftoolRun(2, repeat));
      }
      const sum = (t: number[]) => ({ median: median(t), min: Math.min(...t), max: Math.max(...t) });
      return { current: sum(times.current), before: sum(times.before), bpftool: sum(times.bpftool) };
    } finally {
      oldColl.close();
      newColl.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
