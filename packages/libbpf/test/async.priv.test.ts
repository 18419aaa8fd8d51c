// The async tcx attach and detach against the real kernel: the link is created by a threadpool thread
// inside a test namespace (its own thread never enters it), bpftool sees it there, and the async close
// detaches it.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpftoolJson, requireRoot, run, withNetns } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpfError,
  linkCloseAsync,
  linkInfo,
  objectLoad,
  objectLoadAsync,
  progInfo,
  tcxAttachAsync,
} from '../src/index.js';
import { nativeAddon } from '../src/sys/libc.js';

const SOURCE = `#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int first(struct __sk_buff *s) { return TC_ACT_UNSPEC; }
char LICENSE[] SEC("license") = "GPL";
`;

let dir: string;
let elf: Uint8Array;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-async-'));
  writeFileSync(join(dir, 'p.c'), SOURCE);
  execFileSync(
    'clang',
    ['-O2', '-g', '--target=bpf', '-I/usr/include/x86_64-linux-gnu', '-c', 'p.c', '-o', 'p.o'],
    {
      cwd: dir,
    },
  );
  elf = readFileSync(join(dir, 'p.o'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('async attach (threadpool)', () => {
  it('attaches tcx inside a namespace from a pool thread and detaches with an async close', async (ctx) => {
    requireRoot(ctx);
    expect(nativeAddon?.bpfAsync).toBeTypeOf('function');
    await withNetns(async (ns) => {
      // An ifindex no other namespace here has: attaching from the wrong namespace would fail NotFound.
      const ifindex = 4242;
      run('ip', [
        '-n',
        ns.name,
        'link',
        'add',
        'dpx0',
        'index',
        String(ifindex),
        'type',
        'veth',
        'peer',
        'name',
        'dpx1',
      ]);
      expect(() => run('ip', ['link', 'show', 'dev', 'dpx0'])).toThrow();
      const self = readlinkSync('/proc/thread-self/ns/net');
      const nsFd = openSync(ns.path, 'r');
      const obj = objectLoad(elf);
      // bpftool 7.1 predates tcx in `net show`: its link listing is the independent oracle.
      const linkIds = () => bpftoolJson<{ id: number; prog_id: number }[]>(['link', 'show']).map((l) => l.id);
      try {
        const progFd = obj.programs.find((p) => p.name === 'first')!.fd;
        const link = await tcxAttachAsync(progFd, ifindex, 'ingress', { netnsFd: nsFd });
        expect(readlinkSync('/proc/thread-self/ns/net')).toBe(self);
        expect(linkInfo(link).progId).toBe(progInfo(progFd).id);

        const info = linkInfo(link);
        expect(info).toMatchObject({ ifindex });
        expect(linkIds()).toContain(info.id);
        // A bad anchor is refused before any system call, with the sync form's typed error.
        await expect(
          tcxAttachAsync(progFd, ifindex, 'sideways' as never, { netnsFd: nsFd }),
        ).rejects.toMatchObject({ name: 'BpfError', code: 'InvalidArgument' });
        // The kernel's refusal comes back typed: the same program twice in one chain.
        await expect(tcxAttachAsync(progFd, ifindex, 'ingress', { netnsFd: nsFd })).rejects.toMatchObject({
          code: 'AlreadyExists',
        });
        await linkCloseAsync(link);
        // The last reference closed: the link is detached and gone.
        for (let i = 0; i < 100 && linkIds().includes(info.id); i++)
          await new Promise((r) => setTimeout(r, 10));
        expect(linkIds()).not.toContain(info.id);
      } finally {
        obj.close();
        closeSync(nsFd);
      }
    });
  });
});

describe('async object load (threadpool)', () => {
  it('loads the same programs and maps as objectLoad, concurrently, with typed errors for bad input', async (ctx) => {
    requireRoot(ctx);
    const shape = (o: ReturnType<typeof objectLoad>) => ({
      programs: o.programs.map((p) => ({ name: p.name, type: p.type, tag: progInfo(p.fd).tag })),
      maps: o.maps.map(({ fd: _fd, ...m }) => m),
    });
    using sync = objectLoad(elf, { name: 'twin' });
    // Three at once: they take turns on the pool, each gets its own kernel objects.
    const loaded = await Promise.all([1, 2, 3].map(() => objectLoadAsync(elf, { name: 'twin' })));
    try {
      for (const o of loaded) expect(shape(o)).toEqual(shape(sync));
      const ids = loaded.map((o) => progInfo(o.programs[0]!.fd).id);
      expect(new Set([...ids, progInfo(sync.programs[0]!.fd).id]).size).toBe(4);
    } finally {
      for (const o of loaded) o.close();
    }
    // Bad input is refused before anything is queued, with the sync form's codes.
    await expect(objectLoadAsync(new Uint8Array(8))).rejects.toMatchObject({ code: 'InvalidArgument' });
    // Not an ELF object: the parse (on the threadpool) fails with the sync form's typed error.
    const syncErr = (() => {
      try {
        objectLoad(new Uint8Array(256));
      } catch (e) {
        return e as BpfError;
      }
    })();
    expect(syncErr).toBeInstanceOf(BpfError);
    await expect(objectLoadAsync(new Uint8Array(256))).rejects.toMatchObject({
      code: syncErr!.code,
      message: syncErr!.message,
    });
    await expect(objectLoadAsync(elf, { logSize: 1 })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(objectLoadAsync(elf, { autoload: { nope: true } })).rejects.toMatchObject({
      code: 'NotFound',
    });
  });
});
