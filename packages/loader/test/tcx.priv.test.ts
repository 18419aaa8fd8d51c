import { join } from 'node:path';
import { bpftoolJson, requireRoot, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';
import { type Attached, bpfDir, type LoadResult, withAgent, withPinDir } from './helpers/fixtures.js';
import { bpftoolNet, counters, sendUdp, sendUdpAsync, tcJson, vethPair } from './helpers/net.js';

let counterObj: string;

beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
});

interface NetShow {
  xdp: Array<{ devname: string; mode: string; id: number }>;
  tc: Array<{ devname: string; kind: string; name: string; id: number }>;
}
type Program = { id: number; name: string; tag: string };
interface Q {
  tcx: Record<'ingress' | 'egress', { revision: bigint; programs: Array<Program & { linkId: number }> }>;
  tc: Array<
    Program & {
      direction: string;
      handle: number;
      priority: number;
      filterName: string;
      directAction: boolean;
    }
  >;
  xdp: Array<Program & { mode: string }>;
}
describe('tcx', () => {
  it('counts and drops UDP to one port on a veth, then update() passes traffic with no gap', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        await withAgent(a.name, async (agent) => {
          await agent.call('listenUdp', { port: 9000, address: pair.ipA });
          await agent.call('listenUdp', { port: 9001, address: pair.ipA });
          const loaded = await agent.call<LoadResult>('load', {
            object: counterObj,
            constants: { port: 9000 },
            pinDir,
            pinMaps: true,
          });
          const att = await agent.call<Attached>('tcxAttach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: { ifname: pair.devA, direction: 'ingress' },
          });
          expect(att.info).toMatchObject({ kind: 'tcx', programId: loaded.programs.count_drop });

          sendUdp(b, pair.ipA, 9000, 20);
          sendUdp(b, pair.ipA, 9001, 5); // another port: not matched, delivered
          const c1 = counters(join(pinDir, 'counters'));
          expect(c1[0]).toBe(20n);
          expect(c1[1]).toBe(20n);
          expect(await agent.call('udpCount', { port: 9000 })).toBe(0);
          await expect.poll(() => agent.call('udpCount', { port: 9001 })).toBe(5);

          // Continuous traffic while the program is swapped: every datagram is seen by one program or the other.
          const total = 400;
          const sending = sendUdpAsync(b, pair.ipA, 9000, total, 0.002);
          await expect
            .poll(() => counters(join(pinDir, 'counters'))[1]! > 25n, { timeout: 10_000 })
            .toBe(true);
          const updated = await agent.call<{ programId: number; linkId: number }>('update', {
            link: att.link,
            coll: loaded.coll,
            program: 'count_pass',
          });
          expect(updated.programId).toBe(loaded.programs.count_pass);
          expect(updated.linkId).toBe(att.info.linkId);
          await sending;
          const c2 = counters(join(pinDir, 'counters'));
          const dropped = c2[1]! - 20n;
          const passed = c2[2]!;
          expect(c2[0]).toBe(20n + BigInt(total));
          expect(dropped + passed).toBe(BigInt(total));
          expect(dropped).toBeGreaterThan(0n);
          expect(passed).toBeGreaterThan(0n);
          await expect.poll(() => agent.call('udpCount', { port: 9000 })).toBe(Number(passed));

          await agent.call('detach', { link: att.link });
          sendUdp(b, pair.ipA, 9000, 3);
          expect(counters(join(pinDir, 'counters'))[0]).toBe(20n + BigInt(total));
        });
      }),
    );
  });

  it('query() reports tcx (anchors, revision), tc and XDP like bpftool net show / link show', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        await withAgent(a.name, async (agent) => {
          const loaded = await agent.call<LoadResult>('load', { object: counterObj, pinDir });
          const first = await agent.call<Attached>('tcxAttach', {
            coll: loaded.coll,
            program: 'count_pass',
            options: { ifname: pair.devA, direction: 'ingress' },
          });
          const q1 = await agent.call<Q>('query', { ifname: pair.devA });
          // A stale revision is refused; the current one is accepted.
          await expect(
            agent.call('tcxAttach', {
              coll: loaded.coll,
              program: 'count_drop',
              options: {
                ifname: pair.devA,
                direction: 'ingress',
                anchor: { kind: 'head' },
                expectedRevision: q1.tcx.ingress.revision - 1n,
              },
            }),
          ).rejects.toMatchObject({ code: 'Stale' });
          await agent.call<Attached>('tcxAttach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: {
              ifname: pair.devA,
              direction: 'ingress',
              anchor: { kind: 'head' },
              expectedRevision: q1.tcx.ingress.revision,
            },
          });
          await agent.call('tcAttach', {
            coll: loaded.coll,
            program: 'count_pass',
            options: { ifname: pair.devA, direction: 'egress', handle: 3, priority: 2 },
          });
          await agent.call('xdpAttach', {
            coll: loaded.coll,
            program: 'xdp_count',
            options: { ifname: pair.devA, mode: 'generic' },
          });
          const q = await agent.call<Q>('query', { ifname: pair.devA });
          expect(q.tcx.ingress.programs.map((p) => p.name)).toEqual(['count_drop', 'count_pass']);
          expect(q.tcx.ingress.programs[1]!.linkId).toBe(first.info.linkId);
          expect(q.tcx.ingress.revision).toBe(q1.tcx.ingress.revision + 1n);
          expect(q.tcx.egress.programs).toEqual([]);

          // Oracles: bpftool 7.1 lists legacy tc and XDP per device, and tcx only as links (type 11).
          const net = (bpftoolNet(a, pair.devA) as NetShow[])[0]!;
          expect(net.tc.map((e) => ({ kind: e.kind, id: e.id, name: e.name }))).toEqual(
            q.tc.map((f) => ({ kind: `clsact/${f.direction}`, id: f.id, name: f.filterName })),
          );
          expect(q.tc[0]).toMatchObject({ name: 'count_pass', handle: 3, priority: 2, directAction: true });
          expect(net.xdp.map((e) => ({ mode: e.mode, id: e.id }))).toEqual(
            q.xdp.map((x) => ({ mode: x.mode, id: x.id })),
          );
          const links = bpftoolJson<Array<{ id: number; type: number | string; prog_id: number }>>([
            'link',
            'show',
          ]);
          for (const p of q.tcx.ingress.programs) {
            expect(links.find((l) => l.id === p.linkId)).toMatchObject({ type: 11, prog_id: p.id });
          }
          const tags = bpftoolJson<Array<{ id: number; tag: string }>>(['prog', 'show']);
          for (const p of [...q.tcx.ingress.programs, ...q.tc, ...q.xdp]) {
            expect(tags.find((t) => t.id === p.id)?.tag).toBe(p.tag);
          }
        });
        // The agent exited: its links closed and detached; the legacy filter (not fd-owned) stays until removed.
        const after = (bpftoolNet(a, pair.devA) as NetShow[])[0]!;
        expect(after.xdp).toEqual([]);
        expect(after.tc).toHaveLength(1);
      }),
    );
  });

  it('a pinned link survives its process and is reopened and detached by a second one', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        const linkPath = join(pinDir, 'link');
        const first = await withAgent(a.name, async (agent) => {
          const loaded = await agent.call<LoadResult>('load', {
            object: counterObj,
            constants: { port: 7000 },
            pinDir,
            pinMaps: true,
          });
          const att = await agent.call<Attached>('tcxAttach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: { ifname: pair.devA, direction: 'ingress' },
          });
          await agent.call('pin', { link: att.link, path: linkPath });
          return att.info;
        });
        // The first process is gone; the pinned link still filters.
        sendUdp(b, pair.ipA, 7000, 4);
        expect(counters(join(pinDir, 'counters'))[1]).toBe(4n);
        await withAgent(a.name, async (agent) => {
          const reopened = await agent.call<Attached>('openPinned', { path: linkPath });
          expect(reopened.info).toMatchObject({
            kind: 'tcx',
            linkId: first.linkId,
            programId: first.programId,
          });
          await agent.call('detach', { link: reopened.link });
        });
        sendUdp(b, pair.ipA, 7000, 4);
        expect(counters(join(pinDir, 'counters'))[1]).toBe(4n);
        expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'ingress'])).toEqual([]);
      }),
    );
  });
});
