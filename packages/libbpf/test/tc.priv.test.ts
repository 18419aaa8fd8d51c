import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import { requireRoot, run, uniqueName, withNetns } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ifNameToIndex,
  type LoadedObject,
  linkClose,
  linkInfo,
  objectLoad,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcList,
  tcQuery,
  tcxAttach,
  tcxQuery,
} from '../src/index.js';

const SOURCE = `#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int first(struct __sk_buff *s) { return TC_ACT_UNSPEC; }
SEC("tc") int second(struct __sk_buff *s) { return TC_ACT_UNSPEC; }
char LICENSE[] SEC("license") = "GPL";
`;

let dir: string;
let elf: Uint8Array;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-tc-'));
  writeFileSync(join(dir, 'p.c'), SOURCE);
  execFileSync('clang', [
    '-O2',
    '-g',
    '--target=bpf',
    '-I/usr/include/x86_64-linux-gnu',
    '-c',
    join(dir, 'p.c'),
    '-o',
    join(dir, 'p.o'),
  ]);
  elf = readFileSync(join(dir, 'p.o'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fds(obj: LoadedObject): [number, number] {
  return [
    obj.programs.find((p) => p.name === 'first')!.fd,
    obj.programs.find((p) => p.name === 'second')!.fd,
  ];
}

describe('tc and tcx in a test namespace (Netns.run)', () => {
  it('creates clsact once, attaches, lists like tc, replaces, and detaches one filter', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (ns) => {
      const dev = uniqueName();
      run('ip', ['-n', ns.name, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`]);
      using obj = objectLoad(elf);
      const [first, second] = fds(obj);
      using handle = Netns.open({ path: ns.path });
      handle.run(() => {
        const ifindex = ifNameToIndex(dev)!;
        expect(tcHookCreate(ifindex, 'ingress')).toBe(true);
        expect(tcHookCreate(ifindex, 'ingress')).toBe(false);
        const id = { ifindex, direction: 'ingress' as const, handle: 7, priority: 3 };
        const firstId = tcAttach(id, first);
        expect(() => tcAttach(id, second)).toThrow(expect.objectContaining({ code: 'AlreadyExists' }));
        tcAttach({ ...id, handle: 8, priority: 4 }, second);
        expect(tcQuery(id)).toBe(firstId);
        const listed = tcList(ifindex, 'ingress');
        const oracle = JSON.parse(
          execFileSync('tc', ['-j', 'filter', 'show', 'dev', dev, 'ingress'], { encoding: 'utf8' }),
        ) as Array<{
          pref: number;
          options?: { handle?: string; prog?: { id: number } };
        }>;
        expect(listed.map((f) => [f.priority, f.handle, f.progId, f.directAction])).toEqual(
          oracle
            .filter((f) => f.options?.handle)
            .map((f) => [f.pref, Number(f.options!.handle), f.options!.prog!.id, true]),
        );
        const secondId = tcAttach(id, second, true);
        expect(tcQuery(id)).toBe(secondId);
        tcDetach(id);
        expect(tcQuery(id)).toBeUndefined();
        expect(tcList(ifindex, 'ingress').map((f) => f.handle)).toEqual([8]);
        expect(tcList(ifindex, 'egress')).toEqual([]);
      });
    });
  });

  it('tcx: anchors, link ids and revisions; a stale revision is refused with Stale', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (ns) => {
      const dev = uniqueName();
      run('ip', ['-n', ns.name, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`]);
      using obj = objectLoad(elf);
      const [first, second] = fds(obj);
      using handle = Netns.open({ path: ns.path });
      handle.run(() => {
        const ifindex = ifNameToIndex(dev)!;
        const empty = tcxQuery(ifindex, 'egress');
        expect(empty.entries).toEqual([]);
        const a = tcxAttach(first, ifindex, 'egress');
        const aInfo = linkInfo(a);
        expect(aInfo).toMatchObject({ type: 11, ifindex, attachType: 47 });
        const r1 = tcxQuery(ifindex, 'egress');
        expect(r1.revision).toBe(empty.revision + 1n);
        expect(() => tcxAttach(second, ifindex, 'egress', { expectedRevision: empty.revision })).toThrow(
          expect.objectContaining({ code: 'Stale' }),
        );
        const b = tcxAttach(second, ifindex, 'egress', {
          anchor: { kind: 'before', linkId: aInfo.id },
          expectedRevision: r1.revision,
        });
        const chain = tcxQuery(ifindex, 'egress');
        expect(chain.entries.map((e) => e.linkId)).toEqual([linkInfo(b).id, aInfo.id]);
        expect(chain.entries[1]!.progId).toBe(aInfo.progId);
        linkClose(b);
        linkClose(a);
        expect(tcxQuery(ifindex, 'egress').entries).toEqual([]);
      });
    });
  });
});
