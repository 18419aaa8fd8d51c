// netdev's subscription: netlink events in netdev's shapes, against `ip` in a throwaway namespace.
import { readdirSync } from 'node:fs';
import { Netns } from '@datapath/netlink';
import { requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { type NetdevEvent, type NetdevSubscription, subscribe } from '../src/index.js';

/** Reads events (without closing the subscription) until `stop` says so; closes it after 20 s. */
async function until(sub: NetdevSubscription, stop: (ev: NetdevEvent) => boolean): Promise<NetdevEvent[]> {
  const seen: NetdevEvent[] = [];
  const timer = setTimeout(() => sub.close(), 20_000);
  try {
    for (let r = await sub.next(); !r.done; r = await sub.next()) {
      seen.push(r.value);
      if (stop(r.value)) return seen;
    }
    throw new Error(`ended without the expected event after ${JSON.stringify(seen.slice(-5))}`);
  } finally {
    clearTimeout(timer);
  }
}

describe('subscribe (netdev)', () => {
  it('lists a namespace in netdev shapes, then reports changes made with ip', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      const ip = (...args: string[]) => run('ip', ['-n', t.name, ...args]);
      ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
      ip('addr', 'add', '10.244.50.1/24', 'dev', 'v0');
      using ns = Netns.open({ name: t.name });
      const fds = readdirSync('/proc/self/fd').length;
      await using sub = subscribe(['link', 'addr', 'route'], { netns: ns, list: true });
      const listing = await until(sub, (ev) => ev.kind === 'synced');
      expect(listing).toContainEqual(
        expect.objectContaining({
          kind: 'link',
          source: 'list',
          link: expect.objectContaining({ name: 'v0', kind: 'veth' }),
        }),
      );
      expect(listing).toContainEqual(
        expect.objectContaining({
          kind: 'addr',
          source: 'list',
          addr: expect.objectContaining({ cidr: '10.244.50.1/24', family: 4 }),
        }),
      );
      ip('link', 'set', 'v1', 'up');
      ip('link', 'set', 'v0', 'up');
      ip('route', 'add', '10.244.51.0/24', 'via', '10.244.50.2');
      ip('link', 'del', 'v0');
      const changes = await until(
        sub,
        (ev) => ev.kind === 'link' && ev.action === 'del' && ev.link.name === 'v0',
      );
      expect(changes).toContainEqual(
        expect.objectContaining({
          kind: 'route',
          action: 'new',
          source: 'notify',
          route: expect.objectContaining({
            dst: '10.244.51.0/24',
            via: '10.244.50.2',
            family: 4,
            table: 254,
          }),
        }),
      );
      expect(changes).toContainEqual(
        expect.objectContaining({
          kind: 'link',
          action: 'new',
          link: expect.objectContaining({ name: 'v0', up: true }),
        }),
      );
      expect(changes.at(-1)).toMatchObject({
        kind: 'link',
        action: 'del',
        source: 'notify',
        link: { name: 'v0' },
      });
      sub.close();
      expect(readdirSync('/proc/self/fd').length).toBe(fds);
    });
  });

  it('rejects bad input before any syscall', (ctx) => {
    requireRoot(ctx);
    const fds = readdirSync('/proc/self/fd').length;
    expect(() => subscribe([])).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => subscribe(['qdisc' as 'link'])).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => subscribe(['link'], null as never)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
  });
});
