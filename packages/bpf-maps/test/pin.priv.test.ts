import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { BpfError, createMap, type IterationStats, openPinned, u16, u32, u64 } from '../src/index.js';
import { bpftoolDump } from './helpers.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/child.ts', import.meta.url));
const run = promisify(execFile);

function pinPath(): string {
  return `/sys/fs/bpf/${uniqueName()}`;
}

function caught(fn: () => unknown): BpfError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BpfError) return e;
    throw e;
  }
  throw new Error('expected a BpfError');
}

describe('pinning and other processes', () => {
  it('pins, and a second process opens the pin and reads what this one wrote', async (ctx) => {
    requireRoot(ctx);
    const path = pinPath();
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 128, name: uniqueName() });
    try {
      map.setMany(Array.from({ length: 100 }, (_, i) => [i, BigInt(i) * 3n] as const));
      map.pin(path);
      expect(map.pinnedPath).toBe(path);
      expect(bpftoolDump(map.id)).toHaveLength(100);
      const { stdout } = await run(process.execPath, ['--import', 'tsx', child, 'read', path], { cwd: root });
      const got = new Map((JSON.parse(stdout) as [number, string][]).map(([k, v]) => [k, BigInt(v)]));
      expect(got.size).toBe(100);
      for (let i = 0; i < 100; i++) expect(got.get(i)).toBe(BigInt(i) * 3n);
      // Pinning again at a taken path is refused.
      expect(caught(() => map.pin(path)).code).toBe('AlreadyExists');
    } finally {
      map.unpin();
    }
    expect(existsSync(path)).toBe(false);
  });

  it('openPinned checks the map and lists every differing field; readOnly refuses writes', (ctx) => {
    requireRoot(ctx);
    const path = pinPath();
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 16, name: uniqueName() });
    map.pin(path);
    try {
      map.set(1, 11n);
      const fds = readdirSync('/proc/self/fd').length;
      const err = caught(() => openPinned(path, { type: 'lruHash', key: u16, value: u64, maxEntries: 32 }));
      expect(err.code).toBe('Incompatible');
      expect(err.message).toContain('type: map is hash, expected lruHash');
      expect(err.message).toContain('keySize: map has 4, codec has 2');
      expect(err.message).toContain('maxEntries: map has 16, expected 32');
      expect(err.message).not.toContain('valueSize');
      expect(readdirSync('/proc/self/fd').length).toBe(fds); // the fd opened for the check was closed
      using ro = openPinned(path, {
        type: 'hash',
        key: u32,
        value: u64,
        maxEntries: 16,
        flags: 0,
        readOnly: true,
      });
      expect(ro.id).toBe(map.id);
      expect(ro.get(1)).toBe(11n);
      expect(caught(() => ro.set(2, 2n)).code).toBe('PermissionDenied');
      expect(caught(() => openPinned(`${path}x`, { type: 'hash', key: u32, value: u64 })).code).toBe(
        'NotFound',
      );
    } finally {
      map.unpin();
    }
  });

  it('rejects pin paths outside bpffs or with .. before any syscall', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 4, name: uniqueName() });
    for (const bad of [
      '/tmp/x',
      'relative',
      `/sys/fs/bpf/../bpf/${uniqueName()}`,
      '/sys/fs/bpf/nodir/x',
      '',
    ]) {
      const err = caught(() => map.pin(bad));
      expect(err.code).toBe('InvalidArgument');
      expect(err.errno).toBeUndefined();
    }
    expect(caught(() => openPinned('/tmp/x', { type: 'hash', key: u32, value: u64 })).code).toBe(
      'InvalidArgument',
    );
    expect(existsSync('/tmp/x')).toBe(false);
  });

  it('iterates while another process deletes: no duplicates, no wrong values, survivors all seen', async (ctx) => {
    requireRoot(ctx);
    const N = 20_000;
    const path = pinPath();
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: N, name: uniqueName() });
    map.setMany(Array.from({ length: N }, (_, i) => [i, BigInt(i) * 2n] as const));
    map.pin(path);
    try {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, 'delete-odd', path, String(N)], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
      await new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()));
      const stats: IterationStats = { yielded: 0, skipped: 0, restarts: 0, aborted: false };
      const seen = new Set<number>();
      for (const [k, v] of map.entries({ stats })) {
        expect(seen.has(k)).toBe(false);
        seen.add(k);
        expect(v).toBe(BigInt(k) * 2n);
      }
      expect(await exited).toBe(0);
      expect(stats.aborted).toBe(false);
      expect(stats.yielded).toBe(seen.size);
      for (let k = 0; k < N; k += 2) expect(seen.has(k)).toBe(true);
      // The child really deleted during the walk: some odd keys were missed, and none remain now.
      expect(seen.size).toBeLessThan(N);
      expect(map.count()).toBe(N / 2);
      console.log(`walk under deletes: ${JSON.stringify(stats)}`);
    } finally {
      map.unpin();
    }
  });
});
