import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HostScope, ManualClock, MemoryStore } from '../src/index.js';
import { expectCode, seeded } from './helpers.js';

describe('HostScope owners and exclusion', () => {
  it('records owners, releases by owner, and checks the owner on release', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'], random: seeded(1) });
    const a = ipam.allocateNext(4, 'pod-a');
    const { v4, v6 } = ipam.allocateNextDual('pod-b');
    ipam.allocate('10.0.0.1', 'router');
    expect(ipam.owner(a)).toBe('pod-a');
    expect(ipam.owner(v6)).toBe('pod-b');
    expectCode(() => ipam.release(a, 'pod-b'), 'Mismatch');
    expect(ipam.has(a)).toBe(true);
    expect(ipam.releaseOwner('pod-b').sort()).toEqual([v4, v6].sort());
    expect(ipam.has(v4)).toBe(false);
    expect(ipam.release(a, 'pod-a')).toBe(true);
    expect(ipam.release(a)).toBe(false);
    expect(ipam.dump().allocations).toEqual({ '10.0.0.1': 'router' });
  });

  it('dump reports real capacity (no uncapped IPv6 count)', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/64'] });
    ipam.allocate('fd00::5', 'x');
    const d = ipam.dump();
    expect(d.status).toEqual(['0/254 allocated from 10.0.0.0/24', '1/65534 allocated from fd00::/64']);
    expect(d.cidrs.map((c) => c.cidr)).toEqual(['10.0.0.0/24', 'fd00::/64']);
    expect(ipam.free(6)).toBe(65533);
    expect(ipam.free(4)).toBe(254);
  });

  it('excluded IPs: allocate fails, allocateNext skips them and keeps them taken', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/29'], strategy: 'contiguous' });
    ipam.exclude('10.0.0.1', 'gateway');
    expect(ipam.isExcluded('10.0.0.1')).toBe(true);
    expect(expectCode(() => ipam.allocate('10.0.0.1', 'pod'), 'Excluded').message).toContain('gateway');
    expect(ipam.allocateNext(4, 'pod')).toBe('10.0.0.2');
    expect(ipam.owner('10.0.0.1')).toBe('pod (excluded)');
    const rest = Array.from({ length: 4 }, () => ipam.allocateNext(4, 'p'));
    expect(rest).not.toContain('10.0.0.1');
    expectCode(() => ipam.allocateNext(4, 'p'), 'Full');
  });

  it('family errors and bad input', () => {
    const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
    expectCode(() => ipam.allocateNext(6, 'x'), 'Family');
    expectCode(() => ipam.allocate('fd00::1', 'x'), 'Family');
    expectCode(() => ipam.allocateNextDual('x'), 'Family');
    expectCode(() => ipam.allocate('nope', 'x'), 'InvalidCidr');
    expectCode(() => new HostScope({}), 'InvalidCidr');
    expectCode(() => new HostScope({ v4: ['fd00::/64'] }), 'Family');
    expectCode(() => new HostScope({ v6: ['10.0.0.0/8'] }), 'Family');
    expect(ipam.dump().allocations).toEqual({});
  });

  it('dual-stack allocation rolls back IPv6 when IPv4 is full', () => {
    const ipam = new HostScope({ v4: ['10.0.0.1/32'], v6: ['fd00::/120'] });
    ipam.allocateNextDual('a');
    expectCode(() => ipam.allocateNextDual('b'), 'Full');
    expect(ipam.free(6)).toBe(253);
  });
});

describe('HostScope expiration (virtual time)', () => {
  it('releases unless stopped with the right token', () => {
    const clock = new ManualClock();
    const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'], clock });
    const kept = ipam.allocateNextWithExpiration('dual', 'cni-1', 10_000);
    const lost = ipam.allocateNextWithExpiration(4, 'cni-2', 10_000);
    expect(kept.v4).toBeDefined();
    expect(kept.v6).toBeDefined();
    expectCode(() => ipam.stopExpiration(kept.v4!, lost.token), 'TokenMismatch');
    ipam.stopExpiration(kept.v4!, kept.token);
    ipam.stopExpiration(kept.v6!, kept.token);
    expectCode(() => ipam.stopExpiration(kept.v4!, kept.token), 'NoTimer');
    clock.advance(9_999);
    expect(ipam.has(lost.v4!)).toBe(true);
    clock.advance(1);
    expect(ipam.has(lost.v4!)).toBe(false);
    expect(ipam.has(kept.v4!)).toBe(true);
    expect(clock.timers).toBe(0);
  });

  it('refuses a second timer; release clears the timer; a stale timer never frees a reallocated IP', () => {
    const clock = new ManualClock();
    const ipam = new HostScope({ v4: ['10.0.0.1/32'], clock });
    const { v4, token } = ipam.allocateNextWithExpiration(4, 'old', 1000);
    expectCode(() => ipam.startExpiration(v4!, 5), 'TimerExists');
    ipam.release(v4!);
    expectCode(() => ipam.stopExpiration(v4!, token), 'NoTimer');
    ipam.allocate(v4!, 'new');
    clock.advance(5000);
    expect(ipam.owner(v4!)).toBe('new');
    const t2 = ipam.startExpiration(v4!, 100);
    expect(typeof t2).toBe('string');
    clock.advance(100);
    expect(ipam.has(v4!)).toBe(false);
  });

  it('reports a failed expiry release to onExpirationError', () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    let fail = false;
    const store = new MemoryStore();
    const flaky = {
      transact: <T>(fn: Parameters<MemoryStore['transact']>[0]) => {
        if (fail) throw new Error('disk on fire');
        return store.transact(fn) as T;
      },
      close: () => {},
    };
    const ipam = new HostScope({
      v4: ['10.0.0.0/24'],
      clock,
      store: flaky,
      onExpirationError: (e) => errors.push(e),
    });
    ipam.allocateNextWithExpiration(4, 'x', 10);
    fail = true;
    clock.advance(10);
    expect(errors).toHaveLength(1);
  });
});

describe('HostScope with a shared MemoryStore', () => {
  it('two scopes over one store never collide and see each other’s releases', () => {
    const store = new MemoryStore();
    const a = new HostScope({ v4: ['10.0.0.0/28'], store, random: seeded(2) });
    const b = new HostScope({ v4: ['10.0.0.0/28'], store, random: seeded(2) });
    const got = new Set<string>();
    for (let i = 0; i < 7; i++) {
      got.add(a.allocateNext(4, `a${i}`));
      got.add(b.allocateNext(4, `b${i}`));
    }
    expect(got.size).toBe(14);
    expectCode(() => a.allocateNext(4, 'x'), 'Full');
    expect(b.owner('10.0.0.1')).toMatch(/^[ab]\d$/);
    const victim = [...got][0]!;
    const owner = a.owner(victim)!;
    b.release(victim);
    expect(a.allocateNext(4, 'again')).toBe(victim);
    expect(b.owner(victim)).toBe('again');
    expect(a.releaseOwner(owner)).toEqual([]);
    expect(Object.keys(b.dump().allocations)).toHaveLength(14);
    expect(store.lastReservedIp('0')).toBe(victim);
  });
});

describe('HostScope properties', () => {
  it('scopes sharing a store never hold the same IP and account exactly', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 2 }),
            fc.constantFrom('alloc', 'release', 'releaseOwner'),
            fc.nat(),
          ),
          { maxLength: 150 },
        ),
        fc.integer(),
        (ops, seed) => {
          const store = new MemoryStore();
          const scopes = [0, 1, 2].map(
            (i) => new HostScope({ v4: ['10.0.0.0/28'], store, random: seeded(seed + i) }),
          );
          const held = new Map<string, string>(); // ip → owner, the model
          for (const [who, op, n] of ops) {
            const ipam = scopes[who]!;
            if (op === 'alloc') {
              const owner = `o${n % 5}`;
              if (held.size === 14) expectCode(() => ipam.allocateNext(4, owner), 'Full');
              else {
                const ip = ipam.allocateNext(4, owner);
                expect(held.has(ip)).toBe(false);
                held.set(ip, owner);
              }
            } else if (op === 'release') {
              const ips = [...held.keys()];
              if (ips.length === 0) continue;
              const ip = ips[n % ips.length]!;
              expect(ipam.release(ip, held.get(ip))).toBe(true);
              held.delete(ip);
            } else {
              const owner = `o${n % 5}`;
              const want = [...held].filter(([, o]) => o === owner).map(([ip]) => ip);
              expect(ipam.releaseOwner(owner).sort()).toEqual(want.sort());
              for (const ip of want) held.delete(ip);
            }
            expect(ipam.free(4)).toBe(14 - held.size);
          }
          expect(scopes[0]!.dump().allocations).toEqual(Object.fromEntries(held));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('HostScope IP spelling', () => {
  it('canonicalises IPv6 text, so one address has one owner entry and one store file name', () => {
    const store = new MemoryStore();
    const ipam = new HostScope({ v6: ['fd00::/120'], store });
    ipam.allocate('fd00:0:0:0::0005', 'a');
    expect(ipam.owner('fd00::5')).toBe('a');
    expectCode(() => ipam.allocate('FD00::5', 'b'), 'AlreadyAllocated');
    expect(store.transact((tx) => tx.ips())).toEqual(['fd00::5']);
    ipam.exclude('fd00:0::7', 'gw');
    expect(ipam.isExcluded('fd00::7')).toBe(true);
    expect(ipam.release('fd00:0:0::5', 'a')).toBe(true);
    expectCode(() => ipam.owner('nope'), 'InvalidCidr');
  });
});

describe('HostScope expiration with a shared store', () => {
  it('an expiring timer never frees an IP that another scope reallocated meanwhile', () => {
    const clock = new ManualClock();
    const store = new MemoryStore();
    const errors: unknown[] = [];
    const a = new HostScope({ v4: ['10.0.0.1/32'], store, clock, onExpirationError: (e) => errors.push(e) });
    const b = new HostScope({ v4: ['10.0.0.1/32'], store, clock });
    const { v4 } = a.allocateNextWithExpiration(4, 'cni-add-1', 1000);
    b.release(v4!); // e.g. a DEL handled by another process
    b.allocate(v4!, 'pod-2');
    clock.advance(1000);
    expect(b.owner(v4!)).toBe('pod-2');
    expect(errors).toEqual([]);
  });
});
