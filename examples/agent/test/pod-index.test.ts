// PodIndex: the agent's pod lookups by endpoint id, address and attachment stay in step with adds, replaces
// and deletes; the free endpoint id skips used and reserved ids.
import { describe, expect, it } from 'vitest';
import { attachmentOwner, PodIndex } from '../src/pod-index.js';
import type { PodRecord } from '../src/state.js';

const pod = (name: string, lxcId: number, ip: string, extra: Partial<PodRecord> = {}): PodRecord =>
  ({ key: `x/${name}`, ns: 'x', name, labels: {}, ports: [], ip, lxcId, identity: 0, ...extra }) as PodRecord;

describe('PodIndex', () => {
  it('finds pods by endpoint id, IPv4 and IPv6 address and attachment, and forgets deleted ones', () => {
    const a = pod('a', 1, '10.244.0.2', {
      ip6: 'fd00::2',
      attachment: { containerId: 'c1', ifname: 'eth0', netnsPath: '/run/netns/c1' },
    });
    const b = pod('b', 2, '10.244.0.3');
    const idx = new PodIndex([a, b]);
    expect(idx.byLxc(1)).toBe(a);
    expect(idx.byIp('10.244.0.2')).toBe(a);
    expect(idx.byIp('fd00::2')).toBe(a);
    expect(idx.byAttachment('c1', 'eth0')).toBe(a);
    expect(idx.byAttachment('c1', 'eth1')).toBeUndefined();
    expect(idx.byIp('10.244.0.3')).toBe(b);
    idx.delete(a);
    expect([
      idx.byLxc(1),
      idx.byIp('10.244.0.2'),
      idx.byIp('fd00::2'),
      idx.byAttachment('c1', 'eth0'),
    ]).toEqual([undefined, undefined, undefined, undefined]);
    expect(idx.byLxc(2)).toBe(b);
  });

  it('a stale record deleted after its replacement leaves the new one', () => {
    const old = pod('a', 1, '10.244.0.2');
    const idx = new PodIndex([old]);
    const next = pod('c', 1, '10.244.0.2');
    idx.add(next);
    idx.delete(old);
    expect(idx.byLxc(1)).toBe(next);
    expect(idx.byIp('10.244.0.2')).toBe(next);
  });

  it('the free endpoint id is the lowest neither used nor reserved, undefined when none is left', () => {
    const idx = new PodIndex([pod('a', 1, '10.244.0.2'), pod('b', 3, '10.244.0.3')]);
    expect(idx.freeLxc(100, new Set())).toBe(2);
    expect(idx.freeLxc(100, new Set([2]))).toBe(4);
    expect(idx.freeLxc(4, new Set([2]))).toBeUndefined();
  });

  it('keys attachments as the IPAM owner', () => {
    expect(attachmentOwner('c1', 'eth0')).toBe('cni:c1:eth0');
  });
});
