// The pure parts of subscriptions: the listing/notification merge and argument checks.
import { describe, expect, it } from 'vitest';
import { Handle, type ObjectEvent, type Transport } from '../src/index.js';
import { Listing } from '../src/subscribe-events.js';

const addr = (
  action: 'new' | 'del',
  local: string,
  source: ObjectEvent['source'] = 'notify',
  flags = 0x80,
): ObjectEvent => ({
  kind: 'addr',
  action,
  source,
  addr: { family: 2, index: 2, prefixLen: 32, local, flags },
});

describe('Listing (listing + notifications merge)', () => {
  it('reports the listing, then only notifications that change what the consumer knows', () => {
    const l = new Listing('list');
    l.startKind('addr');
    l.addNotification(addr('new', '10.244.0.1')); // also in the dump below: a duplicate
    l.addDumped('addr', addr('new', '10.244.0.1', 'list'));
    l.addDumped('addr', addr('new', '10.244.0.2', 'list'));
    l.addNotification(addr('del', '10.244.0.9')); // never listed: the consumer never knew it
    l.addNotification(addr('new', '10.244.0.3')); // created after the dump passed it
    l.addNotification(addr('del', '10.244.0.2')); // deleted after it was listed
    l.addNotification(addr('new', '10.244.0.1', 'notify', 0x81)); // changed after it was listed
    const out = l.finish();
    expect(out.map((e) => (e.kind === 'addr' ? `${e.source} ${e.action} ${e.addr.local}` : e.kind))).toEqual([
      'list new 10.244.0.1',
      'list new 10.244.0.2',
      'synced',
      'notify new 10.244.0.3',
      'notify del 10.244.0.2',
      'notify new 10.244.0.1',
    ]);
    // Notifications still queued when the listing ended go through the same filter.
    expect(l.filter(addr('new', '10.244.0.3'))).toBe(false);
    expect(l.filter(addr('del', '10.244.0.2'))).toBe(false);
    expect(l.filter(addr('del', '10.244.0.3'))).toBe(true);
  });

  it('a restarted (interrupted) dump forgets what the kind returned before', () => {
    const l = new Listing('resync');
    l.startKind('addr');
    l.addDumped('addr', addr('new', '10.244.0.1', 'resync'));
    l.startKind('addr');
    l.addDumped('addr', addr('new', '10.244.0.2', 'resync'));
    expect(l.finish()).toEqual([addr('new', '10.244.0.2', 'resync'), { kind: 'synced', source: 'resync' }]);
  });

  it('a link notification that differs only in its change mask is a duplicate', () => {
    const l = new Listing('list');
    const link = (change: number, source: ObjectEvent['source']): ObjectEvent => ({
      kind: 'link',
      action: 'new',
      source,
      link: { family: 0, index: 3, name: 'v0', flags: 0x1003, change, mtu: 1500 },
    });
    l.addDumped('link', link(0, 'list'));
    l.addNotification(link(0xffff_ffff, 'notify'));
    expect(l.finish()).toHaveLength(2);
  });
});

describe('Handle.subscribe argument checks', () => {
  const fake: Transport = {
    portId: 1,
    send: () => {
      throw new Error('no syscall expected');
    },
    recv: () => {
      throw new Error('no syscall expected');
    },
    close: () => {},
  };

  it('rejects bad kinds and options as InvalidArgument, and a transport without a socket as NotSupported', () => {
    const h = Handle.fromTransport(fake);
    const bad = [
      () => h.subscribe([]),
      () => h.subscribe('link' as never),
      () => h.subscribe(['link', 'qdisc' as 'link']),
      () => h.subscribe(['link'], null as never),
      () => h.subscribe(['link'], { list: 'yes' as never }),
      () => h.subscribe(['link'], { signal: {} as AbortSignal }),
      () => h.subscribe(['link'], { receiveBufferSize: 0 }),
      () => h.subscribe(['link'], { highWaterMark: 1.5 }),
    ];
    for (const call of bad)
      expect(call).toThrow(expect.objectContaining({ code: 'InvalidArgument', op: 'subscribe' }));
    expect(() => h.subscribe(['route'])).toThrow(expect.objectContaining({ code: 'NotSupported' }));
  });
});
