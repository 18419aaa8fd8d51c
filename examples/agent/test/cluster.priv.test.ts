// A cluster on this machine with real packets: node agents as processes, etcd on loopback, native
// routing or VXLAN over a fabric bridge. Cross-node allows, denies and a deny rule; the remote-node entity; a node
// killed with SIGKILL (the others keep forwarding, drop its routes and pods after its lease, and it
// comes back with its pods and flows); etcd stopped for 10 s; bad input refused with nothing left behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
import { requireRoot, runPrefix, scanLeaks, startEtcd, type TestEtcd } from '@datapath/testutils';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import {
  type ClusterOptions,
  type ClusterRecord,
  clusterDown,
  clusterStatus,
  clusterUp,
  killNode,
  readCluster,
  readNodeStatus,
  restartNode,
} from '../src/cluster.js';
import { CLUSTER_POOL, ClusterNodeAgent } from '../src/cluster-node.js';
import { runClusterProbes } from '../src/cluster-run.js';
import { Datapath } from '../src/datapath.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';
import { underlayAddress } from '../src/underlay.js';

const made: { prefix: string; stateDir: string; dir: string }[] = [];
const etcds: TestEtcd[] = [];

function options(extra: Partial<ClusterOptions> = {}): ClusterOptions & { prefix: string; stateDir: string } {
  const prefix = `${runPrefix()}${randomBytes(2).toString('hex').slice(0, 3)}`;
  const dir = mkdtempSync(join(tmpdir(), 'dp-cluster-'));
  const stateDir = join(dir, 'state');
  made.push({ prefix, stateDir, dir });
  return { name: 'c', prefix, stateDir, ttlSeconds: 2, timeoutMs: 45_000, ...extra };
}

function nodePids(stateDir: string): number[] {
  try {
    return readCluster({ stateDir }).nodes.map((n) => n.pid);
  } catch {
    return [];
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(async () => {
  for (const e of etcds.splice(0)) await e.stop();
  for (const { prefix, stateDir, dir } of made.splice(0)) {
    const pids = nodePids(stateDir);
    if (existsSync(join(stateDir, 'cluster.json'))) await clusterDown({ stateDir }).catch(() => undefined);
    const leaks = scanLeaks(prefix);
    for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    expect(leaks).toEqual({ netns: [], links: [], pins: [] });
    expect(pids.filter(alive)).toEqual([]);
  }
});

function scenarioFile(doc: unknown): string {
  const dir = made[made.length - 1]!.dir;
  const path = join(dir, 'scenario.json');
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

const cnp = (name: string, spec: unknown) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name, namespace: 'x' },
  spec,
});
const port80 = [{ ports: [{ port: '80', protocol: 'TCP' }] }];
const pod = (name: string, node: string, ip: string) => ({
  namespace: 'x',
  name,
  node,
  labels: { app: name },
  ip,
  ports: [{ port: 80, protocol: 'TCP' }],
});

/** A long-lived TCP connection from a pod to a pod: a line every 20 ms, echoed bytes counted. */
function longFlow(fromNetns: string, toIp: string) {
  const script = `const s=require('net').connect(80,'${toIp}');let n=0;
    s.on('data',d=>{n+=d.length});setInterval(()=>s.write('ping\\n'),20);
    setInterval(()=>process.stdout.write(n+'\\n'),50);s.on('error',e=>{console.log('error '+e.message);process.exit(1)})`;
  const child: ChildProcess = spawn('nsenter', [`--net=${fromNetns}`, process.execPath, '-e', script]);
  let echoed = 0;
  let failed = '';
  child.stdout!.on('data', (d: Buffer) => {
    const last = d.toString().trim().split('\n').pop() ?? '';
    if (/^\d+$/.test(last)) echoed = Number(last);
    else failed = last;
  });
  return {
    child,
    get echoed() {
      return echoed;
    },
    get failed() {
      return failed;
    },
    async grows(by: number, ms = 5_000): Promise<boolean> {
      const want = echoed + by;
      const until = Date.now() + ms;
      while (echoed < want && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      return echoed >= want;
    },
  };
}

function nodeState(c: ClusterRecord, node: string) {
  const n = c.nodes.find((x) => x.name === node)!;
  return Agent.readState({ name: n.name, prefix: n.prefix, stateDir: n.stateDir });
}

const routes = (netns: string) => execFileSync('ip', ['-n', netns, 'route', 'show'], { encoding: 'utf8' });

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The index of the etcd member that leads (asked of each through the status API). */
async function etcdLeader(endpoints: string[]): Promise<number> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    const status = await Promise.all(
      endpoints.map(async (e) => {
        try {
          const res = await fetch(`${e}/v3/maintenance/status`, {
            method: 'POST',
            body: '{}',
            signal: AbortSignal.timeout(1000),
          });
          return (await res.json()) as { header?: { member_id?: string }; leader?: string };
        } catch {
          return undefined;
        }
      }),
    );
    const leader = status.find((x) => x?.leader !== undefined && x.leader !== '0')?.leader;
    const i = status.findIndex((x) => x?.header?.member_id === leader);
    if (leader !== undefined && i >= 0) return i;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the etcd cluster has no leader');
}

describe('a cluster on one machine', () => {
  for (const mode of ['native', 'tunnel'] as const)
    it(`two nodes (${mode}): cross-node allows, denies and a deny rule hold with real packets; remote-node from the other node`, async (ctx) => {
      requireRoot(ctx);
      const o = options({ mode });
      const file = scenarioFile({
        nodes: ['n1', 'n2'],
        namespaces: { x: { labels: { team: 'x' } } },
        pods: [
          pod('a', 'n1', '10.244.1.10'),
          pod('c', 'n1', '10.244.1.11'),
          pod('b', 'n2', '10.244.2.10'),
          pod('d', 'n2', '10.244.2.11'),
        ],
        policies: [
          cnp('b-in', {
            endpointSelector: { matchLabels: { app: 'b' } },
            ingress: [
              { fromEndpoints: [{ matchLabels: { app: 'a' } }], toPorts: port80 },
              { fromEntities: ['remote-node'], toPorts: port80 },
            ],
          }),
          cnp('d-in', {
            endpointSelector: { matchLabels: { app: 'd' } },
            ingress: [{ fromEntities: ['cluster'], toPorts: port80 }],
            ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'a' } }] }],
          }),
        ],
        probes: [
          { from: 'x/a', to: 'x/b', port: 80, expect: 'allow' },
          { from: 'x/c', to: 'x/b', port: 80, expect: 'deny' },
          { from: 'x/c', to: 'x/d', port: 80, expect: 'allow' },
          { from: 'x/a', to: 'x/d', port: 80, expect: 'deny' },
          { from: 'x/b', to: 'x/a', port: 80, expect: 'allow' },
          { from: 'x/d', to: 'x/c', port: 80, expect: 'allow' },
          { from: 'world:10.244.200.10', to: 'x/b', port: 80, expect: 'deny' },
        ],
      });
      const c = await clusterUp(file, o);
      const report = await runClusterProbes(c, 1000);
      expect(report.results.filter((r) => r.mismatch)).toEqual([]);
      expect(report.results.map((r) => `${r.from} ${r.to} ${r.measured}`)).toContain('x/a@n1 x/b@n2 allow');
      expect(new Set(report.pods.map((p) => p.node))).toEqual(new Set(['n1', 'n2']));
      // every pod's identity is the same number on both nodes (cluster-wide identities)
      const s1 = nodeState(c, 'n1');
      const s2 = nodeState(c, 'n2');
      expect(s1.podCidr).not.toBe(s2.podCidr);
      // native routing: n1 routes n2's pod CIDR via n2's underlay address (ip route as the oracle)
      expect(routes(s1.nodeNetns)).toContain(`${s2.podCidr} via ${c.nodes[1]!.address} dev ul0`);
      expect(routes(s2.nodeNetns)).toContain(`${s1.podCidr} via ${c.nodes[0]!.address} dev ul0`);
      // remote-node: n1's node namespace reaches b (allowed for remote-node only; as world it would drop)
      const b = s2.pods['x/b']!;
      const l = await startListener(`/run/netns/${b.netns}`, 'x/b', [{ port: 80, protocol: 'TCP' }]);
      try {
        const [fromN1] = await runProbes(`/run/netns/${s1.nodeNetns}`, [
          { id: 0, host: b.ip, port: 80, protocol: 'TCP', timeoutMs: 1500 },
        ]);
        expect(fromN1!.result).toBe('connected');
        const [fromWorld] = await runProbes(`/run/netns/${s2.worldNetns}`, [
          { id: 0, host: b.ip, port: 80, protocol: 'TCP', timeoutMs: 800, localAddress: '10.244.200.10' },
        ]);
        expect(fromWorld!.result).toBe('timeout');
      } finally {
        await l.close();
      }
      const vxlanTx = (netns: string) => {
        const l = JSON.parse(
          execFileSync('ip', ['-s', '-j', '-n', netns, 'link', 'show', 'dp_vxlan'], { encoding: 'utf8' }),
        );
        return Number(l[0].stats64.tx.packets);
      };
      const mtu = (netns: string) =>
        JSON.parse(execFileSync('ip', ['-j', '-n', netns, 'link', 'show', 'eth0'], { encoding: 'utf8' }))[0]
          .mtu;
      if (mode === 'tunnel') {
        // pods' packets to the other node went through the VXLAN device; pods leave room for the encapsulation
        expect(vxlanTx(s1.nodeNetns)).toBeGreaterThan(0);
        expect(vxlanTx(s2.nodeNetns)).toBeGreaterThan(0);
        expect(mtu(b.netns)).toBe(1450);
      } else {
        expect(() => vxlanTx(s1.nodeNetns)).toThrow();
        expect(mtu(b.netns)).toBe(1500);
      }
      const st = clusterStatus(o);
      expect(st.nodes.map((n) => [n.record.name, n.alive, n.status?.remotePods.length])).toEqual([
        ['n1', true, 2],
        ['n2', true, 2],
      ]);
      await clusterDown(o);
      expect(existsSync(o.stateDir)).toBe(false);
    });

  it('kill -9 of a node: others keep forwarding, drop its routes and pods after the lease, and it comes back with its flows', async (ctx) => {
    requireRoot(ctx);
    const o = options({ ttlSeconds: 2 });
    const file = scenarioFile({
      nodes: ['n1', 'n2', 'n3'],
      namespaces: { x: {} },
      pods: [pod('a', 'n1', '10.244.1.10'), pod('b', 'n2', '10.244.2.10'), pod('c', 'n3', '10.244.3.10')],
      probes: [],
    });
    const c = await clusterUp(file, o);
    const s1 = nodeState(c, 'n1');
    const s2 = nodeState(c, 'n2');
    const s3 = nodeState(c, 'n3');
    const a = s1.pods['x/a']!;
    const lb = await startListener(`/run/netns/${s2.pods['x/b']!.netns}`, 'x/b', [
      { port: 80, protocol: 'TCP' },
    ]);
    const lc = await startListener(`/run/netns/${s3.pods['x/c']!.netns}`, 'x/c', [
      { port: 80, protocol: 'TCP' },
    ]);
    const steady = longFlow(`/run/netns/${a.netns}`, s2.pods['x/b']!.ip); // n1 → n2 throughout
    const toC = longFlow(`/run/netns/${a.netns}`, s3.pods['x/c']!.ip); // n1 → n3, established
    try {
      expect(await steady.grows(100)).toBe(true);
      expect(await toC.grows(100)).toBe(true);
      // a crash and a quick restart: n3 restores its pod, the established flow carries on
      await killNode(o, 'n3');
      await restartNode(o, 'n3');
      expect(nodeState(readCluster(o), 'n3').pods['x/c']!.ip).toBe(s3.pods['x/c']!.ip);
      expect(await toC.grows(200)).toBe(true);
      // a crash that lasts: after the lease n1 drops n3's route and pod
      await killNode(o, 'n3');
      const n1 = readCluster(o).nodes[0]!;
      await until(() => !routes(s1.nodeNetns).includes(s3.podCidr), 15_000);
      // The status file is written on a coalescing timer after the change: wait for it, then check it exactly.
      const remotePods = (): string[] =>
        JSON.parse(readFileSync(join(n1.stateDir, 'node.json'), 'utf8')).remotePods;
      await until(() => !remotePods().includes('x/c'), 5_000);
      expect(remotePods()).toEqual(['x/b']);
      const ipcache = (): string[] => {
        const dp = Datapath.attachPinned(s1.pinDir);
        try {
          return dp.ipcache.dump().map(([k]) => k);
        } finally {
          dp.close();
        }
      };
      await until(() => !ipcache().includes(`${s3.pods['x/c']!.ip}/32`), 5_000);
      expect(ipcache()).toContain(`${s2.pods['x/b']!.ip}/32`);
      expect(await steady.grows(200)).toBe(true); // n1 → n2 never stopped
      // n3 comes back: its pod is known again and reachable
      await restartNode(o, 'n3');
      const [again] = await runProbes(`/run/netns/${a.netns}`, [
        { id: 0, host: s3.pods['x/c']!.ip, port: 80, protocol: 'TCP', timeoutMs: 2000 },
      ]);
      expect(again!.result).toBe('connected');
      expect(steady.failed).toBe('');
      expect(alive(steady.child.pid!)).toBe(true);
    } finally {
      steady.child.kill();
      toC.child.kill();
      await lb.close();
      await lc.close();
    }
  });

  it('etcd stopped for 10 s: nodes keep forwarding, reconnect, and no CIDR, IP or identity is duplicated', async (ctx) => {
    requireRoot(ctx);
    const etcd = await startEtcd();
    etcds.push(etcd);
    const o = options({ etcd: [etcd.endpoint], ttlSeconds: 3 });
    const file = scenarioFile({
      nodes: ['n1', 'n2'],
      namespaces: { x: {} },
      pods: [pod('a', 'n1', '10.244.1.10'), pod('b', 'n2', '10.244.2.10'), pod('e', 'n2', '10.244.2.11')],
      probes: [],
    });
    const c = await clusterUp(file, o);
    const s1 = nodeState(c, 'n1');
    const s2 = nodeState(c, 'n2');
    const lb = await startListener(`/run/netns/${s2.pods['x/b']!.netns}`, 'x/b', [
      { port: 80, protocol: 'TCP' },
    ]);
    const flow = longFlow(`/run/netns/${s1.pods['x/a']!.netns}`, s2.pods['x/b']!.ip);
    try {
      expect(await flow.grows(100)).toBe(true);
      await etcd.kill();
      const t = Date.now();
      while (Date.now() - t < 10_000) expect(await flow.grows(20, 3_000)).toBe(true);
      // a new connection across nodes on last-known state
      const [during] = await runProbes(`/run/netns/${s1.pods['x/a']!.netns}`, [
        { id: 0, host: s2.pods['x/b']!.ip, port: 80, protocol: 'TCP', timeoutMs: 2000 },
      ]);
      expect(during!.result).toBe('connected');
      await etcd.restart();
      // the nodes resync: a crash of n2 after the outage still reaches n1 through the watch
      await new Promise((r) => setTimeout(r, 4_000));
      const dump = execFileSync('etcdctl', ['--endpoints', etcd.endpoint, 'get', '--prefix', 'datapath/c/'], {
        encoding: 'utf8',
      }).split('\n');
      const values = (prefix: string) => {
        const out: string[] = [];
        for (let i = 0; i + 1 < dump.length; i += 2)
          if (dump[i]!.startsWith(`datapath/c/${prefix}`)) out.push(dump[i + 1]!);
        return out;
      };
      const cidrs = values('registry/nodes/').map((v) => JSON.parse(v).podCidrs.ipv4);
      expect(cidrs).toHaveLength(2);
      expect(new Set(cidrs).size).toBe(2);
      const ips = values('ipcache/').map((v) => JSON.parse(v).ip);
      expect(new Set(ips).size).toBe(ips.length);
      expect(ips).toHaveLength(5); // 3 pods + 2 router addresses
      const ids = values('identities/id/').map((v) => v);
      expect(new Set(ids).size).toBe(ids.length);
      await killNode(o, 'n2');
      await until(() => !routes(s1.nodeNetns).includes(s2.podCidr), 15_000);
      await restartNode(o, 'n2');
      expect(await flow.grows(100, 10_000)).toBe(true);
    } finally {
      flow.child.kill();
      await lb.close();
    }
  });

  it('`cluster up --etcd-members 3`, the leader killed: probe never stops, a later pod gets IP and identity and is reached from the other node; down stops every member', async (ctx) => {
    requireRoot(ctx);
    // TTL 5 s: a leader election under load must not end the nodes' leases
    const o = options({ etcdMembers: 3, mode: 'tunnel', ttlSeconds: 5 });
    // n1 is an agent process of the cluster tool; n2 runs in this process, so the test can add a pod to it
    const c = await clusterUp(
      scenarioFile({
        nodes: ['n1'],
        namespaces: { x: {} },
        pods: [pod('a', 'n1', '10.244.1.10')],
        probes: [],
      }),
      o,
    );
    // three members on loopback, each with its own data dir; the node agents got every endpoint
    const members = c.etcd.members ?? [];
    expect(members).toHaveLength(3);
    expect(c.etcd.endpoints).toEqual(members.map((m) => m.endpoint));
    expect(new Set(members.map((m) => m.dataDir)).size).toBe(3);
    expect(members.every((m) => existsSync(m.dataDir) && alive(m.pid))).toBe(true);
    expect(readFileSync(`/proc/${c.nodes[0]!.pid}/cmdline`, 'utf8').split('\0')).toContain(
      c.etcd.endpoints.join(','),
    );
    const n2 = await ClusterNodeAgent.start({
      name: 'n2',
      prefix: `${o.prefix}2`,
      stateDir: join(o.stateDir, 'n2'),
      etcd: c.etcd.endpoints,
      etcdPrefix: c.etcdPrefix,
      underlay: underlayAddress(1),
      fabric: c.fabric,
      mode: 'tunnel',
      ttlSeconds: 5,
    });
    const listeners: { close(): Promise<void> }[] = [];
    const listen = async (netns: string, name: string) =>
      listeners.push(await startListener(`/run/netns/${netns}`, name, [{ port: 80, protocol: 'TCP' }]));
    let flow: ReturnType<typeof longFlow> | undefined;
    try {
      const b = await n2.addPod({ namespace: 'x', name: 'b', labels: { app: 'b' } });
      await listen(b.netns, 'x/b');
      const n1 = c.nodes[0]!;
      const remotePods = (): string[] => readNodeStatus(n1)?.remotePods ?? [];
      await until(() => remotePods().includes('x/b'), 15_000);
      const a = nodeState(c, 'n1').pods['x/a']!;
      flow = longFlow(`/run/netns/${a.netns}`, b.ip); // n1 → n2 through the VXLAN tunnel, throughout
      expect(await flow.grows(100)).toBe(true);

      const leader = await etcdLeader(c.etcd.endpoints);
      process.kill(members[leader]!.pid, 'SIGKILL');
      const killedAt = Date.now();
      await until(() => !alive(members[leader]!.pid), 5_000);
      const status = clusterStatus(o);
      expect(status.etcdMembers).toEqual({ alive: 2, total: 3 });
      expect(status.etcdAlive).toBe(true);
      // the probe never stops: it keeps growing in every 3 s window for 6 s after the kill
      while (Date.now() - killedAt < 6_000) expect(await flow.grows(20, 3_000)).toBe(true);

      // a pod added after the kill: a new label set (a new cluster-wide identity) and an IP from n2's CIDR
      const d = await n2.addPod({ namespace: 'x', name: 'd', labels: { app: 'd' } });
      expect(d.ip.startsWith(n2.self.podCidrs.ipv4!.replace(/\.0\/24$/, '.'))).toBe(true);
      expect(d.identity).toBeGreaterThan(0);
      expect(d.identity).not.toBe(b.identity);
      await listen(d.netns, 'x/d');
      // propagation continues: n1 learns d and reaches it across the tunnel
      await until(() => remotePods().includes('x/d'), 15_000);
      await until(() => {
        const dp = Datapath.attachPinned(nodeState(c, 'n1').pinDir);
        try {
          return dp.ipcache.dump().some(([k]) => k === `${d.ip}/32`);
        } finally {
          dp.close();
        }
      }, 5_000);
      const [toD] = await runProbes(`/run/netns/${a.netns}`, [
        { id: 0, host: d.ip, port: 80, protocol: 'TCP', timeoutMs: 2000 },
      ]);
      expect(toD!.result).toBe('connected');
      expect(await flow.grows(100)).toBe(true);
      expect(flow.failed).toBe('');

      // no duplicate node CIDR, IP or identity in the store (read from a surviving member)
      const live = c.etcd.endpoints.filter((_, i) => i !== leader);
      const dump = execFileSync('etcdctl', ['--endpoints', live.join(','), 'get', '--prefix', c.etcdPrefix], {
        encoding: 'utf8',
      }).split('\n');
      const values = (prefix: string) => {
        const out: string[] = [];
        for (let i = 0; i + 1 < dump.length; i += 2)
          if (dump[i]!.startsWith(`${c.etcdPrefix}${prefix}`)) out.push(dump[i + 1]!);
        return out;
      };
      const cidrs = values('registry/nodes/').map((v) => JSON.parse(v).podCidrs.ipv4);
      expect(cidrs.sort()).toEqual([nodeState(c, 'n1').podCidr, n2.self.podCidrs.ipv4].sort());
      const ips = values('ipcache/').map((v) => JSON.parse(v).ip);
      expect(new Set(ips).size).toBe(ips.length);
      expect(ips).toHaveLength(5); // a, b, d + 2 router addresses
      expect(ips).toEqual(expect.arrayContaining([a.ip, b.ip, d.ip]));
      const ids = values('identities/id/');
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      flow?.child.kill();
      for (const l of listeners) await l.close();
      await n2.down();
    }
    // down stops every member it started and removes their data dirs
    await clusterDown(o);
    expect(members.filter((m) => alive(m.pid))).toEqual([]);
    expect(members.filter((m) => existsSync(m.dataDir))).toEqual([]);
  });

  it("a dead node's pod CIDR goes back to the pool after its lease and the grace period, a live node's never", async (ctx) => {
    requireRoot(ctx);
    const o = options({ ttlSeconds: 1, cidrGraceSeconds: 1 });
    const c = await clusterUp(
      scenarioFile({
        nodes: ['n1'],
        namespaces: { x: {} },
        pods: [pod('a', 'n1', '10.244.1.10')],
        probes: [],
      }),
      o,
    );
    // two more nodes straight on etcd (no namespaces): one stays alive, one dies (SIGKILL: keep-alives stop)
    const store = new EtcdStore({ endpoints: c.etcd.endpoints, prefix: c.etcdPrefix });
    const pool = await StoreClusterPool.open(store, CLUSTER_POOL);
    const addNode = async (name: string, address: string) => {
      const session = await NodeSession.open(store, { node: name, ttlSeconds: 1 });
      const registry = await NodeRegistry.open(session, pool);
      const me = await registry.register({ address, bootId: name });
      await registry.close();
      return { session, cidr: me.podCidrs.ipv4! };
    };
    try {
      const live = await addNode('sim-live', '198.18.0.60');
      const dead = await addNode('sim-dead', '198.18.0.61');
      const n1Cidr = nodeState(c, 'n1').podCidr;
      const owners = () => new Map([...pool.allocations()].map(([n, a]) => [n, a.ipv4]));
      expect(owners()).toEqual(
        new Map([
          ['n1', n1Cidr],
          ['sim-live', live.cidr],
          ['sim-dead', dead.cidr],
        ]),
      );
      const killed = Date.now();
      dead.session.abandon();
      await until(() => !owners().has('sim-dead'), 20_000);
      // not before its lease (1 s, etcd's minimum may make it 2) and the grace period (1 s) were over
      expect(Date.now() - killed).toBeGreaterThanOrEqual(2_000);
      expect(owners().get('sim-live')).toBe(live.cidr);
      expect(owners().get('n1')).toBe(n1Cidr);
      // the block is free in the store too (no owner key left for it)
      expect(pool.owner(dead.cidr)).toBeUndefined();
      const ipam = (await store.list('ipam/')).entries;
      expect(
        ipam.filter((e) => e.value === dead.cidr || e.key.endsWith(dead.cidr.replace('/', '_'))),
      ).toEqual([]);
      await live.session.close();
    } finally {
      await pool.close();
      await store.close();
    }
  });

  it('bad input: unknown node, unreachable etcd, bad etcd member count, clashing name, address or pod CIDR: typed errors, nothing made', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const unknownNode = scenarioFile({
      nodes: ['n1'],
      namespaces: { x: {} },
      pods: [pod('a', 'n9', '10.244.1.10')],
      probes: [],
    });
    await expect(clusterUp(unknownNode, o)).rejects.toMatchObject({
      name: 'AgentError',
      reason: 'InvalidScenario',
    });
    expect(existsSync(o.stateDir)).toBe(false);
    await expect(clusterUp(unknownNode, { ...o, etcd: ['http://127.0.0.1:9'] })).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    const ok = scenarioFile({
      nodes: ['n1'],
      namespaces: { x: {} },
      pods: [pod('a', 'n1', '10.244.1.10')],
      probes: [],
    });
    await expect(clusterUp(ok, { ...o, etcd: ['http://127.0.0.1:9'] })).rejects.toMatchObject({
      code: 'Unavailable',
      reason: 'StoreUnavailable',
    });
    expect(existsSync(o.stateDir)).toBe(false);
    // --etcd-members: 1–9, and only for the local etcd
    for (const bad of [
      { etcdMembers: 0 },
      { etcdMembers: 10 },
      { etcdMembers: 3, etcd: ['http://127.0.0.1:9'] },
    ])
      await expect(clusterUp(ok, { ...o, ...bad })).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(existsSync(o.stateDir)).toBe(false);
    const c = await clusterUp(ok, o);
    const n1 = c.nodes[0]!;
    const base = {
      etcd: c.etcd.endpoints,
      etcdPrefix: c.etcdPrefix,
      fabric: c.fabric,
      mode: 'native' as const,
      ttlSeconds: 2,
    };
    const intruder = (name: string, underlay: string, podCidr?: string) =>
      ClusterNodeAgent.start({
        ...base,
        name,
        underlay,
        prefix: `${o.prefix}9`,
        stateDir: join(o.stateDir, 'intruder'),
        podCidr,
      });
    await expect(intruder('n1', '198.18.0.50')).rejects.toMatchObject({
      code: 'AlreadyExists',
      reason: 'ClusterConflict',
    });
    await expect(intruder('n9', n1.address)).rejects.toMatchObject({
      code: 'AlreadyExists',
      reason: 'ClusterConflict',
    });
    const cidr = nodeState(c, 'n1').podCidr;
    await expect(intruder('n9', '198.18.0.50', cidr)).rejects.toMatchObject({ code: 'AlreadyExists' });
    // overlapping without being equal: a /25 inside n1's /24, a /16 around it
    const inside = cidr.replace(/\.0\/24$/, '.128/25');
    expect(inside).not.toBe(cidr);
    await expect(intruder('n9', '198.18.0.50', inside)).rejects.toMatchObject({
      code: 'AlreadyExists',
      reason: 'ClusterConflict',
      message: expect.stringContaining(`overlaps ${cidr}`),
    });
    await expect(intruder('n9', '198.18.0.50', '10.244.0.0/16')).rejects.toMatchObject({
      reason: 'ClusterConflict',
      message: expect.stringContaining('overlaps'),
    });
    // a node whose etcd does not answer: a typed error, nothing made (no namespace, pin or state)
    await expect(
      ClusterNodeAgent.start({
        ...base,
        etcd: ['http://127.0.0.1:9'],
        name: 'n9',
        underlay: '198.18.0.50',
        prefix: `${o.prefix}9`,
        stateDir: join(o.stateDir, 'intruder'),
      }),
    ).rejects.toMatchObject({ code: 'Unavailable', reason: 'StoreUnavailable' });
    expect(existsSync(join(o.stateDir, 'intruder'))).toBe(false);
    expect(scanLeaks(`${o.prefix}9`)).toEqual({ netns: [], links: [], pins: [] });
    // the cluster is untouched: n1 still registered and ready
    expect(clusterStatus(o).nodes[0]!.status?.ready).toBe(true);
    const dump = execFileSync(
      'etcdctl',
      ['--endpoints', c.etcd.endpoints[0]!, 'get', '--prefix', '--keys-only', c.etcdPrefix],
      {
        encoding: 'utf8',
      },
    );
    expect(dump).not.toContain('n9');
  });
});
