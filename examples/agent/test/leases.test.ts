import { afterEach, describe, expect, it, vi } from 'vitest';
import { Leases } from '../src/leases.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('Leases', () => {
  it('fires each expiration once, in time order, and not for deleted or moved leases', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const fired: string[] = [];
    const l = new Leases((ip) => fired.push(ip));
    l.set('a', 1_000_300);
    l.set('b', 1_000_100);
    l.set('c', 1_000_200);
    l.delete('c');
    l.set('d', 1_000_050);
    l.set('d', 1_000_400); // moved later
    vi.advanceTimersByTime(150);
    expect(fired).toEqual(['b']);
    vi.advanceTimersByTime(200);
    expect(fired).toEqual(['b', 'a']);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['b', 'a', 'd']);
    expect(l.size).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['b', 'a', 'd']);
  });

  it('fireExpired releases what is already due (a restart) and close stops everything', () => {
    vi.useFakeTimers({ now: 5_000 });
    const fired: string[] = [];
    const l = new Leases((ip) => fired.push(ip));
    l.set('old', 4_000);
    l.set('new', 9_000);
    l.fireExpired();
    expect(fired).toEqual(['old']);
    l.close();
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['old']);
  });
});
