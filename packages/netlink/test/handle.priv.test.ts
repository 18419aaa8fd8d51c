import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Handle, lockFile, Netns, TcHandle } from '../src/index.js';

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
