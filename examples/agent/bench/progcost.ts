/**
 * Run time of from_container per packet on the established-flow fast path (BPF_PROG_TEST_RUN), the
 * agent's current program against the same source at an older git revision, both loaded on the
 * same pinned maps of one agent: see bench/prog-cost.ts (the command) and bench/run.ts (a table row).
 * The first run admits the flow, every later one is the fast path (conntrack hit at the current
 * revision, MAC rewrite, TTL − 1, bpf_redirect_peer, which test-run does not carry out). TTL starts
 * at 255 and drops by one per run, so `repeat` stays below 250 and the segment is rewritten per call;
 * each program gets its own flow (source port), so its conntrack entries are its own.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, load, openObject } from '@datapath/loader';
import type { Agent } from '../src/agent.js';
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

/** Median ns per run of each program, and the spread. */
export interface ProgCost {
  current: { median: number; min: number; max: number };
  before: { median: number; min: number; max: number };
}

/**
 * Times from_container of the running `agent` (policy must allow `client` → `server`) against the
 * program compiled from bpf/datapath.c at git revision `rev`: `samples` alternating
 * `bpftool prog run … repeat` calls each (ns per run, the kernel's average over the repeats).
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
    const old = await compile({ files: [join(dir, 'datapath.c'), join(dir, 'datapath.h')] });
    const oldColl = load(openObject(old.path, 'datapath_old'), { pinDir: agent.datapath.pinDir });
    const newColl = load(openObject(agent.datapath.objectPath, 'datapath_new'), {
      pinDir: agent.datapath.pinDir,
    });
    try {
      const c = agent.state.pods[client]!;
      const s = agent.state.pods[server]!;
      const ctx = new Uint8Array(48);
      new DataView(ctx.buffer).setUint32(40, c.hostIfindex, true); // __sk_buff.ifindex
      writeFileSync(join(dir, 'ctx'), ctx);
      const run = (id: number, n: number): number => {
        const pkt = join(dir, `pkt${id}`);
        writeFileSync(pkt, segment(c.ip, s.ip, 40000 + (id % 20000), 1514));
        const out = execFileSync(
          'nsenter',
          [
            `--net=${agent.node.path}`,
            'bpftool',
            'prog',
            'run',
            'id',
            String(id),
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
        if (Number(m[1]) !== 7) throw new Error(`from_container returned ${m[1]}, not TC_ACT_REDIRECT`);
        return Number(m[2]);
      };
      const ids = {
        before: oldColl.program('from_container').info().id,
        current: newColl.program('from_container').info().id,
      };
      const times = { before: [] as number[], current: [] as number[] };
      for (const id of Object.values(ids)) run(id, 1); // admits the flow
      for (let i = 0; i < samples; i++) {
        times.before.push(run(ids.before, repeat));
        times.current.push(run(ids.current, repeat));
      }
      const sum = (t: number[]) => ({ median: median(t), min: Math.min(...t), max: Math.max(...t) });
      return { current: sum(times.current), before: sum(times.before) };
    } finally {
      oldColl.close();
      newColl.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
