import { Handle, Netns } from '@datapath/netlink';
import {
  inNetns,
  ipJson,
  processLifetime,
  requireRoot,
  run,
  type TestNetns,
  uniqueName,
  withNetns,
} from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import {
  addrAdd,
  addrDel,
  addrList,
  linkAdd,
  linkDel,
  linkGet,
  linkList,
  linkSetDown,
  linkSetMac,
  linkSetMtu,
  linkSetName,
  linkSetNs,
  linkSetUp,
  neighAdd,
  neighDel,
  neighList,
  routeAdd,
  routeDel,
  routeList,
  routeReplace,
  sysctlGet,
  sysctlSet,
  sysctlSetAsync,
} from '../src/index.js';

interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  operstate: string;
  link?: string;
  linkinfo?: { info_kind: string; info_data?: Record<string, unknown> };
}

/** Runs `fn` with a handle bound to a fresh namespace (loopback up). */
async function inTestNs(fn: (ns: TestNetns, handle: Handle, netns: Netns) => void): Promise<void> {
  await withNetns((t) => {
    using netns = Netns.open({ name: t.name });
    using handle = Handle.open(netns);
    fn(t, handle, netns);
  });
}

const ipLink = (ns: TestNetns, dev: string) => ipJson<IpLink[]>(['-d', 'link', 'show', dev], ns.name)[0]!;

describe('links', () => {
  it('linkAdd veth, then every linkSet* is what ip reports', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, handle) => {
      const a = uniqueName();
      linkAdd(
        {
          name: a,
          kind: 'veth',
          mtu: 1400,
          mac: '02:00:00:00:01:01',
          peer: { name: `${a}p`, mac: '02:00:00:00:01:02' },
        },
        { handle },
      );
      expect(ipLink(t, a)).toMatchObject({
        mtu: 1400,
        address: '02:00:00:00:01:01',
        linkinfo: { info_kind: 'veth' },
      });
      expect(ipLink(t, `${a}p`)).toMatchObject({ mtu: 1400, address: '02:00:00:00:01:02' });
      const got = linkGet(a, { handle });
      expect(got).toMatchObject({ name: a, kind: 'veth', mtu: 1400, mac: '02:00:00:00:01:01', up: false });
      expect(got.peerIndex).toBe(linkGet(`${a}p`, { handle }).index);
      expect(linkGet(got.index, { handle }).name).toBe(a);

      linkSetUp(a, { handle });
      expect(ipLink(t, a).flags).toContain('UP');
      linkSetDown(a, { handle });
      expect(ipLink(t, a).flags).not.toContain('UP');
      linkSetMtu(a, 9000, { handle });
      expect(ipLink(t, a).mtu).toBe(9000);
      linkSetMac(a, '02:00:00:00:01:99', { handle });
      expect(ipLink(t, a).address).toBe('02:00:00:00:01:99');
      linkSetName(a, `${a}r`, { handle });
      expect(ipLink(t, `${a}r`).address).toBe('02:00:00:00:01:99');
      expect(
        linkList({ handle })
          .map((l) => l.name)
          .sort(),
      ).toEqual([`${a}p`, `${a}r`, 'lo'].sort());

      linkDel(`${a}r`, { handle });
      expect(ipJson<IpLink[]>(['link', 'show'], t.name).map((l) => l.ifname)).toEqual(['lo']);
      expect(() => linkDel(`${a}r`, { handle })).toThrow(expect.objectContaining({ code: 'NotFound' }));
    });
  });

  it('creates a veth with the peer straight in another namespace, and moves links with linkSetNs', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) => {
      using nsA = Netns.open({ name: a.name });
      using nsB = Netns.open({ name: b.name });
      using handle = Handle.open(nsA);
      linkAdd({ name: 'va', kind: 'veth', peer: { name: 'vb', netns: nsB } }, { handle });
      expect(
        ipJson<IpLink[]>(['link', 'show'], a.name)
          .map((l) => l.ifname)
          .sort(),
      ).toEqual(['lo', 'va']);
      expect(
        ipJson<IpLink[]>(['link', 'show'], b.name)
          .map((l) => l.ifname)
          .sort(),
      ).toEqual(['lo', 'vb']);
      expect(linkGet('va', { handle }).linkNetnsId).toBe(handle.nsidGet(nsB));
      linkAdd({ name: 'vc', kind: 'veth', peer: { name: 'vd' } }, { handle });
      linkSetNs('vd', nsB, { handle });
      expect(
        ipJson<IpLink[]>(['link', 'show'], b.name)
          .map((l) => l.ifname)
          .sort(),
      ).toEqual(['lo', 'vb', 'vd']);
    });
  });

  it('creates bridges and vxlan devices; dummy is reported as not supported on this kernel', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, handle) => {
      linkAdd({ name: 'br0', kind: 'bridge', stp: false, up: true }, { handle });
      expect(ipLink(t, 'br0')).toMatchObject({
        linkinfo: { info_kind: 'bridge', info_data: { stp_state: 0 } },
      });
      expect(ipLink(t, 'br0').flags).toContain('UP');
      linkAdd(
        { name: 'vx0', kind: 'vxlan', vni: 42, port: 8472, local: '10.244.0.1', learning: false },
        { handle },
      );
      expect(ipLink(t, 'vx0').linkinfo).toMatchObject({
        info_kind: 'vxlan',
        info_data: { id: 42, port: 8472, local: '10.244.0.1', learning: false },
      });
      expect(linkGet('vx0', { handle }).info).toMatchObject({
        kind: 'vxlan',
        vni: 42,
        port: 8472,
        local: '10.244.0.1',
        learning: false,
      });
      linkAdd({ name: 'vx1', kind: 'vxlan', vni: 43, external: true }, { handle });
      expect(ipLink(t, 'vx1').linkinfo?.info_data).toMatchObject({ external: true });
      let dummyErr: unknown;
      try {
        linkAdd({ name: 'dm0', kind: 'dummy' }, { handle });
      } catch (e) {
        dummyErr = e;
      }
      // Either the kernel has the dummy driver and it worked, or the error says so precisely.
      if (dummyErr === undefined) expect(ipLink(t, 'dm0').linkinfo?.info_kind).toBe('dummy');
      else {
        expect(dummyErr).toMatchObject({
          code: 'NotSupported',
          errno: 95,
          kernelMessage: 'Unknown device type',
        });
        expect((dummyErr as Error).message).toMatch(/link kind 'dummy' is not available in this kernel/);
      }
    });
  });

  it('rejects bad input before any syscall and maps kernel refusals', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((_t, handle) => {
      // '%' would let the kernel pick the name (x%d → x0); all/default are the kernel's sysctl names.
      for (const name of [
        '',
        'a'.repeat(16),
        'a b',
        'a/b',
        'a:b',
        '..',
        'x%d',
        'eth%d',
        'a%',
        'all',
        'default',
      ]) {
        expect(() => linkAdd({ name, kind: 'bridge' }, { handle })).toThrow(
          expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
        );
      }
      expect(() => linkAdd({ name: 'v0', kind: 'veth', peer: { name: 'p%d' } }, { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
      expect(() => linkAdd({ name: 'x0', kind: 'bridge', mtu: 10 }, { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
      expect(() => linkAdd({ name: 'x0', kind: 'bridge', mac: '01:00:00:00:00:01' }, { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      expect(() => linkSetMtu('lo', 100_000, { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      expect(() => linkGet('nope0', { handle })).toThrow(expect.objectContaining({ code: 'NotFound' }));
      linkAdd({ name: 'br1', kind: 'bridge' }, { handle });
      expect(() => linkAdd({ name: 'br1', kind: 'bridge' }, { handle })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists', errno: 17 }),
      );
      expect(() => linkSetName('br1', 'lo', { handle })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      expect(
        linkList({ handle })
          .map((l) => l.name)
          .sort(),
      ).toEqual(['br1', 'lo']);
    });
  });

  it('the default handle follows the calling thread into a Netns.run window and back', async (ctx) => {
    requireRoot(ctx);
    // Read-only, in the caller's namespace, through the default handle: it stays open for the process.
    expect(processLifetime(() => linkGet('lo'))).toMatchObject({ index: 1, name: 'lo' });
    await inTestNs((_t, handle, netns) => {
      const name = uniqueName();
      linkAdd({ name, kind: 'bridge' }, { handle });
      expect(netns.run(() => linkGet(name).name)).toBe(name);
      expect(netns.run(() => linkList().map((l) => l.name)).sort()).toEqual([name, 'lo'].sort());
      expect(() => linkGet(name)).toThrow(expect.objectContaining({ code: 'NotFound' }));
    });
  });
});

describe('addresses, routes, neighbours, sysctls', () => {
  it('addrAdd/addrList/addrDel for IPv4 and IPv6 match ip addr', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, handle) => {
      linkAdd({ name: 'v0', kind: 'veth', up: true, peer: { name: 'v1' } }, { handle });
      addrAdd('v0', '10.244.3.1/24', { handle });
      addrAdd('v0', 'fd00:3::1/64', { handle, nodad: true });
      const info = ipJson<
        { addr_info: { local: string; prefixlen: number; family: string; nodad?: boolean }[] }[]
      >(['addr', 'show', 'v0'], t.name)[0]!.addr_info;
      expect(info).toContainEqual(
        expect.objectContaining({ family: 'inet', local: '10.244.3.1', prefixlen: 24 }),
      );
      expect(info).toContainEqual(
        expect.objectContaining({ family: 'inet6', local: 'fd00:3::1', prefixlen: 64, nodad: true }),
      );
      const listed = addrList({ dev: 'v0' }, { handle }).map((a) => a.cidr);
      expect(listed).toEqual(expect.arrayContaining(['10.244.3.1/24', 'fd00:3::1/64']));
      expect(addrList({ dev: 'v0', family: 4 }, { handle }).map((a) => a.cidr)).toEqual(['10.244.3.1/24']);
      expect(() => addrAdd('v0', '10.244.3.1/24', { handle })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      addrDel('v0', '10.244.3.1/24', { handle });
      expect(addrList({ dev: 'v0', family: 4 }, { handle })).toEqual([]);
      expect(() => addrDel('v0', '10.244.3.1/24', { handle })).toThrow(
        expect.objectContaining({ code: 'NotFound' }),
      );
      expect(() => addrAdd('v0', '10.244.3.300/24', { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
    });
  });

  it('routeAdd/Replace/Del/List match ip route, with scope, via, src, mtu and tables', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, handle) => {
      linkAdd({ name: 'v0', kind: 'veth', up: true, peer: { name: 'v1' } }, { handle });
      linkSetUp('v1', { handle });
      addrAdd('v0', '10.244.4.5/32', { handle });
      routeAdd({ dst: '10.244.4.1/32', dev: 'v0', scope: 'link' }, { handle });
      routeAdd({ dst: 'default', via: '10.244.4.1', dev: 'v0', mtu: 1400 }, { handle });
      routeAdd({ dst: '10.244.5.0/24', via: '10.244.4.1', src: '10.244.4.5', table: 100 }, { handle });
      routeAdd({ dst: '10.244.6.0/24', type: 'blackhole' }, { handle });
      const main = ipJson<
        {
          dst: string;
          gateway?: string;
          dev?: string;
          scope?: string;
          type?: string;
          metrics?: { mtu: number }[];
        }[]
      >(['route', 'show'], t.name);
      expect(main).toContainEqual(expect.objectContaining({ dst: '10.244.4.1', dev: 'v0', scope: 'link' }));
      expect(main).toContainEqual(
        expect.objectContaining({
          dst: 'default',
          gateway: '10.244.4.1',
          dev: 'v0',
          metrics: [{ mtu: 1400 }],
        }),
      );
      expect(main).toContainEqual(expect.objectContaining({ dst: '10.244.6.0/24', type: 'blackhole' }));
      expect(ipJson<{ dst: string; prefsrc: string }[]>(['route', 'show', 'table', '100'], t.name)).toEqual([
        expect.objectContaining({ dst: '10.244.5.0/24', gateway: '10.244.4.1', prefsrc: '10.244.4.5' }),
      ]);
      const ours = routeList({ family: 4 }, { handle });
      expect(ours).toContainEqual(expect.objectContaining({ dst: 'default', via: '10.244.4.1', mtu: 1400 }));
      expect(routeList({ table: 100 }, { handle }).map((r) => r.dst)).toEqual(['10.244.5.0/24']);
      expect(() => routeAdd({ dst: 'default', via: '10.244.4.1', dev: 'v0' }, { handle })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      routeReplace({ dst: 'default', via: '10.244.4.1', dev: 'v0', mtu: 1300 }, { handle });
      expect(routeList({ family: 4 }, { handle }).find((r) => r.dst === 'default')?.mtu).toBe(1300);
      expect(() => routeAdd({ dst: '10.244.9.0/24', via: '10.99.0.1' }, { handle })).toThrow(
        expect.objectContaining({ code: 'Unreachable', kernelMessage: expect.stringMatching(/gateway/i) }),
      );
      expect(() => routeAdd({ dst: '10.244.9.1/24', dev: 'v0' }, { handle })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
      routeDel({ dst: 'default' }, { handle });
      routeDel({ dst: '10.244.5.0/24', table: 100 }, { handle });
      expect(routeList({ family: 4 }, { handle }).map((r) => r.dst)).not.toContain('default');
      expect(() => routeDel({ dst: 'default' }, { handle })).toThrow(
        expect.objectContaining({ code: 'NotFound' }),
      );
      routeAdd({ dst: 'fd00:4::/64', dev: 'v0' }, { handle });
      expect(ipJson<{ dst: string }[]>(['-6', 'route', 'show'], t.name)).toContainEqual(
        expect.objectContaining({ dst: 'fd00:4::/64', dev: 'v0' }),
      );
    });
  });

  it('neighAdd/List/Del match ip neigh', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, handle) => {
      linkAdd({ name: 'v0', kind: 'veth', up: true, peer: { name: 'v1' } }, { handle });
      neighAdd({ dev: 'v0', address: '10.244.5.9', lladdr: '02:00:00:00:05:09' }, { handle });
      expect(
        ipJson<{ dst: string; lladdr: string; state: string[] }[]>(['neigh', 'show', 'dev', 'v0'], t.name),
      ).toContainEqual(
        expect.objectContaining({ dst: '10.244.5.9', lladdr: '02:00:00:00:05:09', state: ['PERMANENT'] }),
      );
      expect(neighList({ dev: 'v0', family: 4 }, { handle })).toContainEqual(
        expect.objectContaining({ address: '10.244.5.9', lladdr: '02:00:00:00:05:09', state: 0x80 }),
      );
      neighAdd({ dev: 'v0', address: '10.244.5.9', lladdr: '02:00:00:00:05:10', replace: true }, { handle });
      expect(
        neighList({ dev: 'v0', family: 4 }, { handle }).find((n) => n.address === '10.244.5.9')?.lladdr,
      ).toBe('02:00:00:00:05:10');
      neighDel({ dev: 'v0', address: '10.244.5.9' }, { handle });
      expect(
        neighList({ dev: 'v0', family: 4 }, { handle }).filter((n) => n.address === '10.244.5.9'),
      ).toEqual([]);
    });
  });

  it('sysctlSet writes inside the given namespace only', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, _handle, netns) => {
      const outside = sysctlGet('net.ipv4.conf.lo.rp_filter');
      sysctlSet('net.ipv4.conf.lo.rp_filter', 2, { netns });
      expect(inNetns(t.name, 'cat', ['/proc/sys/net/ipv4/conf/lo/rp_filter']).trim()).toBe('2');
      expect(sysctlGet('net.ipv4.conf.lo.rp_filter', { netns })).toBe('2');
      expect(sysctlGet('net.ipv4.conf.lo.rp_filter')).toBe(outside);
      expect(() => sysctlSet('net.ipv4.conf.nope0.rp_filter', 0, { netns })).toThrow(
        expect.objectContaining({ code: 'NotFound' }),
      );
      expect(() => sysctlSet('kernel.hostname', 'x', { netns })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      expect(() => sysctlSet('net/../../kernel/x', 'x', { netns })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
    });
  });
});

describe('sysctlSetAsync', () => {
  it("writes inside the given namespace through a knob opened there, with the sync form's errors", async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using netns = Netns.open({ name: t.name });
      const outside = sysctlGet('net.ipv4.conf.lo.rp_filter');
      await sysctlSetAsync('net.ipv4.conf.lo.rp_filter', 2, { netns });
      expect(inNetns(t.name, 'cat', ['/proc/sys/net/ipv4/conf/lo/rp_filter']).trim()).toBe('2');
      expect(sysctlGet('net.ipv4.conf.lo.rp_filter')).toBe(outside);
      await expect(sysctlSetAsync('net.ipv4.conf.nope0.rp_filter', 0, { netns })).rejects.toMatchObject({
        code: 'NotFound',
      });
      await expect(sysctlSetAsync('kernel.hostname', 'x', { netns })).rejects.toMatchObject({
        code: 'InvalidArgument',
      });
    });
  });
});

describe('{ netns }: a Netns handle says where, as everywhere in the SDK', () => {
  it('adds, reads and deletes a link in the namespace of a Netns, leaving no socket open', async (ctx) => {
    requireRoot(ctx);
    await inTestNs((t, _handle, netns) => {
      const name = uniqueName().slice(0, 12);
      linkAdd({ name, kind: 'veth', peer: { name: `${name}p` } }, { netns });
      expect(linkGet(name, { netns }).kind).toBe('veth');
      expect(ipJson<IpLink[]>(['link', 'show', 'dev', name], t.name)[0]?.ifname).toBe(name);
      expect(() => run('ip', ['link', 'show', 'dev', name])).toThrow(/does not exist/); // not in ours
      linkDel(name, { netns });
      expect(linkList({ netns }).map((l) => l.name)).not.toContain(name);
    });
  });
});
