// Regression tests for the IPAM defects of issue 17 (each failed before its fix) and the release cooldown.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore, hostLocalOwner } from '../src/file-store.js';
import {
  Bitmap,
  ClusterPool,
  HostScope,
  type HostScopeOptions,
  type IpamError,
  ManualClock,
  MemoryStore,
  PodCidrPool,
} from '../src/index.js';
import { expectCode } from './helpers.js';

const SRC = fileURLToPath(new URL('../src/file-store.ts', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/worker.ts', import.meta.url));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-ipam-h-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('FileStore refuses pseudo file systems (issue 17 #2: 100 % CPU forever under /proc)', () => {
  it('procfs and sysfs paths fail with NotSupported, in bounded time, and create nothing', () => {
    // In a child process with a timeout: before the fix the constructor never returned.
    const script = `
      import { FileStore } from ${JSON.stringify(SRC)};
      const out = [];
      for (const p of ['/proc/dp-ipam-test/x', '/proc/self', '/sys/fs/dp-ipam-test']) {
        try { new FileStore(p).close(); out.push('opened'); } catch (e) { out.push(e.code + ': ' + e.message); }
      }
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.error, 'the child hung (killed by the timeout)').toBeUndefined();
    const out = JSON.parse(r.stdout) as string[];
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/^NotSupported: .*\/proc\/dp-ipam-test\/x is on the proc pseudo file system/);
    expect(out[1]).toMatch(/^NotSupported: .*proc/);
    expect(out[2]).toMatch(/^NotSupported: .*sysfs/);
  });

  it('a real directory several levels deep is created; a file in the way is ENOTDIR', () => {
    const store = new FileStore(join(dir, 'a', 'b', 'c'));
    expect(store.transact((tx) => tx.ips())).toEqual([]);
    store.close();
    writeFileSync(join(dir, 'f'), '');
    expect(expectCode(() => new FileStore(join(dir, 'f', 'x')), 'StoreFailure').errnoName).toBe('ENOTDIR');
  });
});

describe('unreadable entries named like an IP (issue 17 #4: EISDIR broke ADD, DEL, GC)', () => {
  it('a directory and a symlink to one are skipped, kept taken and reported', () => {
    mkdirSync(join(dir, '10.0.0.2'));
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(dir, '10.0.0.3'));
    const store = new FileStore(dir, { sync: false });
    const ipam = new HostScope({ v4: ['10.0.0.0/29'], store, strategy: 'contiguous' });
    const got = [ipam.allocateNext(4, 'a'), ipam.allocateNext(4, 'b'), ipam.allocateNext(4, 'c')];
    expect(got).toEqual(['10.0.0.1', '10.0.0.4', '10.0.0.5']);
    expect(ipam.releaseOwner('b')).toEqual(['10.0.0.4']); // DEL walks every entry's owner
    const d = ipam.dump(); // GC / STATUS
    expect(d.allocations).toEqual({ '10.0.0.1': 'a', '10.0.0.5': 'c', '10.0.0.2': '', '10.0.0.3': '' });
    expect(d.problems.map((p) => p.entry).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(d.problems[0]!.reason).toMatch(/^EISDIR/);
    expect(ipam.release('10.0.0.2')).toBe(true); // no error; the entry stays: it is not ours to delete
    expect(readdirSync(dir)).toContain('10.0.0.2');
    const check = store.check();
    expect(check.ips.sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5']);
    expect(check.problems.map((p) => p.entry).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    store.close();
  });
});

describe('host-local semantics: one address per owner and a safe rollback (issue 17)', () => {
  it('onePerOwner: a second allocateNext for the owner is AlreadyAllocated and changes nothing', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'], onePerOwner: true });
    const ip = ipam.allocateNext(4, 'pod');
    const e = expectCode(() => ipam.allocateNext(4, 'pod'), 'AlreadyAllocated');
    expect(e.target).toBe(ip);
    expectCode(() => ipam.allocate('10.0.0.99', 'pod'), 'AlreadyAllocated');
    expect(ipam.allocateNext(6, 'pod')).toMatch(/^fd00::/); // one per family
    expect(Object.keys(ipam.dump().allocations)).toHaveLength(2);
  });

  it('allocateOrGet returns what the owner holds; rollback of a retried ADD never frees the live IP', () => {
    const store = new FileStore(dir, { sync: false });
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'], store });
    const pod = hostLocalOwner('c0ffee', 'eth0');
    const first = ipam.allocateOrGet('dual', pod);
    expect(first.created).toHaveLength(2);
    // The runtime retries ADD; setup fails with EEXIST (the pod is up) and the error path rolls back.
    const retry = ipam.allocateOrGet('dual', pod);
    expect([retry.v4, retry.v6]).toEqual([first.v4, first.v6]);
    expect(retry.created).toEqual([]);
    expect(ipam.rollback(retry)).toEqual([]);
    expect(ipam.owner(first.v4!)).toBe(pod);
    expect(ipam.owner(first.v6!)).toBe(pod);
    // A partly held owner: only the missing family is created, and only it is rolled back.
    ipam.release(first.v6!, pod);
    const partial = ipam.allocateOrGet('dual', pod);
    expect(partial.v4).toBe(first.v4);
    expect(partial.created).toEqual([partial.v6]);
    expect(ipam.rollback(partial)).toEqual([partial.v6]);
    expect(ipam.has(first.v4!)).toBe(true);
    // A lease whose address changed hands is not freed either.
    const other = ipam.allocateOrGet(4, 'pod-b');
    ipam.releaseOwner('pod-b');
    ipam.allocate(other.v4!, 'pod-c');
    expect(ipam.rollback(other)).toEqual([]);
    expect(ipam.owner(other.v4!)).toBe('pod-c');
    store.close();
  });

  it('allocateOrGet is all or nothing', () => {
    const ipam = new HostScope({ v4: ['10.0.0.1/32'], v6: ['fd00::/120'] });
    ipam.allocateOrGet(4, 'a');
    expectCode(() => ipam.allocateOrGet('dual', 'b'), 'Full');
    expect(Object.keys(ipam.dump().allocations)).toEqual(['10.0.0.1']);
  });
});

describe('overlapping pod CIDRs count each address once (issue 17: 380 free for 254)', () => {
  for (const cidrs of [
    ['10.0.0.0/24', '10.0.0.0/25'],
    ['10.0.0.0/25', '10.0.0.0/24'],
  ]) {
    it(`${cidrs.join(' + ')}: 254 free, 254 distinct addresses, then Full`, () => {
      const ipam = new HostScope({ v4: cidrs });
      expect(ipam.free(4)).toBe(254);
      const seen = new Set<string>();
      for (let i = 0; i < 254; i++) seen.add(ipam.allocateNext(4, `p${i}`));
      expect(seen.size).toBe(254);
      expect(ipam.free(4)).toBe(0);
      expectCode(() => ipam.allocateNext(4, 'x'), 'Full');
      expect(ipam.dump().status[0]).toMatch(/^254\/254 allocated/);
    });
  }

  it('a pool growing from a /25 to its /24 keeps the /25 addresses taken', () => {
    const pool = new PodCidrPool(['10.0.0.0/25'], { strategy: 'contiguous' });
    pool.allocate('10.0.0.1');
    pool.updatePodCidrs(['10.0.0.0/24']);
    expect(pool.free).toBe(253);
    expect(pool.allocateNext()).toBe('10.0.0.2');
    pool.release('10.0.0.1');
    expect(pool.used).toBe(1);
  });
});

describe('typed errors everywhere (issue 17: IPAM as specified)', () => {
  it('Bitmap.allocate of a taken offset throws AlreadyAllocated', () => {
    const b = new Bitmap(8);
    b.allocate(3);
    expectCode(() => b.allocate(3), 'AlreadyAllocated');
  });

  it('a family other than 4 or 6 is a Family error, not 0', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
    const bad = 5 as unknown as 4;
    expectCode(() => ipam.free(bad), 'Family');
    expectCode(() => ipam.cooling(bad), 'Family');
    expectCode(() => ipam.allocateNext(bad, 'x'), 'Family');
    expectCode(() => ipam.allocateOrGet(bad, 'x'), 'Family');
    expectCode(() => ipam.allocateNextWithExpiration(bad, 'x', 1000), 'Family');
    expect(ipam.free(6)).toBe(0); // a valid family that is not configured
    const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } });
    expectCode(() => pool.freeCidrs(bad), 'Family');
    expectCode(() => pool.hasFamily(bad), 'Family');
  });
});

/** Starts `flock -o <lock> sleep 30` (the lock is held by flock itself, not by sleep) and resolves once the lock is held; returns a stopper. */
async function holdLock(lock: string): Promise<() => void> {
  writeFileSync(lock, '', { flag: 'a' });
  const holder = spawn('flock', ['-x', '-o', lock, 'sleep', '30'], { stdio: 'ignore' });
  for (let i = 0; i < 500; i++) {
    if (spawnSync('flock', ['-n', lock, 'true']).status !== 0) return () => holder.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 10));
  }
  holder.kill('SIGKILL');
  throw new Error('the holder never took the lock');
}

describe('bounded lock waits (issue 17: 1.6 s with the event loop frozen)', () => {
  it('transact fails with Busy after lockTimeoutMs while another process holds the lock', async () => {
    const stop = await holdLock(join(dir, 'lock'));
    try {
      const store = new FileStore(dir, { lockTimeoutMs: 200 });
      const e = expectCode(() => store.transact((tx) => tx.ips()), 'Busy');
      expect(e.message).toContain('held by another process');
      store.close();
    } finally {
      stop();
    }
  }, 60_000);

  it('transactAsync waits on timers (the event loop runs), fails with Busy, then succeeds once free', async () => {
    const stop = await holdLock(join(dir, 'lock'));
    using store = new FileStore(dir, { lockTimeoutMs: 300 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const err = await store.transactAsync((tx) => tx.ips()).catch((e: unknown) => e as IpamError);
      expect((err as IpamError).code).toBe('Busy');
      expect(ticks).toBeGreaterThan(0); // a synchronous wait would have let no timer run
    } finally {
      clearInterval(timer);
      stop();
    }
    // The holder is gone: the lock is free again.
    let got: string[] | undefined;
    for (let i = 0; i < 50 && got === undefined; i++)
      got = await store.transactAsync((tx) => tx.ips()).catch(() => undefined);
    expect(got).toEqual([]);
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], store });
    const ip = await ipam.allocateNextAsync(4, 'pod');
    expect(await ipam.releaseOwnerAsync('pod')).toEqual([ip]);
  }, 60_000);

  it('FileStore supports using (Symbol.dispose closes it)', () => {
    let kept: FileStore | undefined;
    {
      using store = new FileStore(dir);
      kept = store;
      store.transact((tx) => tx.reserve('10.0.0.9', 'x'));
    }
    expect(expectCode(() => kept!.transact(() => 0), 'StoreFailure').message).toContain('closed');
  });
});

describe('release cooldown (issue 17)', () => {
  for (const kind of ['memory', 'file'] as const) {
    it(`${kind} store: free addresses first, Cooling (not Full) when only cooling ones are left, manual clock`, () => {
      const clock = new ManualClock(1_000);
      const store = kind === 'memory' ? new MemoryStore() : new FileStore(dir, { sync: false });
      const opts: HostScopeOptions = {
        v4: ['10.0.0.0/29'],
        store,
        clock,
        cooldownMs: 30_000,
        strategy: 'contiguous',
      };
      const ipam = new HostScope(opts);
      const a = ipam.allocateNext(4, 'a');
      expect(ipam.release(a, 'a')).toBe(true);
      expect(ipam.has(a)).toBe(false);
      expect(ipam.release(a, 'a')).toBe(false); // already released
      expect([ipam.free(4), ipam.cooling(4)]).toEqual([5, 1]);
      // Every free address is used before the cooling one.
      const rest = Array.from({ length: 5 }, (_, i) => ipam.allocateNext(4, `p${i}`));
      expect(rest).not.toContain(a);
      const e = expectCode(() => ipam.allocateNext(4, 'late'), 'Cooling');
      expect([e.cooling, e.availableAt]).toEqual([1, 31_000]);
      expectCode(() => ipam.allocate(a, 'late'), 'Cooling');
      expect(ipam.dump().cooling).toEqual({ [a]: 31_000 });
      expect(ipam.dump().status[0]).toBe('5/6 allocated, 1 cooling, from 10.0.0.0/29');
      // Persisted: another scope over the same store sees the cooldown.
      const other = new HostScope(opts);
      expect(other.cooling(4)).toBe(1);
      expectCode(() => other.allocateNext(4, 'late'), 'Cooling');
      clock.advance(29_999);
      expectCode(() => ipam.allocateNext(4, 'late'), 'Cooling');
      clock.advance(1);
      expect(other.allocateNext(4, 'late')).toBe(a);
      expect([ipam.cooling(4), ipam.owner(a)]).toEqual([0, 'late']);
      // A rollback does not cool: the address was never handed out.
      ipam.releaseOwner('p0');
      clock.advance(30_000);
      const lease = ipam.allocateOrGet(4, 'q');
      expect(ipam.rollback(lease)).toEqual(lease.created);
      expect(ipam.cooling(4)).toBe(0);
      store.close();
    });
  }

  it('survives kill -9 of processes allocating and releasing: consistent store, every cooldown kept', async () => {
    const shm = '/dev/shm';
    const base = mkdtempSync(join(existsSync(shm) ? shm : tmpdir(), 'dp-ipam-cool-'));
    try {
      const cidr = '10.244.7.0/24';
      const reported: { allocated: Map<string, string>; released: Set<string> } = {
        allocated: new Map(),
        released: new Set(),
      };
      // Three rounds; in each, two processes share the store and one of them is killed at a random point.
      for (let round = 0; round < 3; round++) {
        const kids = [0, 1].map((k) => {
          const id = `${round}${k}`;
          const proc = spawn(process.execPath, ['--import', 'tsx', WORKER, 'cool', base, cidr, id, '30'], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          const lines: string[] = [];
          let buf = '';
          proc.stdout!.on('data', (d: Buffer) => {
            buf += d.toString();
            const parts = buf.split('\n');
            buf = parts.pop()!;
            lines.push(...parts);
          });
          const done = new Promise<void>((r) => proc.on('close', () => r()));
          return { proc, lines, done };
        });
        const victim = kids[round % 2]!;
        const after = 2 + Math.floor(Math.random() * 30);
        await new Promise<void>((resolve) => {
          const t = setInterval(() => {
            if (victim.lines.length >= after || victim.proc.exitCode !== null) {
              victim.proc.kill('SIGKILL');
              clearInterval(t);
              resolve();
            }
          }, 1);
        });
        await Promise.all(kids.map((k) => k.done));
        for (const k of kids)
          for (const line of k.lines) {
            const [op, ip, owner] = line.split(' ') as [string, string, string?];
            if (op === 'A') reported.allocated.set(ip, owner!);
            else reported.released.add(ip);
          }
      }
      // Consistent: nothing but IP entries, the lock, last_reserved_ip and temp files of dead processes.
      const names = readdirSync(base);
      for (const n of names)
        expect(n).toMatch(/^(\d+\.\d+\.\d+\.\d+|lock|last_reserved_ip\.\d+|\.dp-tmp\.\d+\.\d+)$/);
      let inFlight = 0; // allocated by a victim that was killed before it could report it
      for (const n of names.filter((x) => /^\d/.test(x))) {
        const content = readFileSync(join(base, n), 'utf8');
        if (content.startsWith('datapath:cooldown\r\n')) continue;
        if (reported.allocated.has(n) && !reported.released.has(n))
          expect(content).toBe(reported.allocated.get(n));
        else {
          expect(content).toMatch(/^c\d+-\d+$/);
          inFlight++;
        }
      }
      expect(inFlight).toBeLessThanOrEqual(3);
      // Every reported release is still cooling; a clock one hour on frees them all.
      const clock = new ManualClock(Date.now());
      const store = new FileStore(base, { sync: false });
      const ipam = new HostScope({ v4: [cidr], store, clock, cooldownMs: 3_600_000 });
      const cooling = Object.keys(ipam.dump().cooling);
      for (const ip of reported.released) expect(cooling).toContain(ip);
      expect(readdirSync(base).filter((n) => n.startsWith('.dp-tmp.'))).toEqual([]); // cleaned by the listing
      const free = ipam.free(4);
      for (let i = 0; i < free; i++) expect(cooling).not.toContain(ipam.allocateNext(4, `n${i}`));
      expectCode(() => ipam.allocateNext(4, 'x'), cooling.length > 0 ? 'Cooling' : 'Full');
      clock.advance(3_600_001);
      if (cooling.length > 0) expect(cooling).toContain(ipam.allocateNext(4, 'x'));
      store.close();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }, 120_000);
});
