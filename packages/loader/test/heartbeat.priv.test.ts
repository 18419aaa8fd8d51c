// The event loop keeps running while the kernel waits: a 1 ms heartbeat runs while 50 pod endpoints are
// created and deleted (`@datapath/netdev`) and 50 tcx links attached and detached, once with the sync
// calls and once with their async forms, in the same test. The check is relative (the async run's
// heartbeat lag p99 is at most 0.2x the sync run's, so it holds on a loaded machine), plus a structural
// one: heartbeats fire while async kernel calls are in flight. Both runs leave the same kernel state
// (`ip -j` and `bpftool -j` as oracles) and nothing behind.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyEndpoint,
  applyEndpointAsync,
  type EndpointPlan,
  planEndpoint,
  removeEndpoint,
  removeEndpointAsync,
} from '@datapath/netdev';
import { Netns } from '@datapath/netlink';
import {
  bpftoolJson,
  createNetns,
  deleteNetns,
  ipJson,
  requireRoot,
  type TestNetns,
  withNetns,
} from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compile,
  type FdLink,
  load,
  loadAsync,
  openObject,
  type Program,
  tcxAttach,
  tcxAttachAsync,
} from '../src/index.js';

const PODS = 50;
const bpfDir = fileURLToPath(new URL('./bpf/', import.meta.url));
let counterObj: string;
let slowObj: string;

beforeAll(async () => {
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')] })).path;
  slowObj = (await compile({ files: [join(bpfDir, 'slow-verify.bpf.c')] })).path;
});

/** A 1 ms timer; `stop()` gives each tick's lateness in ms and how many ticks fired while `busy()`. */
function heartbeat(busy: () => boolean): { stop(): { lags: number[]; ticksWhileBusy: number } } {
  const lags: number[] = [];
  let ticksWhileBusy = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - 1));
    last = now;
    if (busy()) ticksWhileBusy++;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      return { lags, ticksWhileBusy };
    },
  };
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0;
}

interface IpAddr {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  addr_info: { family: string; local: string; prefixlen: number }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
}
interface BpftoolLink {
  id: number;
  prog_id: number;
}

/** Configured addresses (link-local IPv6 ones come and go with the kernel's own timing). */
function addrsOf(l: IpAddr): string[] {
  return l.addr_info
    .filter((a) => !a.local.startsWith('fe80:'))
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

/** What the kernel shows of the pods: host veths, every tenth pod's inside, and our tcx links. */
function snapshot(host: TestNetns, pods: readonly TestNetns[], progId: number) {
  const hostLinks = ipJson<IpAddr[]>(['addr', 'show'], host.name)
    .filter((l) => l.ifname !== 'lo')
    .map((l) => ({
      ifname: l.ifname,
      mtu: l.mtu,
      address: l.address,
      up: l.flags.includes('UP'),
      addrs: addrsOf(l),
    }))
    .sort((a, b) => a.ifname.localeCompare(b.ifname));
  const hostRoutes = ipJson<IpRoute[]>(['route', 'show'], host.name)
    .map((r) => `${r.dst} dev ${r.dev}`)
    .sort();
  const inside = pods
    .filter((_, i) => i % 10 === 0)
    .map((p) => ({
      links: ipJson<IpAddr[]>(['addr', 'show'], p.name).map((l) => ({
        ifname: l.ifname,
        up: l.flags.includes('UP'),
        addrs: addrsOf(l),
      })),
      routes: ipJson<IpRoute[]>(['route', 'show'], p.name)
        .map((r) => `${r.dst} ${r.gateway ?? ''} ${r.dev}`)
        .sort(),
    }));
  const tcxLinks = bpftoolJson<BpftoolLink[]>(['link', 'show']).filter((l) => l.prog_id === progId).length;
  return { hostLinks, hostRoutes, inside, tcxLinks };
}

function plans(pods: readonly TestNetns[]): EndpointPlan[] {
  return pods.map((p, i) =>
    planEndpoint({
      containerId: `${p.name}-hb`,
      netns: p.path,
      ifname: 'eth0',
      addresses: [`10.244.60.${10 + i}`],
      gateway: '10.244.60.1',
      mode: 'cilium',
    }),
  );
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('a 1 ms heartbeat while 50 endpoints and 50 tcx links come and go', () => {
  it('keeps ticking with the async forms (lag p99 <= 0.2x the sync forms), with the same kernel state', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (hostT) => {
      const pods: TestNetns[] = [];
      const links: FdLink[] = [];
      using host = Netns.open({ name: hostT.name });
      const spec = openObject(counterObj);
      spec.setConstant('port', 9500);
      spec.maps.shared!.pinning = 'none';
      using coll = load(spec);
      const prog: Program = coll.program('count_pass');
      const progId = prog.info().id;
      try {
        for (let i = 0; i < PODS; i++) pods.push(createNetns());
        const ps = plans(pods);

        // Sync: every call blocks the thread; the heartbeat gets a turn between calls only.
        let busy = false;
        let hb = heartbeat(() => busy);
        for (const plan of ps) {
          const ep = applyEndpoint(plan, { hostNetns: host });
          await tick();
          links.push(tcxAttach(prog, { ifindex: ep.host.index, direction: 'ingress', netns: host }));
          await tick();
        }
        const syncState = snapshot(hostT, pods, progId);
        for (const plan of ps) {
          links.shift()!.detach();
          await tick();
          removeEndpoint(plan, { hostNetns: host });
          await tick();
        }
        const sync = hb.stop();
        expect(snapshot(hostT, pods, progId)).toMatchObject({ hostLinks: [], tcxLinks: 0 });

        // Async: the same work, all pods at once; the waits happen on libuv's threadpool.
        hb = heartbeat(() => busy);
        busy = true;
        await Promise.all(
          ps.map(async (plan) => {
            const ep = await applyEndpointAsync(plan, { hostNetns: host });
            links.push(
              await tcxAttachAsync(prog, { ifindex: ep.host.index, direction: 'ingress', netns: host }),
            );
          }),
        );
        busy = false;
        const asyncState = snapshot(hostT, pods, progId);
        busy = true;
        await Promise.all(links.splice(0).map((l) => l.detachAsync()));
        await Promise.all(ps.map((plan) => removeEndpointAsync(plan, { hostNetns: host })));
        busy = false;
        const asy = hb.stop();

        // The same kernel state either way: 50 veths up with their addresses and routes, 50 tcx links.
        expect(syncState.hostLinks).toHaveLength(PODS);
        expect(syncState.tcxLinks).toBe(PODS);
        expect(asyncState).toEqual(syncState);
        expect(snapshot(hostT, pods, progId)).toMatchObject({ hostLinks: [], tcxLinks: 0 });

        const syncP99 = p99(sync.lags);
        const asyncP99 = p99(asy.lags);
        ctx.annotate(
          `heartbeat lag p99: sync ${syncP99.toFixed(2)} ms (${sync.lags.length} ticks), ` +
            `async ${asyncP99.toFixed(2)} ms (${asy.lags.length} ticks, ${asy.ticksWhileBusy} during the calls)`,
        );
        // Timers fire while async calls wait in the kernel; a sync call leaves them no turn at all.
        expect(asy.ticksWhileBusy).toBeGreaterThan(10);
        expect(asyncP99).toBeLessThanOrEqual(0.2 * syncP99);
      } finally {
        for (const l of links) l.close();
        for (const p of pods) deleteNetns(p.name);
      }
    });
  }, 180_000);
});

describe('a 1 ms heartbeat while a program loads', () => {
  it('keeps ticking during loadAsync (the verifier runs on the threadpool), with the same result as load', async (ctx) => {
    requireRoot(ctx);
    const what = (c: Awaited<ReturnType<typeof loadAsync>>) => ({
      programs: Object.values(c.programs).map((p) => {
        const { tag, typeName, name } = p.info();
        return { tag, typeName, name };
      }),
      maps: Object.values(c.maps).map(({ name, type, keySize, valueSize, maxEntries, pinPath }) => ({
        name,
        type,
        keySize,
        valueSize,
        maxEntries,
        pinPath,
      })),
    });
    // Sync: the thread is inside bpf_object__load for the whole verification; no timer can fire.
    let busy = true;
    let hb = heartbeat(() => busy);
    const t0 = performance.now();
    const syncColl = load(openObject(slowObj));
    const syncMs = performance.now() - t0;
    busy = false;
    await new Promise((r) => setTimeout(r, 5));
    const sync = hb.stop();
    try {
      hb = heartbeat(() => busy);
      busy = true;
      const t1 = performance.now();
      const pending = loadAsync(openObject(slowObj));
      const asyncColl = await pending;
      const asyncMs = performance.now() - t1;
      busy = false;
      const asy = hb.stop();
      try {
        ctx.annotate(
          `load ${syncMs.toFixed(1)} ms: heartbeat lag max ${Math.max(...sync.lags).toFixed(1)} ms, ` +
            `${sync.ticksWhileBusy} ticks during it; loadAsync ${asyncMs.toFixed(1)} ms: lag p99 ` +
            `${p99(asy.lags).toFixed(2)} ms, ${asy.ticksWhileBusy} ticks during it`,
        );
        expect(what(asyncColl)).toEqual(what(syncColl));
        expect(what(syncColl).programs).toHaveLength(8);
        expect(what(syncColl).programs[0]).toMatchObject({ name: 'busy0', typeName: 'sched_cls' });
        expect(sync.ticksWhileBusy).toBe(0);
        // The verifier walks 8 x 3000 loop iterations: several ms in the kernel, during which timers fire.
        expect(asy.ticksWhileBusy).toBeGreaterThanOrEqual(2);
      } finally {
        asyncColl.close();
      }
    } finally {
      syncColl.close();
    }
  }, 60_000);
});
