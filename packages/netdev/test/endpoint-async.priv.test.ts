// applyEndpointAsync / removeEndpointAsync against the real kernel: 100 pods set up at once with one
// injected failure (rolled back, nothing left), every result matching what `ip` reports (no crossed
// replies, no duplicate names), the caller's `alongside` work and its failures (and the pod's) rolled back,
// single-queue veths, and a pod namespace deleted while calls are pending.
import { Netns, netnsDelete } from '@datapath/netlink';
import {
  createNetns,
  deleteNetns,
  ipJson,
  requireRoot,
  run,
  type TestNetns,
  uniqueName,
  withNetns,
} from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import {
  applyEndpointAsync,
  type EndpointPlan,
  type EndpointSpec,
  planEndpoint,
  removeEndpointAsync,
} from '../src/index.js';

interface IpLink {
  ifindex: number;
  ifname: string;
  address: string;
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string }[];
}

const PODS = 100;

function podSpec(pod: TestNetns, i: number): EndpointSpec {
  return {
    containerId: `${pod.name}-c`,
    netns: pod.path,
    ifname: 'eth0',
    addresses: [`10.244.${20 + Math.floor(i / 200)}.${10 + (i % 200)}`],
    gateway: '10.244.255.1',
    mode: 'cilium',
  };
}

function podPlan(pod: TestNetns, i: number): EndpointPlan {
  return planEndpoint(podSpec(pod, i));
}

describe('applyEndpointAsync / removeEndpointAsync', () => {
  it('sets up 100 pods concurrently, rolls back the one that fails, and removes the rest', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (hostT) => {
      const pods: TestNetns[] = [];
      try {
        for (let i = 0; i < PODS; i++) pods.push(createNetns());
        using host = Netns.open({ name: hostT.name });
        const plans = pods.map(podPlan);
        const failing = 37;
        const settled = await Promise.allSettled(
          plans.map((plan, i) =>
            applyEndpointAsync(plan, {
              hostNetns: host,
              onStep:
                i === failing
                  ? (step) => {
                      if (step === 'containerAddresses') throw new Error('injected failure');
                    }
                  : undefined,
            }),
          ),
        );
        expect(settled.filter((s) => s.status === 'rejected')).toHaveLength(1);
        expect((settled[failing] as PromiseRejectedResult).reason).toMatchObject({
          message: 'injected failure',
        });

        // The oracle: every host veth exists once, with the index and MAC the call returned.
        const hostLinks = new Map(ipJson<IpLink[]>(['link', 'show'], hostT.name).map((l) => [l.ifname, l]));
        expect(hostLinks.size).toBe(PODS); // lo + 99 veths
        expect(new Set(plans.map((p) => p.host.name)).size).toBe(PODS);
        for (const [i, s] of settled.entries()) {
          const plan = plans[i]!;
          if (i === failing) {
            expect(hostLinks.has(plan.host.name)).toBe(false);
            expect(ipJson<IpLink[]>(['link', 'show'], pods[i]!.name).map((l) => l.ifname)).toEqual(['lo']);
            continue;
          }
          const ep = (s as PromiseFulfilledResult<Awaited<ReturnType<typeof applyEndpointAsync>>>).value;
          const seen = hostLinks.get(ep.host.name);
          expect(seen).toMatchObject({ ifindex: ep.host.index, address: plan.host.mac });
          // Spot-check the pod side of every tenth pod (each `ip` call is a process).
          if (i % 10 === 0) {
            const addrs = ipJson<IpAddr[]>(['addr', 'show', 'eth0'], pods[i]!.name);
            expect(addrs[0]?.addr_info.find((a) => a.family === 'inet')?.local).toBe(
              plan.container.addresses[0]?.address,
            );
          }
        }

        const removed = await Promise.all(
          plans.map((plan) => removeEndpointAsync(plan, { hostNetns: host })),
        );
        expect(removed.filter(Boolean)).toHaveLength(PODS - 1);
        expect(removed[failing]).toBe(false);
        expect(ipJson<IpLink[]>(['link', 'show'], hostT.name).map((l) => l.ifname)).toEqual(['lo']);
      } finally {
        for (const p of pods) deleteNetns(p.name);
      }
    });
  }, 120_000);

  it('runs `alongside` work on the new host end with the pod and host requests; a failure of either rolls back the veth', async (ctx) => {
    requireRoot(ctx);
    await withNetns(4, async (hostT, a, b, c) => {
      using host = Netns.open({ name: hostT.name });
      // Made: the hook saw the host end's index, and the veth has the planned single queue on each end.
      const planA = planEndpoint({ ...podSpec(a, 0), queues: 1 });
      const seen: { name: string; index: number }[] = [];
      const ep = await applyEndpointAsync(planA, {
        hostNetns: host,
        alongside: async (h) => {
          seen.push(h);
        },
      });
      expect(seen).toEqual([{ name: planA.host.name, index: ep.host.index }]);
      const queues = (ns: string, dev: string) =>
        ipJson<{ num_tx_queues: number; num_rx_queues: number }[]>(['-d', 'link', 'show', dev], ns).map(
          (l) => [l.num_tx_queues, l.num_rx_queues],
        );
      expect(queues(hostT.name, planA.host.name)).toEqual([[1, 1]]);
      expect(queues(a.name, 'eth0')).toEqual([[1, 1]]);

      // The hook fails: its error, and no veth on either side.
      const planB = podPlan(b, 1);
      await expect(
        applyEndpointAsync(planB, {
          hostNetns: host,
          alongside: async () => {
            throw new Error('attach refused');
          },
        }),
      ).rejects.toThrow('attach refused');
      // The pod's requests fail (a default route is there already) while the hook runs: the kernel's
      // error once the hook is done, and no veth.
      run('ip', ['-n', c.name, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', c.name, 'route', 'add', 'default', 'dev', 'lo']);
      let hookDone = false;
      await expect(
        applyEndpointAsync(podPlan(c, 2), {
          hostNetns: host,
          alongside: async () => {
            await new Promise((r) => setTimeout(r, 50));
            hookDone = true;
          },
        }),
      ).rejects.toMatchObject({ name: 'NetlinkError', code: 'AlreadyExists' });
      expect(hookDone).toBe(true);
      expect(
        ipJson<IpLink[]>(['link', 'show'], hostT.name)
          .map((l) => l.ifname)
          .sort(),
      ).toEqual([planA.host.name, 'lo'].sort());
      for (const p of [b, c])
        expect(ipJson<IpLink[]>(['link', 'show'], p.name).map((l) => l.ifname)).toEqual(['lo']);
      expect(await removeEndpointAsync(planA, { hostNetns: host })).toBe(true);
    });
  });

  it('gives a typed error for a pod namespace deleted while calls are pending, and the host handle stays usable', async (ctx) => {
    requireRoot(ctx);
    await withNetns(3, async (hostT, a, b) => {
      using host = Netns.open({ name: hostT.name });
      const gone = createNetns(uniqueName());
      const planA = podPlan(a, 0);
      const planGone = podPlan(gone, 1);
      const planB = podPlan(b, 2);
      // The call for A is pending when A's name is deleted: it is bound to the namespace (an open fd and
      // sockets keep it alive) and completes. The call for a namespace deleted before it ran fails
      // with a typed NotFound and creates nothing.
      const first = applyEndpointAsync(planA, { hostNetns: host });
      netnsDelete(gone.name);
      run('ip', ['netns', 'del', a.name]);
      const err = await applyEndpointAsync(planGone, { hostNetns: host }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'NetlinkError', code: 'NotFound' });
      await first;
      const ep = await applyEndpointAsync(planB, { hostNetns: host });
      // A's namespace went away with the last reference: the kernel deleted its veth pair with it.
      let names: string[] = [];
      for (let i = 0; i < 200; i++) {
        names = ipJson<IpLink[]>(['link', 'show'], hostT.name).map((l) => l.ifname);
        if (!names.includes(planA.host.name)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(names.sort()).toEqual([planB.host.name, 'lo'].sort());
      expect(ep.container.netns).toBe(b.path);
      expect(await removeEndpointAsync(planGone, { hostNetns: host })).toBe(false);
      // Cancelled before it started: nothing is made.
      const ac = new AbortController();
      ac.abort();
      await expect(removeEndpointAsync(planB, { hostNetns: host, signal: ac.signal })).rejects.toMatchObject({
        code: 'Interrupted',
        reason: 'Aborted',
      });
      expect(await removeEndpointAsync(planB, { hostNetns: host })).toBe(true);
      expect(await removeEndpointAsync(planA, { hostNetns: host })).toBe(false);
    });
  });
});
