// attachAsync (the tcx-or-tc upsert) against the real kernel, inside a namespace this thread never enters:
// a pinned link is updated in place by the next attach, a cancelled call makes nothing, prefer 'tc' falls
// back to a legacy filter, and detachAsync removes each kind (`bpftool` and `tc -j` as oracles).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import { bpftoolJson, ipJson, requireRoot, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { attachAsync, cgroupAttachAsync, compile, load, openObject, xdpAttachAsync } from '../src/index.js';
import { bpfDir, withPinDir } from './helpers/fixtures.js';
import { tcJson, vethPair } from './helpers/net.js';

let counterObj: string;
let connect4Obj: string;
beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
  connect4Obj = (await compile({ files: [join(bpfDir, 'connect4.bpf.c')] })).path;
});

const myNetns = () => readlinkSync('/proc/thread-self/ns/net');
const linksOf = (progId: number) =>
  bpftoolJson<{ id: number; prog_id: number }[]>(['link', 'show']).filter((l) => l.prog_id === progId);

describe('attachAsync', () => {
  it('upserts a pinned tcx link, honours an aborted signal, falls back to tc on request', async (ctx) => {
    requireRoot(ctx);
    await withPinDir((pinDir) =>
      withNetns(2, async (a, b) => {
        const pair = vethPair(a, b, uniqueName(), 3);
        using ns = Netns.open({ name: a.name });
        const home = myNetns();
        const spec = openObject(counterObj);
        spec.setConstant('port', 9600);
        spec.maps.shared!.pinning = 'none';
        using coll = load(spec);
        const drop = coll.program('count_drop');
        const pass = coll.program('count_pass');
        mkdirSync(pinDir, { recursive: true });
        const pinPath = join(pinDir, 'in');

        // The device is given by name: resolved in the namespace, the link created from a pool thread.
        const first = await attachAsync(drop, {
          ifname: pair.devA,
          direction: 'ingress',
          netns: ns,
          pinPath,
        });
        expect(myNetns()).toBe(home);
        expect(first.info()).toMatchObject({ kind: 'tcx', programId: drop.info().id, pinnedAt: pinPath });
        const linkId = first.info().linkId;
        first.close(); // pinned: stays attached
        expect(linksOf(drop.info().id).map((l) => l.id)).toEqual([linkId]);

        // The next attach with the same pin updates that link (same id, new program), no second link.
        const second = await attachAsync(pass, {
          ifname: pair.devA,
          direction: 'ingress',
          netns: ns,
          pinPath,
        });
        expect(second.info()).toMatchObject({ kind: 'tcx', linkId, programId: pass.info().id });
        expect(linksOf(drop.info().id)).toEqual([]);

        // Cancelled before the kernel call: a typed error and nothing attached on egress.
        const ac = new AbortController();
        ac.abort();
        await expect(
          attachAsync(drop, { ifname: pair.devA, direction: 'egress', netns: ns, signal: ac.signal }),
        ).rejects.toMatchObject({ name: 'BpfError', code: 'Interrupted', reason: 'Aborted' });
        expect(linksOf(drop.info().id)).toEqual([]);

        // prefer 'tc': a legacy filter; detachAsync removes it.
        const tc = await attachAsync(drop, {
          ifindex: ipJson<{ ifindex: number }[]>(['link', 'show', pair.devA], a.name)[0]!.ifindex,
          direction: 'egress',
          netns: ns,
          prefer: 'tc',
        });
        expect(tc.kind).toBe('tc');
        expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'egress']).length).toBeGreaterThan(0);
        await tc.detachAsync();
        expect(tcJson(a, ['filter', 'show', 'dev', pair.devA, 'egress'])).toEqual([]);

        await second.detachAsync();
        expect(linksOf(pass.info().id)).toEqual([]);
        expect(myNetns()).toBe(home);
      }),
    );
  });

  it('xdpAttachAsync: a generic XDP link made inside the namespace, typed errors, detachAsync', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, async (a, b) => {
      const pair = vethPair(a, b, uniqueName(), 3);
      using ns = Netns.open({ name: a.name });
      const home = myNetns();
      const spec = openObject(counterObj);
      spec.setConstant('port', 9601);
      spec.maps.shared!.pinning = 'none';
      using coll = load(spec);
      const prog = coll.program('xdp_count');
      type XdpLink = { ifname: string; xdp?: { mode: number; prog?: { id: number } } };
      const xdpOf = () => ipJson<XdpLink[]>(['-d', 'link', 'show', pair.devA], a.name)[0]!.xdp;

      const link = await xdpAttachAsync(prog, { ifname: pair.devA, netns: ns, mode: 'generic' });
      expect(myNetns()).toBe(home);
      expect(link.info()).toMatchObject({ kind: 'xdp', programId: prog.info().id });
      expect(xdpOf()?.prog?.id).toBe(prog.info().id); // `ip` sees it on the device, in that namespace

      // A second program on the same hook: the kernel's Busy, typed, and the first stays.
      await expect(
        xdpAttachAsync(prog, { ifname: pair.devA, netns: ns, mode: 'generic' }),
      ).rejects.toMatchObject({
        name: 'BpfError',
        code: 'Busy',
      });
      // Unknown device, bad mode, aborted signal: typed errors before the kernel call.
      await expect(
        xdpAttachAsync(prog, { ifname: 'no-such-dev0', netns: ns, mode: 'generic' }),
      ).rejects.toMatchObject({ name: 'BpfError', code: 'NotFound' });
      await expect(
        xdpAttachAsync(prog, { ifname: pair.devA, netns: ns, mode: 'fast' as 'generic' }),
      ).rejects.toMatchObject({ name: 'BpfError', code: 'InvalidArgument' });
      const ac = new AbortController();
      ac.abort();
      await expect(
        xdpAttachAsync(prog, { ifname: pair.devA, netns: ns, mode: 'generic', signal: ac.signal }),
      ).rejects.toMatchObject({ name: 'BpfError', code: 'Interrupted', reason: 'Aborted' });
      expect(xdpOf()?.prog?.id).toBe(prog.info().id);

      await link.detachAsync();
      expect(xdpOf()).toBeUndefined();
      expect(linksOf(prog.info().id)).toEqual([]);
      expect(myNetns()).toBe(home);
    });
  });

  it('cgroupAttachAsync: a socket hook link on a cgroup, typed errors, detachAsync', async (ctx) => {
    requireRoot(ctx);
    const cg = join('/sys/fs/cgroup/unified', uniqueName());
    mkdirSync(cg);
    try {
      const spec = openObject(connect4Obj);
      using coll = load(spec);
      const prog = coll.program('rewrite4');
      type CgShow = { id: number; attach_type: string }[];
      // bpftool prints nothing at all for a cgroup without programs.
      const attached = () => {
        const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cg], { encoding: 'utf8' }).trim();
        return out === '' ? [] : (JSON.parse(out) as CgShow).map((e) => [e.id, e.attach_type]);
      };

      const link = await cgroupAttachAsync(prog, { cgroupPath: cg, attachType: 'connect4' });
      expect(link.info()).toMatchObject({ kind: 'cgroup', programId: prog.info().id });
      expect(attached()).toEqual([[prog.info().id, 'cgroup_inet4_connect']]);

      await expect(
        cgroupAttachAsync(prog, { cgroupPath: `${cg}-missing`, attachType: 'connect4' }),
      ).rejects.toMatchObject({ name: 'BpfError', code: 'NotFound' });
      const ac = new AbortController();
      ac.abort();
      await expect(
        cgroupAttachAsync(prog, { cgroupPath: cg, attachType: 'connect4', signal: ac.signal }),
      ).rejects.toMatchObject({ name: 'BpfError', code: 'Interrupted', reason: 'Aborted' });
      expect(attached()).toHaveLength(1);

      await link.detachAsync();
      expect(attached()).toEqual([]);
    } finally {
      rmdirSync(cg);
    }
  });
});
