import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { u32, u64 } from '@datapath/bpf-maps';
import { Netns } from '@datapath/netlink';
import { requireRoot, run, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { compile, load, openObject, query, tcAttach, tcxAttach } from '../src/index.js';
import { sendUdp, tcJson, vethPair } from './helpers/net.js';

const bpfDir = fileURLToPath(new URL('./bpf/', import.meta.url));
let counterObj: string;

beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
});

const myNetns = () => readlinkSync('/proc/thread-self/ns/net');

describe('attaching inside another network namespace from this process ({ netns: Netns })', () => {
  it('attaches, queries and detaches in the namespace and always returns the thread to its own', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, async (a, b) => {
      const pair = vethPair(a, b, uniqueName());
      using nsA = Netns.open({ name: a.name });
      const home = myNetns();
      const spec = openObject(counterObj);
      spec.setConstant('port', 9400);
      spec.maps.shared!.pinning = 'none';
      using coll = load(spec);
      const counters = coll.map('counters', { value: u64 }); // an array: no key codec needed
      expect(coll.map('counters', { key: u32, value: u64 }).kind).toBe('array');
      if (counters.kind !== 'array') throw new Error('counters is an array map');

      // The device is not visible from here without netns.
      expect(() =>
        tcxAttach(coll.program('count_drop'), { ifname: pair.devA, direction: 'ingress' }),
      ).toThrow(expect.objectContaining({ code: 'NotFound' }));
      using link = tcxAttach(coll.program('count_drop'), {
        ifname: pair.devA,
        direction: 'ingress',
        netns: nsA,
      });
      expect(myNetns()).toBe(home);
      const q = query({ ifname: pair.devA, netns: nsA });
      expect(q.tcx.ingress.programs.map((p) => p.linkId)).toEqual([link.info().linkId]);
      expect(myNetns()).toBe(home);
      sendUdp(b, pair.ipA, 9400, 6);
      expect(counters.get(1)).toBe(6n);

      const fdsBefore = readdirSync('/proc/self/fd').length;
      const tc = tcAttach(coll.program('count_pass'), {
        ifname: pair.devA,
        direction: 'egress',
        netns: nsA,
      });
      expect(tc.info()).toMatchObject({
        kind: 'tc',
        direction: 'egress',
        programId: coll.program('count_pass').info().id,
      });
      expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'egress']).length).toBeGreaterThan(0);
      tc.detach();
      expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'egress'])).toEqual([]);
      expect(myNetns()).toBe(home);
      expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore); // the link's namespace handle is closed

      // A tc link keeps its own namespace handle: it still detaches after the caller's handle is closed.
      const kept = (() => {
        using ns = Netns.open({ name: a.name });
        return tcAttach(coll.program('count_pass'), { ifname: pair.devA, direction: 'egress', netns: ns });
      })();
      expect(kept.netns).toBe(a.path);
      kept.detach();
      expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'egress'])).toEqual([]);

      // The deprecated path form still works.
      using byPath = tcxAttach(coll.program('count_pass'), {
        ifname: pair.devA,
        direction: 'egress',
        netns: a.path,
      });
      expect(query({ ifname: pair.devA, netns: nsA }).tcx.egress.programs).toHaveLength(1);
      byPath.detach();

      // A program of the wrong type is refused, and the clsact qdisc this attempt created is gone again.
      const spare = `${pair.devA.slice(0, -1)}x`;
      run('ip', ['-n', a.name, 'link', 'add', spare, 'type', 'veth', 'peer', 'name', `${spare}y`]);
      expect(() =>
        tcAttach(coll.program('xdp_count'), { ifname: spare, direction: 'ingress', netns: nsA }),
      ).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
      expect(
        (tcJson(a, ['qdisc', 'show', 'dev', spare]) as Array<{ kind: string }>).map((q) => q.kind),
      ).not.toContain('clsact');

      link.detach();
      expect(query({ ifname: pair.devA, netns: nsA }).tcx.ingress.programs).toEqual([]);
      // A missing namespace is a typed error, and leaves the thread where it was.
      expect(() => query({ ifname: pair.devA, netns: '/run/netns/dpt-no-such-ns' })).toThrow(
        expect.objectContaining({ code: 'NotFound' }),
      );
      expect(myNetns()).toBe(home);
    });
  });
});
