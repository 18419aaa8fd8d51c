import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { objPin } from '@datapath/libbpf';
import { requireRoot, uniqueName } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BpfError,
  buildPacket,
  compile,
  load,
  openObject,
  parsePacket,
  skbContext,
  skbMark,
  TcAct,
  XdpAct,
} from '../src/index.js';
import { bpfDir } from './helpers/fixtures.js';

let runObj: string;
let connect4Obj: string;

beforeAll(async () => {
  runObj = (await compile({ files: [join(bpfDir, 'run.bpf.c')] })).path;
  connect4Obj = (await compile({ files: [join(bpfDir, 'connect4.bpf.c')] })).path;
});

const udp = (ttl: number) =>
  buildPacket([
    { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
    { kind: 'ipv4', src: '10.244.0.10', dst: '10.244.0.11', ttl },
    { kind: 'udp', sport: 4000, dport: 53 },
    { kind: 'payload', bytes: new Uint8Array(18).fill(0xab) },
  ]);

/** `bpftool prog run` on the same input: its retval, output packet and mean duration. */
function bpftoolRun(pin: string, data: Uint8Array, repeat: number) {
  const dir = mkdtempSync(join(tmpdir(), 'dp-prog-run-'));
  try {
    writeFileSync(join(dir, 'in'), data);
    const out = execFileSync(
      'bpftool',
      [
        'prog',
        'run',
        'pinned',
        pin,
        'data_in',
        join(dir, 'in'),
        'data_out',
        join(dir, 'out'),
        'repeat',
        String(repeat),
      ],
      { encoding: 'utf8' },
    );
    const m = /Return value: (-?\d+), duration(?: \(average\))?: (\d+)ns/.exec(out);
    if (m === null) throw new Error(`unexpected bpftool output: ${out}`);
    return {
      retval: Number(m[1]),
      durationNs: Number(m[2]),
      data: new Uint8Array(readFileSync(join(dir, 'out'))),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Program.run (BPF_PROG_TEST_RUN)', () => {
  it('runs a tc program: verdicts, rewritten packet, output ctx, map side effects; agrees with bpftool prog run', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(runObj));
    const prog = coll.program('ttl_dec');
    const r = prog.run({ data: udp(64), ctx: skbContext({ ifindex: 1 }) });
    expect(r.retval).toBe(TcAct.OK);
    expect(r.verdict).toBe('TC_ACT_OK');
    const [, ip] = parsePacket(r.data);
    expect(ip).toMatchObject({ kind: 'ipv4', ttl: 63, checksumOk: true });
    expect(skbMark(r.ctx)).toBe(7);
    expect(prog.run({ data: udp(1) })).toMatchObject({ retval: TcAct.SHOT, verdict: 'TC_ACT_SHOT' });
    const arp = buildPacket([
      { kind: 'eth', src: '02:00:00:00:00:01', dst: 'ff:ff:ff:ff:ff:ff' },
      {
        kind: 'arp',
        op: 1,
        senderMac: '02:00:00:00:00:01',
        senderIp: '10.244.0.10',
        targetMac: '00:00:00:00:00:00',
        targetIp: '10.244.0.1',
      },
    ]);
    expect(prog.run({ data: arp })).toMatchObject({ retval: -1, verdict: 'TC_ACT_UNSPEC' });
    // Every run went through the program: 3 single runs + 100 repeats.
    prog.run({ data: udp(64), repeat: 100 });
    const runs = coll.map('runs');
    if (runs.kind !== 'array') throw new Error('runs is an array');
    expect(new DataView(runs.get(0)!.buffer).getBigUint64(0, true)).toBe(103n);

    // Cross-check with bpftool on the same input, same process, same moment.
    const pinDir = join('/sys/fs/bpf', uniqueName());
    mkdirSync(pinDir);
    try {
      const pin = join(pinDir, 'ttl_dec');
      objPin(prog.fd, pin);
      const repeat = 20000;
      const ours = prog.run({ data: udp(64), repeat });
      const theirs = bpftoolRun(pin, udp(64), repeat);
      expect(ours.retval).toBe(theirs.retval);
      expect(ours.data).toEqual(theirs.data);
      // Both are the kernel's own mean over `repeat` runs; report them side by side.
      console.log(
        `prog run ttl_dec, ${repeat} repeats: program.run ${ours.durationNs} ns/packet, bpftool prog run ${theirs.durationNs} ns/packet`,
      );
      expect(ours.durationNs).toBeGreaterThan(0);
      expect(theirs.durationNs).toBeGreaterThan(0);
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });

  it('runs an XDP program with its typed verdicts', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(runObj));
    const prog = coll.program('xdp_drop_udp');
    expect(prog.run({ data: udp(64) })).toMatchObject({ retval: XdpAct.DROP, verdict: 'XDP_DROP' });
    const tcp = buildPacket([
      { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
      { kind: 'ipv4', src: '10.244.0.10', dst: '10.244.0.11' },
      { kind: 'tcp', sport: 4000, dport: 80, flags: { syn: true } },
    ]);
    const r = prog.run({ data: tcp });
    expect(r).toMatchObject({ retval: XdpAct.PASS, verdict: 'XDP_PASS' });
    expect(r.data).toEqual(tcp);
  });

  it('gives typed errors for bad input and for types the kernel cannot run, before the syscall', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(runObj));
    const prog = coll.program('ttl_dec');
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error('expected a throw');
    };
    expect(err(() => prog.run({ data: new Uint8Array(0) }))).toMatchObject({
      name: 'BpfError',
      code: 'InvalidArgument',
      errno: undefined,
      message: expect.stringMatching(/needs a packet/),
    });
    expect(err(() => prog.run({ data: udp(64), ctx: new Uint8Array(200) }))).toMatchObject({
      code: 'InvalidArgument',
      errno: undefined,
      message: expect.stringMatching(/ctx of a sched_cls program is 1…192 bytes, got 200/),
    });
    expect(err(() => prog.run({ data: udp(64), repeat: 0 }))).toMatchObject({ code: 'InvalidArgument' });
    // A ctx field the kernel does not let a test run set (`len`, offset 0): the kernel's EINVAL, typed.
    const badCtx = skbContext({});
    badCtx[0] = 1;
    expect(err(() => prog.run({ data: udp(64), ctx: badCtx }))).toMatchObject({
      code: 'InvalidArgument',
      errno: 22,
      syscall: 'bpf(BPF_PROG_TEST_RUN)',
    });
    using c4 = load(openObject(connect4Obj));
    const e = err(() => Object.values(c4.programs)[0]!.run({ data: udp(64) }));
    expect(e).toBeInstanceOf(BpfError);
    expect(e).toMatchObject({ code: 'NotSupported', message: expect.stringMatching(/cgroup_sock_addr/) });
  });
});
