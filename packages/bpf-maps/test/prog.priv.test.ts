import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fdClose, mapFdById, objGet, objInfo, possibleCpus } from '@datapath/libbpf';
import { bpftoolJson, requireRoot, run, uniqueName, withNetns } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes, createMap, openMapFd, PerCpuArrayMap, u64 } from '../src/index.js';
import { bpftoolDump, le } from './helpers.js';

const source = fileURLToPath(new URL('./fixtures/counter.bpf.c', import.meta.url));
let dir = '';
let object = '';

beforeAll(() => {
  if (process.getuid?.() !== 0) return;
  dir = mkdtempSync(join(tmpdir(), 'dpt-bpf-maps-'));
  object = join(dir, 'counter.o');
  execFileSync('clang', [
    '-O2',
    '-g',
    '--target=bpf',
    '-I/usr/include/x86_64-linux-gnu',
    '-c',
    source,
    '-o',
    object,
  ]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('maps shared with BPF programs', () => {
  it('prog array: set by program fd, lookups return the program id', (ctx) => {
    requireRoot(ctx);
    const pin = `/sys/fs/bpf/${uniqueName()}`;
    run('bpftool', ['prog', 'load', object, pin, 'type', 'classifier']);
    let progFd = -1;
    try {
      progFd = objGet(pin);
      const info = objInfo(progFd);
      expect(info.kind).toBe('prog');
      using jumps = createMap({ type: 'progArray', maxEntries: 4, name: uniqueName() });
      expect(jumps.get(2)).toBeUndefined();
      jumps.set(2, progFd);
      expect(jumps.get(2)).toBe(info.id);
      const dump = bpftoolDump(jumps.id);
      expect(dump).toHaveLength(1);
      expect([...dump[0]!.key]).toEqual(le(2, 4));
      expect([...dump[0]!.value!]).toEqual(le(info.id, 4));
      // No batch ops on prog arrays: dump falls back to key-by-key iteration.
      expect(jumps.dump()).toEqual([[2, info.id]]);
      // Wrapped from a bare fd with byte codecs (as a loader does), it still reads program ids.
      const view = openMapFd(jumps.fd, { key: bytes(4), value: bytes(4) });
      expect(view.kind).toBe('progArray');
      expect(view.get(2 as never)).toBe(info.id);
      view.close();
      expect(jumps.delete(2)).toBe(true);
      expect(jumps.dump()).toEqual([]);
      // fd 0 is not a program.
      expect(() => jumps.set(0, 0)).toThrow(expect.objectContaining({ code: 'InvalidArgument', errno: 22 }));
    } finally {
      if (progFd >= 0) fdClose(progFd);
      rmSync(pin, { force: true });
    }
  });

  it('per-CPU array counted by a tc program on real packets between two namespaces', async (ctx) => {
    requireRoot(ctx);
    // Load with bpftool (pinned under the run prefix) and attach the pin with tc: tc loading the object
    // itself would create /sys/fs/bpf/tc on the host.
    const pin = `/sys/fs/bpf/${uniqueName()}`;
    run('bpftool', ['prog', 'load', object, pin, 'type', 'classifier']);
    try {
      await countPackets(pin);
    } finally {
      rmSync(pin, { force: true });
    }
  });
});

async function countPackets(pin: string): Promise<void> {
  await withNetns(2, async (a, b) => {
    const veth = uniqueName();
    const net = `10.244.${Math.floor(Math.random() * 250) + 1}`;
    run('ip', [
      '-n',
      a.name,
      'link',
      'add',
      `${veth}a`,
      'type',
      'veth',
      'peer',
      'name',
      `${veth}b`,
      'netns',
      b.name,
    ]);
    run('ip', ['-n', a.name, 'addr', 'add', `${net}.1/24`, 'dev', `${veth}a`]);
    run('ip', ['-n', b.name, 'addr', 'add', `${net}.2/24`, 'dev', `${veth}b`]);
    run('ip', ['-n', a.name, 'link', 'set', `${veth}a`, 'up']);
    run('ip', ['-n', b.name, 'link', 'set', `${veth}b`, 'up']);
    run('tc', ['-n', a.name, 'qdisc', 'add', 'dev', `${veth}a`, 'clsact']);
    // nsenter, not `tc -n`: that remounts /sys and hides the bpffs pin.
    const tcAttach = ['filter', 'add', 'dev', `${veth}a`, 'ingress', 'bpf', 'da', 'object-pinned', pin];
    run('nsenter', [`--net=${a.path}`, 'tc', ...tcAttach]);
    const filters = JSON.parse(
      run('tc', ['-n', a.name, '-j', 'filter', 'show', 'dev', `${veth}a`, 'ingress']),
    ) as {
      options?: { prog?: { id: number } };
    }[];
    const progId = filters.find((f) => f.options?.prog)?.options?.prog?.id;
    expect(progId).toBeGreaterThan(0);
    const prog = bpftoolJson<{ map_ids: number[] }>(['prog', 'show', 'id', String(progId)]);
    expect(prog.map_ids).toHaveLength(1);
    using counter = PerCpuArrayMap.fromFd(mapFdById(prog.map_ids[0]!), { value: u64 }, { owned: true });
    expect(counter.cpus).toBe(possibleCpus());
    expect(counter.get(0)).toEqual(new Array(counter.cpus).fill(0n));

    const ping = (cpu: number, count: number) =>
      run('taskset', [
        '-c',
        String(cpu),
        'ip',
        'netns',
        'exec',
        a.name,
        'ping',
        '-c',
        String(count),
        '-i',
        '0.05',
        '-W',
        '2',
        `${net}.2`,
      ]);
    ping(0, 3);
    const cpus = counter.cpus;
    if (cpus > 1) ping(1, 2);
    const values = counter.get(0)!;
    expect(values).toHaveLength(cpus);
    expect(values.reduce((x, y) => x + y, 0n)).toBe(cpus > 1 ? 5n : 3n);
    // The reply is handled in softirq on the CPU that sent the request.
    expect(values[0]).toBe(3n);
    if (cpus > 1) expect(values[1]).toBe(2n);
    const oracle = bpftoolDump(counter.id);
    expect(oracle[0]!.values!.map((v) => [...v])).toEqual(values.map((v) => le(v, 8)));
    // User space can reset the counters for every CPU at once.
    counter.set(0, new Array(cpus).fill(0n));
    expect(counter.get(0)).toEqual(new Array(cpus).fill(0n));
  });
}
