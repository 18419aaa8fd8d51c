import { join } from 'node:path';
import { requireRoot, run, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';
import { type Attached, bpfDir, type LoadResult, withAgent, withPinDir } from './helpers/fixtures.js';
import { counters, sendUdp, sendUdpAsync, tcJson, vethPair } from './helpers/net.js';

let counterObj: string;
let foreignObj: string;

beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
  foreignObj = (await compile({ files: [join(bpfDir, 'foreign.bpf.c')] })).path;
});

interface Filter {
  kind: string;
  options?: { handle?: string; bpf_name?: string; prog?: { id: number; name?: string } };
  pref?: number;
}

const bpfFilters = (ns: Parameters<typeof tcJson>[0], dev: string) =>
  (tcJson(ns, ['filter', 'show', 'dev', dev, 'ingress']) as Filter[]).filter(
    (f) => f.kind === 'bpf' && f.options?.handle,
  );

describe('legacy tc (clsact + cls_bpf)', () => {
  it('counts and drops, replaces atomically, and detaches only its own filter, keeping a foreign qdisc and filter', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        // Someone else's clsact qdisc and filter, there before us.
        run('tc', ['-n', a.name, 'qdisc', 'add', 'dev', pair.devA, 'clsact']);
        run('tc', [
          '-n',
          a.name,
          'filter',
          'add',
          'dev',
          pair.devA,
          'ingress',
          'pref',
          '9',
          'handle',
          '9',
          'bpf',
          'da',
          'obj',
          foreignObj,
          'sec',
          'tc',
        ]);
        const foreign = bpfFilters(a, pair.devA)[0]!;
        expect(foreign.options?.prog?.id).toBeGreaterThan(0);
        await withAgent(a.name, async (agent) => {
          await agent.call('listenUdp', { port: 9100, address: pair.ipA });
          const loaded = await agent.call<LoadResult>('load', {
            object: counterObj,
            constants: { port: 9100 },
            pinDir,
            pinMaps: true,
          });
          const att = await agent.call<Attached>('tcAttach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: { ifname: pair.devA, direction: 'ingress', handle: 1, priority: 1 },
          });
          expect(att.info).toMatchObject({
            kind: 'tc',
            programId: loaded.programs.count_drop,
            handle: 1,
            priority: 1,
          });
          // The slot is taken: a second attach there without replace is refused, and changes nothing.
          await expect(
            agent.call('tcAttach', {
              coll: loaded.coll,
              program: 'count_pass',
              options: { ifname: pair.devA, direction: 'ingress', handle: 1, priority: 1 },
            }),
          ).rejects.toMatchObject({ code: 'AlreadyExists' });

          sendUdp(b, pair.ipA, 9100, 10);
          expect(counters(join(pinDir, 'counters')).slice(0, 2)).toEqual([10n, 10n]);
          expect(await agent.call('udpCount', { port: 9100 })).toBe(0);

          const total = 300;
          const sending = sendUdpAsync(b, pair.ipA, 9100, total, 0.002);
          await expect
            .poll(() => counters(join(pinDir, 'counters'))[1]! > 20n, { timeout: 10_000 })
            .toBe(true);
          const updated = await agent.call<{ programId: number }>('update', {
            link: att.link,
            coll: loaded.coll,
            program: 'count_pass',
          });
          expect(updated.programId).toBe(loaded.programs.count_pass);
          await sending;
          const c = counters(join(pinDir, 'counters'));
          expect(c[0]).toBe(10n + BigInt(total));
          expect(c[1]! - 10n + c[2]!).toBe(BigInt(total));
          expect(c[2]).toBeGreaterThan(0n);
          await expect.poll(() => agent.call('udpCount', { port: 9100 })).toBe(Number(c[2]));

          expect(
            bpfFilters(a, pair.devA)
              .map((f) => f.pref)
              .sort(),
          ).toEqual([1, 9]);
          await agent.call('detach', { link: att.link });
        });
        const left = bpfFilters(a, pair.devA);
        expect(left).toHaveLength(1);
        expect(left[0]).toMatchObject({
          pref: 9,
          options: { handle: '0x9', prog: { id: foreign.options?.prog?.id } },
        });
        const qdiscs = tcJson(a, ['qdisc', 'show', 'dev', pair.devA]) as Array<{ kind: string }>;
        expect(qdiscs.map((q) => q.kind)).toContain('clsact');
      }),
    );
  });

  it('attach() upgrades tc → tcx (removing our old filter), upserts the pinned link, and downgrades tcx → tc', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName());
        const pinPath = join(pinDir, 'ingress');
        await withAgent(a.name, async (agent) => {
          const loaded = await agent.call<LoadResult>('load', {
            object: counterObj,
            constants: { port: 9200 },
            pinDir,
            pinMaps: true,
          });
          const legacy = await agent.call<Attached>('tcAttach', {
            coll: loaded.coll,
            program: 'count_pass',
            options: { ifname: pair.devA, direction: 'ingress' },
          });
          await agent.call('close', { link: legacy.link }); // an earlier run's filter, still attached
          expect(bpfFilters(a, pair.devA)).toHaveLength(1);

          const up = await agent.call<Attached>('attach', {
            coll: loaded.coll,
            program: 'count_pass',
            options: { ifname: pair.devA, direction: 'ingress', pinPath },
          });
          expect(up.info).toMatchObject({ kind: 'tcx', programId: loaded.programs.count_pass });
          expect(bpfFilters(a, pair.devA)).toHaveLength(0);

          const upsert = await agent.call<Attached>('attach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: { ifname: pair.devA, direction: 'ingress', pinPath },
          });
          expect(upsert.info).toMatchObject({
            kind: 'tcx',
            linkId: up.info.linkId,
            programId: loaded.programs.count_drop,
          });
          type Q = { tcx: { ingress: { programs: unknown[] } }; tc: Array<{ name: string }> };
          expect((await agent.call<Q>('query', { ifname: pair.devA })).tcx.ingress.programs).toHaveLength(1);
          sendUdp(b, pair.ipA, 9200, 5);
          expect(counters(join(pinDir, 'counters'))[1]).toBe(5n);

          const down = await agent.call<Attached>('attach', {
            coll: loaded.coll,
            program: 'count_drop',
            options: { ifname: pair.devA, direction: 'ingress', pinPath, prefer: 'tc' },
          });
          expect(down.info.kind).toBe('tc');
          const q = await agent.call<Q>('query', { ifname: pair.devA });
          expect(q.tcx.ingress.programs).toEqual([]);
          expect(q.tc.map((f) => f.name)).toEqual(['count_drop']);
          sendUdp(b, pair.ipA, 9200, 5);
          expect(counters(join(pinDir, 'counters'))[1]).toBe(10n);
          await agent.call('detach', { link: down.link });
        });
        expect(bpfFilters(a, pair.devA)).toHaveLength(0);
      }),
    );
  });

  it('rejects an unknown device with NotFound before touching anything', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(1, async (a) => {
        await withAgent(a.name, async (agent) => {
          const loaded = await agent.call<LoadResult>('load', { object: counterObj, pinDir });
          for (const op of ['tcAttach', 'tcxAttach', 'attach']) {
            await expect(
              agent.call(op, {
                coll: loaded.coll,
                program: 'count_drop',
                options: { ifname: 'nosuchdev0', direction: 'ingress' },
              }),
            ).rejects.toMatchObject({ code: 'NotFound' });
          }
          await expect(agent.call('query', { ifname: 'nosuchdev0' })).rejects.toMatchObject({
            code: 'NotFound',
          });
        });
      }),
    );
  });
});
