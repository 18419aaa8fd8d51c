import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore, hostLocalOwner } from '../src/file-store.js';
import { HostScope } from '../src/index.js';
import { expectCode } from './helpers.js';

const WORKER = fileURLToPath(new URL('./fixtures/worker.ts', import.meta.url));
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-ipam-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('FileStore on-disk format (host-local layout)', () => {
  it('writes one file per IP with the owner, last_reserved_ip.<range>, and a lock file', () => {
    const store = new FileStore(dir);
    const ipam = new HostScope({ v4: ['10.244.0.0/24'], v6: ['fd00::/120'], store, strategy: 'contiguous' });
    const owner = hostLocalOwner('c0ffee', 'eth0');
    expect(owner).toBe('c0ffee\r\neth0');
    const { v4, v6 } = ipam.allocateNextDual(owner);
    expect([v4, v6]).toEqual(['10.244.0.1', 'fd00::1']);
    expect(readFileSync(join(dir, '10.244.0.1'), 'utf8')).toBe('c0ffee\r\neth0');
    expect(readFileSync(join(dir, 'fd00::1'), 'utf8')).toBe('c0ffee\r\neth0');
    expect(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.244.0.1');
    expect(store.lastReservedIp('1')).toBe('fd00::1');
    expect(existsSync(join(dir, 'lock'))).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([
      '10.244.0.1',
      'fd00::1',
      'last_reserved_ip.0',
      'last_reserved_ip.1',
      'lock',
    ]);
    ipam.releaseOwner(owner);
    expect(readdirSync(dir).sort()).toEqual(['last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    store.close();
  });

  it('migrates existing host-local state: files written by host-local are allocated with their owners', () => {
    writeFileSync(join(dir, '10.1.0.5'), 'abc\r\neth0');
    writeFileSync(join(dir, '10.1.0.6'), 'old-style-id');
    writeFileSync(join(dir, 'lock'), '');
    const store = new FileStore(dir);
    const ipam = new HostScope({ v4: ['10.1.0.0/29'], store, strategy: 'contiguous' });
    expect(ipam.owner('10.1.0.5')).toBe('abc\r\neth0');
    expect(ipam.dump().allocations).toEqual({ '10.1.0.5': 'abc\r\neth0', '10.1.0.6': 'old-style-id' });
    expect(ipam.allocateNext(4, 'new')).toBe('10.1.0.1');
    expectCode(() => ipam.allocate('10.1.0.6', 'x'), 'AlreadyAllocated');
    store.close();
  });

  it('picks up changes made by another process without a generation bump (foreign writer)', () => {
    const store = new FileStore(dir);
    const ipam = new HostScope({ v4: ['10.1.0.0/30'], store, strategy: 'contiguous' });
    expect(ipam.free(4)).toBe(2);
    writeFileSync(join(dir, '10.1.0.1'), 'foreign'); // e.g. the host-local binary, same lock, no bump
    expect(ipam.allocateNext(4, 'me')).toBe('10.1.0.2'); // the link collided, the next slot was taken
    expectCode(() => ipam.allocateNext(4, 'me'), 'Full');
    rmSync(join(dir, '10.1.0.1')); // the foreign writer releases, again without a bump
    expect(ipam.allocateNext(4, 'me')).toBe('10.1.0.1'); // relisted before reporting Full
    store.close();
  });

  it('a transaction view is unusable after its transaction, and transactions do not nest', () => {
    const store = new FileStore(dir);
    const leaked = store.transact((tx) => tx);
    expectCode(() => leaked.reserve('10.0.0.1', 'x'), 'StoreFailure');
    expectCode(() => leaked.ips(), 'StoreFailure');
    expectCode(() => store.transact(() => store.transact(() => 1)), 'StoreFailure');
    expect(store.transact((tx) => tx.reserve('10.0.0.1', 'x'))).toBe(true); // the lock was released
    store.close();
  });

  it('removes temporary files left by dead processes and never counts them', () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dir, `.dp-tmp.${dead}.1`), 'ghost');
    writeFileSync(join(dir, `.dp-tmp.${process.pid}.999`), 'mine');
    const store = new FileStore(dir);
    const ipam = new HostScope({ v4: ['10.1.0.0/30'], store });
    expect(ipam.dump().allocations).toEqual({});
    expect(readdirSync(dir).filter((n) => n.startsWith('.dp-tmp.'))).toEqual([`.dp-tmp.${process.pid}.999`]);
    store.close();
  });

  it('fails with StoreFailure on an unusable directory, and after close', () => {
    writeFileSync(join(dir, 'file'), '');
    const e = expectCode(() => new FileStore(join(dir, 'file', 'sub')), 'StoreFailure');
    expect([e.errnoName, e.errno, e.code]).toEqual(['ENOTDIR', 20, 'InvalidArgument']);
    const store = new FileStore(join(dir, 'ok'));
    store.close();
    expectCode(() => store.transact(() => 1), 'StoreFailure');
  });

  it('a throwing transaction releases the lock', () => {
    const store = new FileStore(dir);
    expect(() =>
      store.transact(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    const other = new FileStore(dir);
    expect(other.transact((tx) => tx.reserve('10.0.0.1', 'x'))).toBe(true);
    expect(store.transact((tx) => tx.reserve('10.0.0.1', 'y'))).toBe(false);
    expect(store.transact((tx) => tx.owner('10.0.0.1'))).toBe('x');
    expectCode(() => store.transact((tx) => tx.reserve('../etc/passwd', 'x')), 'InvalidCidr');
    other.close();
    store.close();
  });
});

interface Child {
  id: number;
  proc: ChildProcess;
  lines: string[];
  done: Promise<number | null>;
}

function startWorker(args: string[], id: number): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<number | null>((resolve) =>
    proc.on('close', (code) => {
      if (buf !== '') lines.push(buf);
      if (code !== 0 && code !== null) console.error(`worker ${id}: ${err}`);
      resolve(code);
    }),
  );
  return { id, proc, lines, done };
}

describe('FileStore across processes', () => {
  it('8 processes × 500 allocations, one killed -9 mid-way: no duplicates, no unreachable leaks', async () => {
    // tmpfs when available: the same code paths (fsync included), without disk latency on a shared VM.
    if (existsSync('/dev/shm')) {
      rmSync(dir, { recursive: true, force: true });
      dir = mkdtempSync(join('/dev/shm', 'dp-ipam-'));
    }
    const cidr = '10.244.0.0/16';
    const N = 500;
    const victim = 3;
    const children = Array.from({ length: 8 }, (_, id) =>
      startWorker(['alloc', dir, cidr, String(id), String(N)], id),
    );
    // Kill the victim once it has reported some allocations (it is then somewhere inside its loop).
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (children[victim]!.lines.length >= 60) {
          children[victim]!.proc.kill('SIGKILL');
          clearInterval(t);
          resolve();
        }
      }, 5);
    });
    const codes = await Promise.all(children.map((c) => c.done));
    codes.forEach((code, id) => {
      if (id !== victim) expect(code).toBe(0);
    });
    expect(children[victim]!.proc.signalCode).toBe('SIGKILL');

    // No IP was handed out twice.
    const reported = new Map<string, string>();
    for (const c of children)
      for (const line of c.lines) {
        const [ip, owner] = line.split(' ') as [string, string];
        expect(reported.has(ip), `${ip} handed out twice`).toBe(false);
        reported.set(ip, owner);
      }
    const victimReported = children[victim]!.lines.length;
    expect(victimReported).toBeLessThan(N);
    expect(reported.size).toBe(7 * N + victimReported);

    // Every reported allocation is on disk with its owner; the only extra may be the victim's in-flight one.
    const store = new FileStore(dir);
    const ipam = new HostScope({ v4: [cidr], store });
    const onDisk = ipam.dump().allocations;
    for (const [ip, owner] of reported) expect(onDisk[ip]).toBe(owner);
    const extra = Object.entries(onDisk).filter(([ip]) => !reported.has(ip));
    expect(extra.length).toBeLessThanOrEqual(1);
    for (const [, owner] of extra) expect(owner).toBe(`w${victim}-${victimReported}`);

    // Everything is reachable through its owner: releasing by owner empties the store completely.
    for (const [ip, owner] of Object.entries(onDisk)) expect(ipam.release(ip, owner)).toBe(true);
    expect(ipam.free(4)).toBe(65534);
    expect(readdirSync(dir).sort()).toEqual(['last_reserved_ip.0', 'lock']);
    store.close();
  }, 120_000);
});
