/**
 * The agent's events, monitor, observer and metrics with real packets between pods (namespaces the
 * agent creates under the test's unique prefix, removed after each test, leak-checked).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PolicyObject, Scenario } from '@datapath/policy';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { Datapath } from '../src/datapath.js';
import { type AgentEvent, decodeRecord, EventNamer } from '../src/events.js';
import { reasonName } from '../src/maps.js';
import { get, observe } from '../src/monitor.js';
import { runScenario } from '../src/run.js';
import { loadState, statePath } from '../src/state.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let made: { prefix: string; stateDir: string }[] = [];
const children: ChildProcess[] = [];

function options(extra: Partial<AgentOptions> = {}): AgentOptions & { prefix: string; stateDir: string } {
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agentev-'));
  rmSync(stateDir, { recursive: true });
  made.push({ prefix, stateDir });
  return { name: prefix, prefix, stateDir, podCidr: '10.244.2.0/24', ...extra };
}

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const { prefix, stateDir } of made) {
    const leaks = scanLeaks(prefix);
    for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
    expect(leaks).toEqual({ netns: [], links: [], pins: [] });
  }
  made = [];
});

/** The agent CLI as a child process (as an operator runs it). */
function cli(o: { stateDir: string }, args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args, '--state-dir', o.stateDir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    /** Resolves once stdout or stderr contains `text`. */
    async waitFor(text: string, ms = 20_000): Promise<void> {
      const t0 = Date.now();
      while (!out.includes(text) && !err.includes(text)) {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${err}`);
        if (Date.now() - t0 > ms) throw new Error(`no "${text}" after ${ms} ms: ${out} ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

const allow80 = (ns: string): PolicyObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-80', namespace: ns },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }],
  },
});

async function twoPods(o: AgentOptions): Promise<Agent> {
  const agent = await Agent.start(o, {
    namespaces: { t: {} },
    policies: [allow80('t')],
    enforcement: 'default',
  });
  try {
    agent.addPods([
      { namespace: 't', name: 'server', labels: { app: 'server' } },
      { namespace: 't', name: 'client', labels: { app: 'client' } },
    ]);
    return agent;
  } catch (err) {
    agent.destroy();
    throw err;
  }
}

/** One TCP probe; 800 ms is below the first SYN retransmission (1 s): one packet per denied probe. */
async function probe(agent: Agent, from: string, to: string, port: number): Promise<string> {
  const [o] = await runProbes(agent.resolve(from).netnsPath, [
    { id: 0, host: agent.resolve(to).ip, port, protocol: 'TCP', timeoutMs: 800 },
  ]);
  return o!.result;
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `name{labels} value` samples of one metric from the text exposition. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

describe('agent events (real packets)', () => {
  it('a denied probe gives exactly one drop event with the policy reason and one policy-verdict event', async (ctx) => {
    requireRoot(ctx);
    const agent = await twoPods(options());
    const ring = agent.datapath.openEvents();
    const namer = new EventNamer(agent.state as never);
    const drain = () => {
      const out: AgentEvent[] = [];
      ring.read((view, off, len) => {
        const raw = decodeRecord(view, off, len);
        if (raw !== undefined) out.push(namer.describe(raw));
      });
      return out;
    };
    try {
      const l = await startListener(agent.resolve('t/server').netnsPath, 't/server', [
        { port: 80, protocol: 'TCP' },
      ]);
      try {
        drain();
        const server = agent.resolve('t/server').ip;
        const client = agent.resolve('t/client').ip;
        expect(await probe(agent, 't/client', 't/server', 81)).toBe('timeout');
        const denied = drain();
        const flow = {
          source: expect.objectContaining({ ip: client, name: 't/client' }),
          destination: expect.objectContaining({ ip: server, port: 81, name: 't/server' }),
          protocol: 'TCP',
        };
        expect(denied.filter((e) => e.type === 'drop')).toEqual([
          expect.objectContaining({
            ...flow,
            reason: 'policy-denied',
            endpoint: expect.objectContaining({ pod: 't/server', direction: 'ingress' }),
          }),
        ]);
        expect(denied.filter((e) => e.type === 'policy-verdict')).toEqual([
          expect.objectContaining({ ...flow, verdict: 'denied', match: 'none', reason: 'policy-denied' }),
        ]);
        expect(denied).toHaveLength(2);
        // An allowed connection: one verdict for the flow (L3/L4 entry at the server), no drop, no trace.
        expect(await probe(agent, 't/client', 't/server', 80)).toBe('connected');
        const allowed = drain();
        expect(allowed).toEqual([
          expect.objectContaining({
            type: 'policy-verdict',
            verdict: 'allowed',
            match: 'l3-l4',
            destination: expect.objectContaining({ ip: server, port: 80 }),
          }),
        ]);
        expect(agent.datapath.eventsLostTotal()).toBe(0n);
      } finally {
        await l.close();
      }
    } finally {
      ring.close();
      agent.destroy();
    }
  });

  it('`agent monitor --json` prints parseable events matching the probes of a scenario', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const scenario: Scenario = {
      namespaces: { shop: { labels: {} }, ops: { labels: {} } },
      enforcement: 'default',
      pods: [
        {
          namespace: 'shop',
          name: 'server',
          labels: { app: 'server' },
          ip: '10.244.2.10',
          ports: [{ port: 80 }],
        },
        { namespace: 'shop', name: 'client', labels: { app: 'client' }, ip: '10.244.2.11' },
        { namespace: 'ops', name: 'probe', labels: { app: 'probe' }, ip: '10.244.2.12' },
      ],
      policies: [allow80('shop')],
      probes: [
        { from: 'shop/client', to: 'shop/server', port: 80, expect: 'allow' },
        { from: 'shop/client', to: 'shop/server', port: 81, expect: 'deny' },
        { from: 'ops/probe', to: 'shop/server', port: 80, expect: 'deny' },
        { from: 'shop/server', to: 'ops/probe', port: 9000, expect: 'allow' },
      ],
    } as Scenario;
    const report = await runScenario(scenario, { ...o, keep: true, timeoutMs: 800 });
    try {
      expect(report.mismatches).toBe(0);
      // The records wait in the pinned ring: the monitor started afterwards reads all of them.
      const mon = cli(o, ['monitor', '--json']);
      await mon.waitFor('Ctrl-C');
      let last = '';
      while (mon.out() !== last) {
        last = mon.out();
        await new Promise((r) => setTimeout(r, 500));
      }
      mon.child.kill('SIGINT');
      expect(await mon.exited).toBe(0);
      const events = mon
        .out()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as AgentEvent);
      const ip = (key: string) => report.pods.find((p) => p.key === key)!.ip;
      for (const p of report.results) {
        const same = (e: AgentEvent) =>
          e.source.ip === ip(p.from) &&
          e.destination.ip === ip(p.to) &&
          e.destination.port === p.port &&
          e.protocol === 'TCP';
        const verdicts = events.filter((e) => e.type === 'policy-verdict' && same(e));
        const drops = events.filter((e) => e.type === 'drop' && same(e));
        if (p.measured === 'allow') {
          expect(
            verdicts.map((e) => e.verdict),
            `${p.from} → ${p.to}:${p.port}`,
          ).toEqual(['allowed']);
          expect(drops).toEqual([]);
        } else {
          expect(verdicts.length, `${p.from} → ${p.to}:${p.port}`).toBeGreaterThanOrEqual(1);
          expect(verdicts.every((e) => e.verdict === 'denied')).toBe(true);
          expect(drops.length).toBe(verdicts.length);
          expect(
            drops.every(
              (e) => e.reason === 'policy-denied' && e.source.name === p.from && e.destination.name === p.to,
            ),
          ).toBe(true);
        }
      }
      // Nothing but the probes' flows.
      const probed = new Set(report.results.map((p) => `${ip(p.from)} ${ip(p.to)}:${p.port}`));
      expect(
        events.filter((e) => !probed.has(`${e.source.ip} ${e.destination.ip}:${e.destination.port}`)),
      ).toEqual([]);
      // --type and --pod: only the drops that concern ops/probe, live.
      const agent = await Agent.restore(o);
      try {
        const only = cli(o, ['monitor', '--json', '--type', 'drop', '--pod', 'ops/probe', '--count', '1']);
        await only.waitFor('Ctrl-C');
        expect(await probe(agent, 'shop/client', 'shop/server', 81)).toBe('timeout'); // not ops/probe's
        expect(await probe(agent, 'ops/probe', 'shop/server', 80)).toBe('timeout');
        expect(await only.exited).toBe(0);
        const [line, ...more] = only.out().trim().split('\n');
        expect(more).toEqual([]);
        expect(JSON.parse(line!)).toMatchObject({
          type: 'drop',
          source: { name: 'ops/probe' },
          destination: { port: 80 },
        });
      } finally {
        agent.destroy();
      }
    } catch (err) {
      (await Agent.restore(o).catch(() => undefined))?.destroy();
      throw err;
    }
  });

  it('`agent serve`: metrics equal the datapath map counters; observe filters the flows; monitor streams from it', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const agent = await twoPods(o);
    const l = await startListener(agent.resolve('t/server').netnsPath, 't/server', [
      { port: 80, protocol: 'TCP' },
    ]);
    try {
      const serverId = agent.pods().find((p) => p.key === 't/server')!.lxcId;
      agent.setPolicies([allow80('t')]); // timed into the policy-apply histogram (no change)
      const serve = cli(o, ['serve', '--metrics-port', '0']);
      await serve.waitFor('/metrics\n');
      const port = Number(/127\.0\.0\.1:(\d+)\/metrics/.exec(serve.out())![1]);
      expect(await probe(agent, 't/client', 't/server', 80)).toBe('connected');
      expect(await probe(agent, 't/client', 't/server', 80)).toBe('connected');
      expect(await probe(agent, 't/client', 't/server', 81)).toBe('timeout');
      // The observer reads the ring on the event loop: wait for the three verdicts.
      let text = '';
      for (let i = 0; i < 100; i++) {
        text = await scrape(port);
        if (samples(text, 'datapath_policy_verdicts_total').reduce((a, x) => a + x.value, 0) >= 3) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const verdicts = samples(text, 'datapath_policy_verdicts_total');
      expect(verdicts.filter((x) => x.labels.verdict === 'allowed').reduce((a, x) => a + x.value, 0)).toBe(2);
      expect(verdicts.filter((x) => x.labels.verdict === 'denied')).toEqual([
        {
          labels: {
            endpoint: String(serverId),
            pod: 't/server',
            direction: 'ingress',
            verdict: 'denied',
            match: 'none',
          },
          value: 1,
        },
      ]);
      // Counters: the scrape against the maps read just before and after it (pods may send packets of
      // their own, e.g. IPv6 router solicitations, dropped as unsupported-l3: retry until both reads agree).
      const key = (r: string, e: number | string, d: string) => `${r} ${e} ${d}`;
      let same = false;
      for (let i = 0; i < 5 && !same; i++) {
        const before = agent.datapath.counters();
        text = await scrape(port);
        const after = agent.datapath.counters();
        same =
          JSON.stringify(before, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) ===
          JSON.stringify(after, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
        if (!same) continue;
        const want = (fwd: boolean, field: 'packets' | 'bytes') =>
          Object.fromEntries(
            after
              .filter((c) => (fwd ? c.reason === 0 : c.reason > 1))
              .map((c) => [
                key(fwd ? '' : reasonName(c.reason), c.lxcId, c.dir === 1 ? 'ingress' : 'egress'),
                Number(c[field]),
              ]),
          );
        const got = (name: string) =>
          Object.fromEntries(
            samples(text, name)
              .filter((x) => x.value > 0)
              .map((x) => [key(x.labels.reason ?? '', x.labels.endpoint!, x.labels.direction!), x.value]),
          );
        expect(got('datapath_drop_count_total')).toEqual(want(false, 'packets'));
        expect(got('datapath_drop_bytes_total')).toEqual(want(false, 'bytes'));
        expect(got('datapath_forward_count_total')).toEqual(want(true, 'packets'));
        expect(got('datapath_forward_bytes_total')).toEqual(want(true, 'bytes'));
        expect(Object.keys(got('datapath_drop_count_total'))).toContain(
          key('policy-denied', serverId, 'ingress'),
        );
      }
      expect(same).toBe(true);
      const fill = (name: string, map: string) =>
        samples(text, name).find((x) => x.labels.map === map)?.value;
      expect(fill('datapath_map_entries', 'endpoints')).toBe(agent.datapath.endpoints.count());
      expect(fill('datapath_map_entries', 'endpoints')).toBe(2);
      expect(fill('datapath_map_max_entries', 'ct4')).toBe(65536);
      expect(fill('datapath_map_pressure', 'lxc')).toBe(2 / 4096);
      expect(samples(text, 'datapath_events_lost_total')).toEqual([{ labels: {}, value: 0 }]);
      expect(samples(text, 'datapath_agent_pod_setup_seconds_count')).toEqual([{ labels: {}, value: 2 }]);
      expect(samples(text, 'datapath_agent_policy_apply_seconds_count')).toEqual([{ labels: {}, value: 1 }]);
      // Hubble-like flows, filtered.
      const obs = cli(o, ['observe', '--json', '--verdict', 'DROPPED', '--port', '81']);
      expect(await obs.exited).toBe(0);
      const flows = JSON.parse(obs.out()) as { type: string; flowVerdict: string }[];
      expect(flows.map((f) => [f.type, f.flowVerdict])).toEqual([
        ['policy-verdict', 'DROPPED'],
        ['drop', 'DROPPED'],
      ]);
      const table = cli(o, ['observe', '--from', 't/client', '--to', 't/server', '--verdict', 'forwarded']);
      expect(await table.exited).toBe(0);
      const rows = table.out().trim().split('\n');
      expect(rows[0]).toMatch(/^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY$/);
      expect(rows.slice(1).map((r) => r.split(/\s{2,}/).slice(2, 5))).toEqual([
        ['t/server:80', 'policy-verdict', 'FORWARDED'],
        ['t/server:80', 'policy-verdict', 'FORWARDED'],
      ]);
      // A monitor while the observer runs streams from it (the ring has one consumer).
      const mon = cli(o, ['monitor', '--type', 'drop', '--count', '1']);
      await mon.waitFor('streaming from agent serve');
      expect(await probe(agent, 't/client', 't/server', 82)).toBe('timeout');
      expect(await mon.exited).toBe(0);
      expect(mon.out()).toMatch(
        /^drop \(policy-denied\) ingress of endpoint \d+ \(t\/server\), identity \d+->\d+: [\d.]+:\d+ \(t\/client\) -> [\d.]+:82 \(t\/server\) TCP, \d+ bytes\n$/,
      );
      serve.child.kill('SIGINT');
      expect(await serve.exited).toBe(0);
      expect(existsSync(join(o.stateDir, 'observer.sock'))).toBe(false);
    } finally {
      await l.close();
      agent.destroy();
    }
  });

  it('`agent serve` names the events of an endpoint made through its API from its own state, not the state files; an IPv4-only endpoint sends no IPv6 of its own', async (ctx) => {
    requireRoot(ctx);
    const o = options({ podCidr6: 'fd00:10:244:2::/112' });
    (await Agent.start(o, { namespaces: {}, policies: [], enforcement: 'default' })).close();
    const serve = cli(o, ['serve']);
    const [ns, ns4] = [`${o.prefix}-named`, `${o.prefix}-v4`];
    for (const n of [ns, ns4]) execFileSync('ip', ['netns', 'add', n]);
    const client = new AgentClient({ socketPath: join(o.stateDir, 'api.sock') });
    const snapshot = readFileSync(statePath(o.stateDir), 'utf8');
    try {
      await serve.waitFor('/metrics /flows /events');
      // The state files go unreadable: an observer that read them again could not name the new endpoints.
      writeFileSync(statePath(o.stateDir), 'not the state');
      const v4 = await client.createEndpoint({
        containerId: 'v4only1',
        netns: `/run/netns/${ns4}`,
        podNamespace: 'shop',
        podName: 'v4',
      });
      const ep = await client.createEndpoint({
        containerId: 'named1',
        netns: `/run/netns/${ns}`,
        podNamespace: 'shop',
        podName: 'named',
        families: [4, 6],
      });
      // The dual-stack pod's own IPv6 (link-local address: MLD reports, router solicitations) is dropped as
      // unsupported L3 (the datapath forwards IPv4 only): events of its endpoint, which the observer had
      // never seen.
      const unsupported = async (id: number) =>
        (await observe(o.stateDir, {})).flows.filter(
          (f) => f.endpoint?.id === id && f.reason === 'unsupported-l3',
        );
      let flows = await unsupported(ep.id);
      for (let i = 0; i < 150 && flows.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        flows = await unsupported(ep.id);
      }
      expect(flows.length).toBeGreaterThan(0);
      expect(flows.map((f) => f.endpoint?.pod)).toEqual(flows.map(() => 'shop/named'));
      // The IPv4-only pod, made before it: its interface has no link-local address and sent nothing the
      // datapath dropped (without IPv6 address generation mode none it sends what the dual-stack one does).
      await new Promise((r) => setTimeout(r, 1500));
      expect(await unsupported(v4.id)).toEqual([]);
      const addrs = (n: string) =>
        JSON.parse(
          execFileSync('ip', ['-n', n, '-j', '-6', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }),
        ) as {
          addr_info: { local: string }[];
        }[];
      expect(addrs(ns4).flatMap((a) => a.addr_info)).toEqual([]);
      expect(addrs(ns).flatMap((a) => a.addr_info.map((i) => i.local))).toContainEqual(
        expect.stringMatching(/^fe80:/),
      );
    } finally {
      writeFileSync(statePath(o.stateDir), snapshot);
      client.close();
      serve.child.kill('SIGINT');
      await serve.exited;
      (await Agent.restore(o)).destroy();
      for (const n of [ns, ns4]) execFileSync('ip', ['netns', 'del', n]);
    }
  }, 60_000);

  it('the observer notices a veth removed behind its back (live, or while it was not running), reports it and removes the endpoint', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const agent = await twoPods(o);
    const node = agent.state.nodeNetns;
    const pods = Object.fromEntries(agent.pods().map((p) => [p.key, p]));
    const pinDir = agent.state.pinDir;
    agent.close(); // the pods stay; the observer's process does the cleanup
    try {
      const gone = (key: string) => {
        const p = pods[key]!;
        const state = loadState(o.stateDir);
        using dp = Datapath.attachPinned(pinDir);
        return {
          inState: key in state.pods,
          endpoint: dp.endpoints.get(p.ip) !== undefined || dp.lxc.get(p.hostIfindex) !== undefined,
          netns: execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(p.netns),
        };
      };
      const obs = cli(o, ['serve']);
      await obs.waitFor('/metrics');
      // `ip` as the oracle: the host-side veth of t/server goes (and its peer, the pod's eth0, with it).
      execFileSync('ip', ['-n', node, 'link', 'del', pods['t/server']!.hostIfname]);
      await obs.waitFor('pod t/server removed');
      expect(obs.err()).toContain(
        `device ${pods['t/server']!.hostIfname} (ifindex ${pods['t/server']!.hostIfindex}) of pod t/server, endpoint ${pods['t/server']!.lxcId}, is gone (deleted)`,
      );
      expect(gone('t/server')).toEqual({ inState: false, endpoint: false, netns: false });
      expect(gone('t/client')).toEqual({ inState: true, endpoint: true, netns: true });
      const metrics = await get(join(o.stateDir, 'observer.sock'), '/metrics');
      expect(metrics).toContain('datapath_agent_devices_removed_total{pod="t/server"} 1');
      obs.child.kill('SIGINT');
      expect(await obs.exited).toBe(0);
      // Removed while no observer ran: the next one finds it missing from its first listing.
      execFileSync('ip', ['-n', node, 'link', 'del', pods['t/client']!.hostIfname]);
      const again = cli(o, ['serve']);
      await again.waitFor('pod t/client removed');
      expect(again.err()).toContain('of pod t/client, endpoint');
      expect(again.err()).toContain('is gone (missing from the list listing)');
      expect(gone('t/client')).toEqual({ inState: false, endpoint: false, netns: false });
      again.child.kill('SIGINT');
      expect(await again.exited).toBe(0);
    } finally {
      (await Agent.restore(o).catch(() => undefined))?.destroy();
    }
  });
});
