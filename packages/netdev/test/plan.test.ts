import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EndpointSpec, hostIfname, planEndpoint } from '../src/index.js';

const base: EndpointSpec = {
  containerId: 'c0ffee01',
  netns: '/run/netns/pod1',
  ifname: 'eth0',
  mtu: 1450,
  addresses: ['10.244.1.5'],
  gateway: '10.244.1.1',
  mode: 'cilium',
};

describe('planEndpoint', () => {
  it('plans the Cilium sequence: /32, gw/32 scope link then default, host route, rp_filter=0', () => {
    const p = planEndpoint(base);
    expect(p.host.name).toMatch(/^lxc[0-9a-f]{12}$/);
    expect(p.host.name).toBe(hostIfname('c0ffee01', 'eth0', 'cilium'));
    expect(p.host.addresses).toEqual([]);
    expect(p.host.routes).toEqual([{ dst: '10.244.1.5/32', family: 4, scope: 'link' }]);
    expect(p.host.sysctls).toEqual([{ key: `net/ipv4/conf/${p.host.name}/rp_filter`, value: '0' }]);
    expect(p.container).toMatchObject({ name: 'eth0', mtu: 1450 });
    expect(p.container.tmpName).toMatch(/^tmp[0-9a-f]{12}$/);
    expect(p.container.addresses).toEqual([
      { address: '10.244.1.5', prefixLen: 32, family: 4, nodad: false },
    ]);
    expect(p.container.routes).toEqual([
      { dst: '10.244.1.1/32', family: 4, scope: 'link' },
      { dst: 'default', family: 4, via: '10.244.1.1', scope: 'global' },
    ]);
    expect(p.host.mtu).toBe(1450);
  });

  it('plans the ptp sequence: prefix kept, kernel subnet route replaced, gateway on the host veth', () => {
    const p = planEndpoint({ ...base, mode: 'ptp', addresses: ['10.244.1.5/24'] });
    expect(p.host.name).toMatch(/^veth[0-9a-f]{11}$/);
    expect(p.host.addresses).toEqual([{ address: '10.244.1.1', prefixLen: 32, family: 4, nodad: false }]);
    expect(p.container.addresses[0]).toMatchObject({ address: '10.244.1.5', prefixLen: 24 });
    expect(p.container.routeDeletes).toEqual([{ dst: '10.244.1.0/24', family: 4 }]);
    expect(p.container.routes.map((r) => r.dst)).toEqual(['10.244.1.1/32', '10.244.1.0/24', 'default']);
  });

  it('handles dual stack with /128 NODAD and an IPv6 gateway route', () => {
    const p = planEndpoint({
      ...base,
      addresses: ['10.244.1.5', 'fd00::5'],
      gateway: ['10.244.1.1', 'fd00::1'],
      mtu: 1500,
    });
    expect(p.container.addresses).toContainEqual({
      address: 'fd00::5',
      prefixLen: 128,
      family: 6,
      nodad: true,
    });
    expect(p.container.routes).toContainEqual({ dst: 'fd00::1/128', family: 6, scope: 'link' });
    expect(p.container.routes).toContainEqual({ dst: 'default', family: 6, via: 'fd00::1', scope: 'global' });
    expect(p.container.sysctls).toEqual([{ key: 'net.ipv6.conf.all.disable_ipv6', value: '0' }]);
  });

  it('is deterministic, JSON-serialisable, with names ≤ 15 bytes and unicast locally administered MACs', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/),
        fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/),
        fc.constantFrom('cilium' as const, 'ptp' as const),
        (containerId, ifname, mode) => {
          const spec = { ...base, containerId, ifname, mode };
          const a = planEndpoint(spec);
          expect(planEndpoint(spec)).toEqual(a);
          expect(JSON.parse(JSON.stringify(a))).toEqual(a);
          for (const n of [a.host.name, a.container.tmpName, a.container.name]) {
            expect(Buffer.byteLength(n)).toBeLessThanOrEqual(15);
          }
          for (const mac of [a.host.mac, a.container.mac]) {
            const first = Number.parseInt(mac.slice(0, 2), 16);
            expect(first & 1).toBe(0);
            expect(first & 2).toBe(2);
          }
          expect(a.host.mac).not.toBe(a.container.mac);
        },
      ),
    );
  });

  it('sets the queue count of both ends only when asked, and refuses a bad one', () => {
    expect('queues' in planEndpoint(base).host).toBe(false);
    const p = planEndpoint({ ...base, queues: 1 });
    expect([p.host.queues, p.container.queues]).toEqual([1, 1]);
    for (const q of [0, 4097, 1.5, Number.NaN])
      expect(() => planEndpoint({ ...base, queues: q })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
  });

  it('plans no IPv6 link-local address on the pod end only when asked, and refuses a non-boolean', () => {
    expect('ipv6LinkLocal' in planEndpoint(base).container).toBe(false);
    expect('ipv6LinkLocal' in planEndpoint({ ...base, ipv6LinkLocal: true }).container).toBe(false);
    expect(planEndpoint({ ...base, ipv6LinkLocal: false }).container.ipv6LinkLocal).toBe(false);
    expect(() => planEndpoint({ ...base, ipv6LinkLocal: 'no' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
  });

  it('gives different containers and different ifnames different host names', () => {
    const names = new Set<string>();
    for (let i = 0; i < 2000; i++) names.add(planEndpoint({ ...base, containerId: `pod${i}` }).host.name);
    names.add(planEndpoint({ ...base, ifname: 'net1' }).host.name);
    expect(names.size).toBe(2001);
  });

  it.each([
    [{ containerId: '' }, /container id/],
    [{ containerId: '-bad' }, /container id/],
    [{ ifname: 'this-name-is-too-long' }, /ifname/],
    [{ ifname: 'eth 0' }, /ifname/],
    [{ ifname: 'a/b' }, /ifname/],
    [{ ifname: '..' }, /ifname/],
    [{ mtu: 67 }, /MTU/],
    [{ mtu: 70_000 }, /MTU/],
    [{ mtu: 1.5 }, /MTU/],
    [{ addresses: [] }, /address/],
    [{ addresses: ['10.244.1.300'] }, /address/],
    [{ addresses: ['10.244.1.5/33'] }, /prefix length/],
    [{ addresses: ['10.244.1.5', '10.244.1.6'] }, /at most one IPv4/],
    [{ addresses: ['fd00::5'] }, /no IPv6 gateway/],
    [{ gateway: 'nope' }, /gateway/],
    [{ gateway: '10.244.1.5' }, /equals the pod address/],
    [{ netns: 'relative/path' }, /absolute path/],
    [{ mode: 'bridge' }, /mode/],
    [{ routeMtu: 9000 }, /routeMtu/],
    [{ addresses: ['fd00::5'], gateway: 'fd00::1', mtu: 1000 }, /MTU/],
  ])('rejects %o before any syscall', (patch, message) => {
    expect(() => planEndpoint({ ...base, ...patch } as EndpointSpec)).toThrow(
      expect.objectContaining({
        code: 'InvalidArgument',
        op: 'planEndpoint',
        message: expect.stringMatching(message),
      }),
    );
  });
});
