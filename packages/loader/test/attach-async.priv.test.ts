// attachAsync (the tcx-or-tc upsert) against the real kernel, inside a namespace this thread never enters:
// a pinned link is updated in place by the next attach, a cancelled call makes nothing, prefer 'tc' falls
// back to a legacy filter, and detachAsync removes each kind (`bpftool` and `tc -j` as oracles).
import { mkdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import { bpftoolJson, ipJson, requireRoot, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { attachAsync, compile, load, openObject } from '../src/index.js';
import { bpfDir, withPinDir } from './helpers/fixtures.js';
import { tcJson, vethPair } from './helpers/net.js';

let counterObj: string;
beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
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
});
