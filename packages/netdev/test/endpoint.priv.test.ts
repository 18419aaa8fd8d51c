import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Netns } from '@datapath/netlink';
import {
  createNetns,
  deleteNetns,
  inNetns,
  ipJson,
  requireRoot,
  run,
  type TestNetns,
  uniqueName,
  withNetns,
} from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import {
  applyEndpoint,
  applyEndpointAsync,
  type EndpointSpec,
  type EndpointStep,
  planEndpoint,
  removeEndpoint,
} from '../src/index.js';

interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  link_netnsid?: number;
  txqlen?: number;
}
interface IpAddr {
  ifname: string;
  address: string;
  addr_info: { family: string; local: string; prefixlen: number; nodad?: boolean }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  scope?: string;
  prefsrc?: string;
}

const links = (ns: TestNetns) => ipJson<IpLink[]>(['link', 'show'], ns.name);
const linkNames = (ns: TestNetns) => links(ns).map((l) => l.ifname);

function spec(pod: TestNetns, patch: Partial<EndpointSpec> = {}): EndpointSpec {
  return {
    containerId: uniqueName(),
    netns: pod.path,
    ifname: 'eth0',
    mtu: 1450,
    addresses: ['10.244.7.5'],
    gateway: '10.244.7.1',
    mode: 'cilium',
    ...patch,
  };
}

describe('applyEndpoint / removeEndpoint (Cilium mode)', () => {
  it('builds the veth, addresses, routes and sysctls that ip reports, and the pod can ping its gateway', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      const plan = planEndpoint(spec(podT));
      const res = applyEndpoint(plan, { hostNetns: host });
      expect(res.host.name).toBe(plan.host.name);

      const hostLink = ipJson<IpLink[]>(['link', 'show', plan.host.name], hostT.name)[0]!;
      expect(hostLink).toMatchObject({ mtu: 1450, address: plan.host.mac, txqlen: 1000 });
      expect(hostLink.flags).toContain('UP');
      expect(typeof hostLink.link_netnsid).toBe('number');

      const podLink = ipJson<IpLink[]>(['link', 'show', 'eth0'], podT.name)[0]!;
      expect(podLink).toMatchObject({ mtu: 1450, address: plan.container.mac });
      expect(podLink.flags).toContain('UP');
      expect(linkNames(podT).sort()).toEqual(['eth0', 'lo']); // no tmp name left
      expect(ipJson<IpLink[]>(['link', 'show', 'lo'], podT.name)[0]!.flags).toContain('UP');

      const addrs = ipJson<IpAddr[]>(['addr', 'show', 'eth0'], podT.name)[0]!.addr_info.filter(
        (a) => a.family === 'inet',
      );
      expect(addrs).toEqual([expect.objectContaining({ local: '10.244.7.5', prefixlen: 32 })]);

      const podRoutes = ipJson<IpRoute[]>(['route', 'show'], podT.name);
      expect(podRoutes).toContainEqual(
        expect.objectContaining({ dst: '10.244.7.1', dev: 'eth0', scope: 'link' }),
      );
      expect(podRoutes).toContainEqual(
        expect.objectContaining({ dst: 'default', gateway: '10.244.7.1', dev: 'eth0' }),
      );

      const hostRoutes = ipJson<IpRoute[]>(['route', 'show'], hostT.name);
      expect(hostRoutes).toContainEqual(
        expect.objectContaining({ dst: '10.244.7.5', dev: plan.host.name, scope: 'link' }),
      );
      expect(inNetns(hostT.name, 'cat', [`/proc/sys/net/ipv4/conf/${plan.host.name}/rp_filter`]).trim()).toBe(
        '0',
      );

      // Cilium's gateway is the node's router IP: give the test "host" that address and ping it.
      run('ip', ['-n', hostT.name, 'addr', 'add', '10.244.7.1/32', 'dev', 'lo']);
      expect(inNetns(podT.name, 'ping', ['-c', '1', '-W', '2', '10.244.7.1'])).toContain('1 received');

      expect(removeEndpoint(plan, { hostNetns: host })).toBe(true);
      expect(linkNames(hostT)).toEqual(['lo']);
      expect(linkNames(podT)).toEqual(['lo']);
      expect(removeEndpoint(plan, { hostNetns: host })).toBe(false);
      expect(removeEndpoint({ containerId: plan.containerId }, { hostNetns: host })).toBe(false);
    });
  });

  it('removes by container id alone, and treats a missing namespace as success', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      const s = spec(podT);
      applyEndpoint(planEndpoint(s), { hostNetns: host });
      expect(removeEndpoint({ containerId: s.containerId, ifname: 'eth0' }, { hostNetns: host })).toBe(true);
      expect(linkNames(hostT)).toEqual(['lo']);
      expect(
        removeEndpoint(
          { containerId: s.containerId, netns: `/run/netns/${uniqueName()}` },
          { hostNetns: host },
        ),
      ).toBe(false);
    });
  });
});

describe('applyEndpoint (ptp mode, dual stack)', () => {
  it('puts the gateway on the host veth, replaces the subnet route, and pings over IPv4 and IPv6', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      const plan = planEndpoint(
        spec(podT, {
          mode: 'ptp',
          addresses: ['10.244.8.5/24', 'fd00:8::5'],
          gateway: ['10.244.8.1', 'fd00:8::1'],
          mtu: 1500,
        }),
      );
      applyEndpoint(plan, { hostNetns: host });
      const hostAddrs = ipJson<IpAddr[]>(['addr', 'show', plan.host.name], hostT.name)[0]!.addr_info;
      expect(hostAddrs).toContainEqual(
        expect.objectContaining({ family: 'inet', local: '10.244.8.1', prefixlen: 32 }),
      );
      expect(hostAddrs).toContainEqual(
        expect.objectContaining({ family: 'inet6', local: 'fd00:8::1', prefixlen: 128 }),
      );
      const podRoutes = ipJson<IpRoute[]>(['route', 'show'], podT.name);
      expect(podRoutes).toContainEqual(
        expect.objectContaining({ dst: '10.244.8.0/24', gateway: '10.244.8.1', prefsrc: '10.244.8.5' }),
      );
      expect(podRoutes.filter((r) => r.dst === '10.244.8.0/24' && r.gateway === undefined)).toEqual([]);
      const pod6 = ipJson<IpAddr[]>(['-6', 'addr', 'show', 'eth0'], podT.name)[0]!.addr_info;
      expect(pod6).toContainEqual(
        expect.objectContaining({ local: 'fd00:8::5', prefixlen: 128, nodad: true }),
      );
      expect(inNetns(podT.name, 'ping', ['-c', '1', '-W', '2', '10.244.8.1'])).toContain('1 received');
      expect(inNetns(podT.name, 'ping', ['-6', '-c', '1', '-W', '2', 'fd00:8::1'])).toContain('1 received');
      expect(removeEndpoint(plan, { hostNetns: host })).toBe(true);
      expect(linkNames(hostT)).toEqual(['lo']);
    });
  });
});

describe('applyEndpoint: no IPv6 link-local address on the pod end (ipv6LinkLocal: false)', () => {
  it('the pod end comes up without a link-local address and sends nothing of its own; IPv6 addresses still work', async (ctx) => {
    requireRoot(ctx);
    await withNetns(4, async (hostT, quiet, control, dual) => {
      using host = Netns.open({ name: hostT.name });
      const rx = (dev: string) =>
        ipJson<{ stats64: { rx: { packets: number } } }[]>(['-s', 'link', 'show', dev], hostT.name)[0]!
          .stats64.rx.packets;
      const linkLocal = (ns: TestNetns) =>
        ipJson<IpAddr[]>(['-6', 'addr', 'show', 'eth0'], ns.name).flatMap((a) =>
          a.addr_info.filter((i) => i.local.startsWith('fe80:')),
        );
      const q = planEndpoint(spec(quiet, { addresses: ['10.244.7.5'], ipv6LinkLocal: false }));
      const c = planEndpoint(spec(control, { addresses: ['10.244.7.6'] }));
      expect(q.container.ipv6LinkLocal).toBe(false);
      expect('ipv6LinkLocal' in c.container).toBe(false);
      await applyEndpointAsync(q, { hostNetns: host });
      applyEndpoint(c, { hostNetns: host });
      expect(
        ipJson<{ inet6_addr_gen_mode?: string }[]>(['-d', 'link', 'show', 'eth0'], quiet.name)[0],
      ).toMatchObject({ inet6_addr_gen_mode: 'none' });
      // DAD, MLD reports and router solicitations of the control go out within about a second of its up
      await new Promise((r) => setTimeout(r, 2500));
      expect(linkLocal(quiet)).toEqual([]);
      expect(rx(q.host.name)).toBe(0);
      expect(linkLocal(control)).toHaveLength(1);
      expect(rx(c.host.name)).toBeGreaterThan(0);
      // IPv4 as before (the gateway as the test host's address)
      run('ip', ['-n', hostT.name, 'addr', 'add', '10.244.7.1/32', 'dev', 'lo']);
      expect(inNetns(quiet.name, 'ping', ['-c', '1', '-W', '2', '10.244.7.1'])).toContain('1 received');

      // dual stack (ptp) without a link-local address: the global addresses resolve the gateway and ping
      const d = planEndpoint(
        spec(dual, {
          mode: 'ptp',
          addresses: ['10.244.8.5/24', 'fd00:8::5'],
          gateway: ['10.244.8.1', 'fd00:8::1'],
          ipv6LinkLocal: false,
        }),
      );
      applyEndpoint(d, { hostNetns: host });
      expect(linkLocal(dual)).toEqual([]);
      expect(inNetns(dual.name, 'ping', ['-6', '-c', '1', '-W', '2', 'fd00:8::1'])).toContain('1 received');
      for (const p of [q, c, d]) expect(removeEndpoint(p, { hostNetns: host })).toBe(true);
      expect(linkNames(hostT)).toEqual(['lo']);
    });
  });
});

describe('applyEndpoint rollback and refusals', () => {
  const steps: EndpointStep[] = [
    'createVeth',
    'hostSysctls',
    'hostUp',
    'hostAddresses',
    'containerLink',
    'containerSysctls',
    'containerAddresses',
    'containerRoutes',
    'hostRoutes',
  ];

  it.for(steps)('a failure injected at step %s leaves nothing behind', async (failAt, ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      const plan = planEndpoint(
        spec(podT, {
          mode: 'ptp',
          addresses: ['10.244.9.5/24', 'fd00:9::5'],
          gateway: ['10.244.9.1', 'fd00:9::1'],
          mtu: 1500,
        }),
      );
      const seen: EndpointStep[] = [];
      const injected = new Error(`injected at ${failAt}`);
      expect(() =>
        applyEndpoint(plan, {
          hostNetns: host,
          onStep: (s) => {
            seen.push(s);
            if (s === failAt) throw injected;
          },
        }),
      ).toThrow(injected);
      expect(seen).toEqual(steps.slice(0, steps.indexOf(failAt) + 1));
      expect(linkNames(hostT)).toEqual(['lo']);
      expect(linkNames(podT)).toEqual(['lo']);
      expect(ipJson<IpRoute[]>(['route', 'show'], hostT.name)).toEqual([]);
    });
  });

  it('rolls back when the kernel rejects a step mid-way (ifname already taken in the pod)', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      run('ip', ['-n', podT.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
      const plan = planEndpoint(spec(podT));
      expect(() => applyEndpoint(plan, { hostNetns: host })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      expect(linkNames(hostT)).toEqual(['lo']);
      expect(linkNames(podT).sort()).toEqual(['eth0', 'lo', 'other0']);
    });
  });

  it('refuses the host namespace as a pod, non-nsfs paths and missing namespaces before creating anything', async (ctx) => {
    requireRoot(ctx);
    await withNetns((hostT) => {
      using host = Netns.open({ name: hostT.name });
      const self = planEndpoint({ ...spec(hostT), netns: hostT.path });
      expect(() => applyEndpoint(self, { hostNetns: host })).toThrow(
        expect.objectContaining({
          code: 'InvalidArgument',
          message: expect.stringMatching(/refusing to configure the host/),
        }),
      );
      const notNs = planEndpoint({ ...spec(hostT), netns: '/etc/hostname' });
      expect(() => applyEndpoint(notNs, { hostNetns: host })).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      const missing = planEndpoint({ ...spec(hostT), netns: `/run/netns/${uniqueName()}` });
      expect(() => applyEndpoint(missing, { hostNetns: host })).toThrow(
        expect.objectContaining({ code: 'NotFound' }),
      );
      expect(linkNames(hostT)).toEqual(['lo']);
    });
  });

  it("refuses the caller's own namespace as a pod even when another namespace plays host", async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, callerT) => {
      using host = Netns.open({ name: hostT.name });
      using callerNs = Netns.open({ name: callerT.name });
      // Run as a caller living in callerT (a test namespace), never in the real host namespace.
      const plan = planEndpoint(spec(callerT, { netns: '/proc/thread-self/ns/net' }));
      expect(() => callerNs.run(() => applyEndpoint(plan, { hostNetns: host }))).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
      expect(linkNames(hostT)).toEqual(['lo']);
      expect(linkNames(callerT)).toEqual(['lo']);
    });
  });

  it('refuses a second endpoint with the same container id and ifname, keeping the first intact', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (hostT, podT) => {
      using host = Netns.open({ name: hostT.name });
      const plan = planEndpoint(spec(podT));
      applyEndpoint(plan, { hostNetns: host });
      expect(() => applyEndpoint(plan, { hostNetns: host })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      expect(linkNames(hostT).sort()).toEqual([plan.host.name, 'lo'].sort());
      expect(linkNames(podT).sort()).toEqual(['eth0', 'lo']);
      removeEndpoint(plan, { hostNetns: host });
    });
  });
});

describe('applyEndpoint under concurrency', () => {
  it('50 pods applied by 5 plugin-like processes at once from inside one host namespace, all correct, all removed', async (ctx) => {
    requireRoot(ctx);
    const hostT = createNetns();
    const pods: TestNetns[] = [];
    try {
      for (let i = 0; i < 50; i++) pods.push(createNetns());
      const fixture = fileURLToPath(new URL('./fixtures/apply-many.ts', import.meta.url));
      const groups = [0, 1, 2, 3, 4].map((g) => pods.slice(g * 10, g * 10 + 10));
      const outputs = await Promise.all(
        groups.map(
          (group, g) =>
            new Promise<string>((resolve, reject) => {
              const child = spawn(
                'nsenter',
                [
                  `--net=${hostT.path}`,
                  process.execPath,
                  '--import',
                  'tsx',
                  fixture,
                  hostT.path,
                  String(g),
                  ...group.map((p) => p.path),
                ],
                { stdio: ['ignore', 'pipe', 'pipe'] },
              );
              let out = '';
              let err = '';
              child.stdout.on('data', (d) => {
                out += d;
              });
              child.stderr.on('data', (d) => {
                err += d;
              });
              child.on('close', (code) =>
                code === 0 ? resolve(out) : reject(new Error(`child ${g} exited ${code}: ${err}`)),
              );
            }),
        ),
      );
      const results = outputs.flatMap((o) => JSON.parse(o) as { host: string; pod: string; ip: string }[]);
      expect(results).toHaveLength(50);
      const hostLinks = linkNames(hostT);
      const hostRoutes = ipJson<IpRoute[]>(['route', 'show'], hostT.name);
      for (const r of results) {
        expect(hostLinks).toContain(r.host);
        expect(hostRoutes).toContainEqual(expect.objectContaining({ dst: r.ip, dev: r.host }));
        const pod = pods.find((p) => p.path === r.pod)!;
        const addr = ipJson<IpAddr[]>(['addr', 'show', 'eth0'], pod.name)[0]!.addr_info.find(
          (a) => a.family === 'inet',
        );
        expect(addr?.local).toBe(r.ip);
      }
      using host = Netns.open({ name: hostT.name });
      for (const r of results) {
        // The fixture used the pod namespace name as the container id.
        const containerId = r.pod.split('/').pop()!;
        expect(removeEndpoint({ containerId, mode: 'cilium' }, { hostNetns: host })).toBe(true);
      }
      expect(linkNames(hostT)).toEqual(['lo']);
    } finally {
      for (const p of pods) deleteNetns(p.name);
      deleteNetns(hostT.name);
    }
  }, 120_000);
});
