import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Handle, Inet6AddrGenMode, lockFile, Netns, TcHandle } from '../src/index.js';

describe('Handle: qdiscs and namespace ids', () => {
  it('adds, lists and deletes a clsact qdisc as tc sees it', async (ctx) => {
    requireRoot(ctx);
    await withNetns((t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      h.linkNew({ name: 'v0', info: { kind: 'veth', peer: { name: 'v1' } } });
      const index = h.linkGet({ name: 'v0' }).index!;
      const clsact = { index, handle: TcHandle.CLSACT_HANDLE, parent: TcHandle.CLSACT, kind: 'clsact' };
      h.qdiscNew(clsact);
      const tc = JSON.parse(run('tc', ['-n', t.name, '-j', 'qdisc', 'show', 'dev', 'v0'])) as {
        kind: string;
      }[];
      expect(tc.map((q) => q.kind)).toContain('clsact');
      expect(h.qdiscDump()).toContainEqual(expect.objectContaining({ index, kind: 'clsact' }));
      expect(() => h.qdiscNew(clsact)).toThrow(expect.objectContaining({ code: 'AlreadyExists' }));
      h.qdiscDelete(clsact);
      expect(h.qdiscDump().filter((q) => q.kind === 'clsact')).toEqual([]);
    });
  });

  it('IPv6 address generation mode none set before the link comes up: no link-local address, nothing sent; ip reads it back', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      h.linkNew({ name: 'g0', info: { kind: 'veth', peer: { name: 'g1' } } });
      h.linkNew({ name: 'e0', info: { kind: 'veth', peer: { name: 'e1' } } });
      const g0 = h.linkGet({ name: 'g0' }).index!;
      expect(h.linkGet({ index: g0 }).inet6AddrGenMode).toBe(Inet6AddrGenMode.EUI64);
      // one datagram: the mode, then up (the kernel makes the link-local address when the link goes up)
      const up = { flags: 1, change: 1 };
      const replies = h.batch([
        { op: 'linkSet', link: { index: g0, inet6AddrGenMode: Inet6AddrGenMode.NONE } },
        { op: 'linkSet', link: { index: g0, ...up } },
        { op: 'linkSet', link: { name: 'g1', ...up } },
        { op: 'linkSet', link: { name: 'e0', ...up } },
        { op: 'linkSet', link: { name: 'e1', ...up } },
      ]);
      expect(replies.map((r) => r.error)).toEqual(replies.map(() => undefined));
      expect(h.linkGet({ index: g0 }).inet6AddrGenMode).toBe(Inet6AddrGenMode.NONE);
      expect(run('ip', ['-n', t.name, '-d', 'link', 'show', 'g0'])).toContain('addrgenmode none');
      // the other pair, left at the default, is the control: a link-local address and packets sent
      await new Promise((r) => setTimeout(r, 2500));
      const linkLocal = (dev: string) =>
        h
          .addrDump(10)
          .filter((a) => a.index === h.linkGet({ name: dev }).index && (a.address ?? '').startsWith('fe80:'));
      expect(linkLocal('g0')).toEqual([]);
      expect(linkLocal('e0')).toHaveLength(1);
      const rxPackets = (dev: string) =>
        (
          JSON.parse(run('ip', ['-n', t.name, '-s', '-j', 'link', 'show', dev])) as {
            stats64: { rx: { packets: number } };
          }[]
        )[0]!.stats64.rx.packets;
      expect(rxPackets('g1')).toBe(0); // what g0 sent arrives on g1
      expect(rxPackets('e1')).toBeGreaterThan(0);
    });
  });

  it('reports the id a namespace gives its veth peer namespace, -1 when none', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) => {
      using nsA = Netns.open({ name: a.name });
      using nsB = Netns.open({ name: b.name });
      using h = Handle.open(nsA);
      expect(h.nsidGet(nsB)).toBe(-1);
      h.linkNew({ name: 'va', info: { kind: 'veth', peer: { name: 'vb', netnsFd: nsB.fd } } });
      const id = h.nsidGet(nsB);
      expect(id).toBeGreaterThanOrEqual(0);
      expect(h.linkGet({ name: 'va' }).linkNetnsId).toBe(id);
      const listed = run('ip', ['-n', a.name, 'netns', 'list-id']);
      expect(listed).toContain(`nsid ${id}`);
    });
  });

  it('a closed handle refuses requests with BadFd', (ctx) => {
    requireRoot(ctx);
    const h = Handle.open();
    h.close();
    h.close(); // idempotent
    expect(() => h.linkDump()).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });
});

describe('lockFile', () => {
  it('holds an exclusive flock that another process sees, until released', (ctx) => {
    requireRoot(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'dpt-lock-'));
    try {
      const path = join(dir, 'lock');
      writeFileSync(path, '');
      const probe = () => spawnSync('flock', ['-n', path, 'true']).status;
      expect(probe()).toBe(0);
      {
        using lock = lockFile(path);
        expect(probe()).toBe(1);
        lock.release();
        expect(probe()).toBe(0);
      }
      using shared = lockFile(path, { shared: true });
      expect(spawnSync('flock', ['-n', '-s', path, 'true']).status).toBe(0);
      expect(probe()).toBe(1);
      shared.release();
      expect(() => lockFile(join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'NotFound' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
