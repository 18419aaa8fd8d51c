import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireRoot, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { cgroupAttach, compile, load, openObject } from '../src/index.js';
import { bpfDir, type LoadResult, withAgent } from './helpers/fixtures.js';
import { counters, sendUdp, vethPair } from './helpers/net.js';

let counterObj: string;
let connect4Obj: string;

beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
  connect4Obj = (await compile({ files: [join(bpfDir, 'connect4.bpf.c')] })).path;
});

describe('XDP', () => {
  it('counts packets in generic mode on a veth, refuses a second program, and reports driver mode', async (ctx) => {
    requireRoot(ctx);
    const pinDir = join('/sys/fs/bpf', uniqueName());
    try {
      await withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        await withAgent(a.name, async (agent) => {
          const loaded = await agent.call<LoadResult>('load', {
            object: counterObj,
            constants: { port: 9300 },
            pinDir,
            pinMaps: true,
          });
          const att = await agent.call<{ link: string; info: Record<string, unknown> }>('xdpAttach', {
            coll: loaded.coll,
            program: 'xdp_count',
            options: { ifname: pair.devA, mode: 'generic' },
          });
          expect(att.info).toMatchObject({ kind: 'xdp', programId: loaded.programs.xdp_count });
          sendUdp(b, pair.ipA, 9300, 10);
          expect(counters(join(pinDir, 'counters'))[3]).toBe(10n);
          type Q = { xdp: Array<{ id: number; mode: string; name: string }> };
          expect((await agent.call<Q>('query', { ifname: pair.devA })).xdp).toEqual([
            expect.objectContaining({ id: loaded.programs.xdp_count, mode: 'generic', name: 'xdp_count' }),
          ]);
          await expect(
            agent.call('xdpAttach', {
              coll: loaded.coll,
              program: 'xdp_count',
              options: { ifname: pair.devA, mode: 'generic' },
            }),
          ).rejects.toMatchObject({ code: 'Busy' });
          await agent.call('detach', { link: att.link });
          sendUdp(b, pair.ipA, 9300, 10);
          expect(counters(join(pinDir, 'counters'))[3]).toBe(10n);

          const drv = await agent.call<{ link: string }>('xdpAttach', {
            coll: loaded.coll,
            program: 'xdp_count',
            options: { ifname: pair.devA, mode: 'driver' },
          });
          expect((await agent.call<Q>('query', { ifname: pair.devA })).xdp.map((x) => x.mode)).toEqual([
            'driver',
          ]);
          await agent.call('close', { link: drv.link });
          expect((await agent.call<Q>('query', { ifname: pair.devA })).xdp).toEqual([]);
        });
      });
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });
});

const CLIENT = `
const net = require('node:net');
const server = net.createServer((s) => s.end('reached 7002')).listen(7002, '127.0.0.1', () => {
  const c = net.connect(7001, '127.0.0.1');
  let data = '';
  c.on('data', (d) => (data += d));
  c.on('end', () => { console.log(data); server.close(); });
  c.on('error', (e) => { console.log(e.code); server.close(); });
});
`;

/** Runs the client in netns `ns`, inside cgroup `cg` when given. */
function connectFrom(ns: string, cg?: string): string {
  const nsenter = `exec nsenter --net=/run/netns/${ns} "$0" -e "$1"`;
  const script = cg === undefined ? nsenter : `echo $$ > ${cg}/cgroup.procs && ${nsenter}`;
  return execFileSync('sh', ['-c', script, process.execPath, CLIENT], { encoding: 'utf8' }).trim();
}

describe('cgroup socket hooks', () => {
  it('a connect4 program rewrites the destination for processes in its cgroup only', async (ctx) => {
    requireRoot(ctx);
    const cg = join('/sys/fs/cgroup/unified', uniqueName());
    mkdirSync(cg);
    try {
      await withNetns(async (ns) => {
        const spec = openObject(connect4Obj);
        spec.setConstant('from_ip', 0x7f000001);
        spec.setConstant('from_port', 7001);
        spec.setConstant('to_ip', 0x7f000001);
        spec.setConstant('to_port', 7002);
        using coll = load(spec);
        expect(connectFrom(ns.name, cg)).toBe('ECONNREFUSED');
        const link = cgroupAttach(coll.program('rewrite4'), { cgroupPath: cg, attachType: 'connect4' });
        try {
          expect(link.info()).toMatchObject({ kind: 'cgroup', attachType: 10 });
          expect(connectFrom(ns.name, cg)).toBe('reached 7002');
          expect(connectFrom(ns.name)).toBe('ECONNREFUSED'); // outside the cgroup: untouched
        } finally {
          link.detach();
        }
        expect(connectFrom(ns.name, cg)).toBe('ECONNREFUSED');
      });
    } finally {
      rmdirSync(cg);
    }
  });

  it('rejects a missing cgroup and a hook that does not fit the program', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(connect4Obj));
    expect(() =>
      cgroupAttach(coll.program('rewrite4'), {
        cgroupPath: '/sys/fs/cgroup/unified/nonexistent-dpt',
        attachType: 'connect4',
      }),
    ).toThrow(expect.objectContaining({ code: 'NotFound' }));
    expect(() =>
      cgroupAttach(coll.program('rewrite4'), {
        cgroupPath: '/sys/fs/cgroup/unified',
        attachType: 'bogus' as never,
      }),
    ).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});
