/**
 * The agent's commands, in the spirit of the cilium CLI. Each returns its exit code and prints either
 * a table or (with `--json`) one JSON document.
 */
import { parseArgs } from 'node:util';
import { query } from '@datapath/loader';
import { Netns } from '@datapath/netlink';
import type { PolicyKey } from '@datapath/policy';
import { Agent, type AgentOptions, SCENARIO_CONCURRENCY } from './agent.js';
import { cmdServe, printApplied, serviceTable, serviceToDelete, viaApi } from './api/commands.js';
import { type ClusterValues, cmdCluster, cmdNodeUp } from './cli-cluster.js';
import { cmdConfig, cmdMonitor, cmdObserve, startObserver } from './cli-events.js';
import { Datapath } from './datapath.js';
import { AgentError } from './errors.js';
import { table } from './format.js';
import { lbSettingsFromFlags } from './lb-settings.js';
import { CtFlags, dirName, protoName, reasonName } from './maps.js';
import { engineFromState, flowExplanation, flowVerdict, loadPolicies, loadScenario } from './policy.js';
import { renderReport } from './report.js';
import { runScenario } from './run.js';
import { loadServices, mergeServices } from './service-file.js';
import { dumpLbMaps } from './service-lb.js';
import { type BackendPod, serviceViews } from './services.js';
import type { AgentState } from './state.js';

/** Usage text. */
export const USAGE = `usage: agent <command> [options]

  run <scenario.yaml|json> [--keep] [--replace] [--timeout ms]
                                                 build the pods, send every probe, print the matrix
  up <scenario.yaml|json>                        build the pods and keep them (no probes)
  down                                           remove everything the agent created
  status                                         agent, node namespace, maps, drops
  endpoint list                                  pods: IP, identity, endpoint id, veth, drops
  map dump <endpoints|ipcache|ct|metrics|policy <pod>>
  policy trace --from <ns/pod|host|world:ip> --to <…> --port <n> [--protocol TCP|UDP|SCTP]
  policy apply <file.yaml|json>                  replace the policies (policy documents or a scenario): changed entries only
  pod add <ns/name> [--label k=v]… [--port 80/TCP]… [--ip a.b.c.d]
  pod del <ns/name>
  pod terminate <ns/name>                        graceful: as a service backend it keeps its flows, gets no new ones
  service list                                   services: frontends, type, backends (pod, address, state, node)
  service apply <file.yaml|json>                 create or replace the file's services (one, a list, several YAML
                                                 documents or a scenario's \`services\`); the others stay
  service delete <ns/name|name>                  remove a service: its entries leave the lb maps
  lb map dump                                    the lb maps decoded: services, backends, reverse NAT, affinity
  bpf show                                       programs attached to every endpoint
  monitor [--type drop|policy-verdict|trace]… [--pod ns/name] [--count N]
                                                 live datapath events, decoded (from agent serve, else the ring)
  observe [--from x] [--to y] [--verdict FORWARDED|DROPPED] [--port n] [--last N]
                                                 the newest flows agent serve kept
  serve [scenario.yaml|json] [--socket path] [--lease-ms n] [--metrics-port N] [--flows N]
                                                 the resident agent: its API on <state-dir>/api.sock (endpoint list,
                                                 policy apply and pod del go through it while it runs), and the
                                                 observer: ring buffer consumer, /metrics /flows /events on
                                                 <state-dir>/observer.sock (and /metrics on 127.0.0.1:N)
  config [trace-rate <N|off>]                    run-time datapath settings; trace events 1 in N forwarded packets

cluster (several nodes on this machine, state on etcd):
  cluster up <scenario> [--nodes N] [--mode native|tunnel] [--etcd url,… | --etcd-members N] [--ttl s]
             [--cidr-grace s]                    local etcd of N members on loopback (default 1; unless --etcd),
                                                 fabric bridge, one node agent per node (every etcd endpoint);
                                                 pods on their scenario \`node\` (round-robin over N nodes);
                                                 a node gone for --cidr-grace s (default 60) loses its pod CIDR
  cluster run <scenario> [same flags] [--keep]   up, every probe across nodes, the matrix with nodes, down
  cluster status | cluster down                  nodes, routes and remote pods | remove everything
  node up --name n1 --etcd url --underlay 198.18.0.x --fabric <netns> [--scenario f] [--mode m]
                                                 one node agent in the foreground (SIGTERM: leave and remove)

common options: --name <agent> (default demo), --json, --attach auto|tcx|tc, --pod-cidr <cidr>,
                --pod-cidr6 <cidr> (serve/up: an IPv6 pod CIDR for dual-stack API/CNI pods, e.g. fd00:10:244:1::/112),
                --delivery peer|egress (run/up: bpf_redirect_peer, default, or bpf_redirect out of the host veth),
                --lb-selection random|maglev, --lb-hash-seed <u32> (run/up/serve/cluster up: how services pick
                backends, default random; the Maglev seed, default 0, one value per cluster: cluster up gives it
                to every node; fixed for an agent's life)`;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

type Values = ClusterValues & {
  name?: string;
  json?: boolean;
  keep?: boolean;
  replace?: boolean;
  help?: boolean;
  timeout?: string;
  attach?: string;
  delivery?: string;
  'pod-cidr'?: string;
  'pod-cidr6'?: string;
  'state-dir'?: string;
  from?: string;
  to?: string;
  port?: string[];
  protocol?: string;
  label?: string[];
  ip?: string;
  type?: string[];
  pod?: string;
  count?: string;
  verdict?: string;
  last?: string;
  flows?: string;
  'metrics-port'?: string;
  socket?: string;
  'lease-ms'?: string;
};

function agentOptions(v: Values, io: Io): AgentOptions {
  const attach = v.attach ?? 'auto';
  if (attach !== 'auto' && attach !== 'tcx' && attach !== 'tc') {
    throw new AgentError('InvalidArgument', `--attach must be auto, tcx or tc, got ${attach}`);
  }
  const delivery = v.delivery;
  if (delivery !== undefined && delivery !== 'peer' && delivery !== 'egress') {
    throw new AgentError('InvalidArgument', `--delivery must be peer or egress, got ${delivery}`);
  }
  const lb = lbSettingsFromFlags(v);
  return {
    ...(delivery === undefined ? {} : { delivery }),
    ...(v.name === undefined ? {} : { name: v.name }),
    ...(v['state-dir'] === undefined ? {} : { stateDir: v['state-dir'] }),
    ...(v['pod-cidr'] === undefined ? {} : { podCidr: v['pod-cidr'] }),
    ...(v['pod-cidr6'] === undefined ? {} : { podCidr6: v['pod-cidr6'] }),
    ...(lb.selection === undefined ? {} : { lbSelection: lb.selection }),
    ...(lb.hashSeed === undefined ? {} : { lbHashSeed: lb.hashSeed }),
    attach,
    log: v.json ? () => undefined : (l) => io.err(`agent: ${l}`),
  };
}

function print(io: Io, json: boolean | undefined, data: unknown, text: () => string): void {
  io.out(json ? JSON.stringify(data, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) : text());
}

/** Reads everything a status command shows from pins and the state file, without changing anything. */
function withDatapath<T>(state: AgentState, fn: (dp: Datapath) => T): T {
  const dp = Datapath.attachPinned(state.pinDir);
  try {
    return fn(dp);
  } finally {
    dp.close();
  }
}

function dropsByEndpoint(dp: Datapath): Map<number, { forwarded: bigint; dropped: bigint }> {
  const out = new Map<number, { forwarded: bigint; dropped: bigint }>();
  for (const k of dp.counters()) {
    const e = out.get(k.lxcId) ?? { forwarded: 0n, dropped: 0n };
    if (k.reason <= 1) e.forwarded += k.packets;
    else e.dropped += k.packets;
    out.set(k.lxcId, e);
  }
  return out;
}

async function cmdRun(file: string, v: Values, io: Io): Promise<number> {
  const scenario = loadScenario(file);
  const report = await runScenario(scenario, {
    ...agentOptions(v, io),
    ...(v.keep ? { keep: true } : {}),
    ...(v.replace ? { replace: true } : {}),
    ...(v.timeout === undefined ? {} : { timeoutMs: Number(v.timeout) }),
  });
  print(io, v.json, report, () => renderReport(report));
  return report.mismatches === 0 ? 0 : 1;
}

async function cmdUp(file: string, v: Values, io: Io): Promise<number> {
  const scenario = loadScenario(file);
  const agent = await Agent.start(agentOptions(v, io), {
    namespaces: scenario.namespaces,
    policies: scenario.policies ?? [],
    enforcement: scenario.enforcement ?? 'default',
    ...(scenario.services === undefined ? {} : { services: scenario.services }),
  });
  try {
    await agent.addPodsAsync(scenario.pods, { concurrency: SCENARIO_CONCURRENCY });
  } catch (err) {
    agent.destroy();
    throw err;
  }
  const pods = agent.pods();
  agent.close();
  print(
    io,
    v.json,
    { pods },
    () => `${pods.length} pods up; inspect with \`agent status\`, stop with \`agent down\``,
  );
  return 0;
}

async function cmdDown(v: Values, io: Io): Promise<number> {
  const agent = await Agent.restore(agentOptions(v, io));
  agent.destroy();
  print(io, v.json, { removed: true }, () => 'agent removed: pods, namespaces, pins, IPAM store, state');
  return 0;
}

function cmdStatus(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  const data = withDatapath(state, (dp) => {
    const drops = dropsByEndpoint(dp);
    let forwarded = 0n;
    let dropped = 0n;
    for (const d of drops.values()) {
      forwarded += d.forwarded;
      dropped += d.dropped;
    }
    const pressure = (m: { count(): number; info(): { maxEntries: number } }) =>
      `${m.count()}/${m.info().maxEntries}`;
    return {
      name: state.name,
      startedAt: state.startedAt,
      nodeNetns: state.nodeNetns,
      hostIp: state.hostIp,
      podCidr: state.podCidr,
      pinDir: state.pinDir,
      enforcement: state.enforcement,
      pods: Object.keys(state.pods).length,
      policies: state.policies.length,
      maps: {
        endpoints: pressure(dp.endpoints),
        lxc: pressure(dp.lxc),
        policy: pressure(dp.policy),
        ipcache: pressure(dp.ipcache),
        ct4: pressure(dp.ct),
        metrics: pressure(dp.metrics),
      },
      policyRevision: dp.policyRevision(),
      delivery: dp.delivery,
      packets: { forwarded: forwarded.toString(), dropped: dropped.toString() },
    };
  });
  print(io, v.json, data, () =>
    table(
      ['KEY', 'VALUE'],
      [
        ['agent', `${data.name} (since ${data.startedAt})`],
        ['node namespace', `${data.nodeNetns} (host IP ${data.hostIp}, pod CIDR ${data.podCidr})`],
        ['pins', data.pinDir],
        [
          'policy',
          `${data.policies} policies, enforcement ${data.enforcement}, revision ${data.policyRevision}`,
        ],
        [
          'local delivery',
          data.delivery === 'egress' ? 'bpf_redirect (egress of the host veth)' : 'bpf_redirect_peer',
        ],
        ['endpoints', String(data.pods)],
        ...Object.entries(data.maps).map(([k, x]) => [`map ${k}`, x]),
        ['packets', `${data.packets.forwarded} forwarded, ${data.packets.dropped} dropped`],
      ],
    ),
  );
  return 0;
}

function cmdEndpointList(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  const rows = withDatapath(state, (dp) => {
    const drops = dropsByEndpoint(dp);
    return Object.values(state.pods)
      .sort((a, b) => a.lxcId - b.lxcId)
      .map((p) => {
        const entries = dp.policyEntries(p.lxcId).length;
        const d = drops.get(p.lxcId) ?? { forwarded: 0n, dropped: 0n };
        return {
          endpoint: p.lxcId,
          pod: p.key,
          ip: p.ip,
          identity: p.identity,
          labels: p.labels,
          hostIfname: p.hostIfname,
          attach: p.attach,
          policyEntries: entries,
          forwarded: d.forwarded.toString(),
          dropped: d.dropped.toString(),
        };
      });
  });
  print(io, v.json, rows, () =>
    table(
      ['ENDPOINT', 'POD', 'IP', 'IDENTITY', 'VETH', 'ATTACH', 'POLICY', 'FORWARDED', 'DROPPED', 'LABELS'],
      rows.map((r) => [
        String(r.endpoint),
        r.pod,
        r.ip,
        String(r.identity),
        r.hostIfname,
        r.attach,
        String(r.policyEntries),
        r.forwarded,
        r.dropped,
        Object.entries(r.labels)
          .map(([k, x]) => `${k}=${x}`)
          .join(','),
      ]),
    ),
  );
  return 0;
}

function describePolicyKey(k: PolicyKey) {
  return {
    direction: k.direction,
    identity: k.identity,
    protocol: k.prefixLen === 0 ? 'ANY' : protoName(k.protocol),
    port: k.prefixLen <= 8 ? 'ANY' : k.prefixLen === 24 ? String(k.port) : `${k.port}/${k.prefixLen - 8}`,
  };
}

function cmdMapDump(args: string[], v: Values, io: Io): number {
  const which = args[0];
  const state = Agent.readState(agentOptions(v, io));
  return withDatapath(state, (dp) => {
    switch (which) {
      case 'endpoints': {
        const rows = dp.endpoints.dump().map(([, e]) => e);
        print(io, v.json, rows, () =>
          table(
            ['IP', 'ENDPOINT', 'IDENTITY', 'IFINDEX', 'MAC', 'NODE MAC'],
            rows.map((r) => [r.ip, String(r.lxcId), String(r.secId), String(r.ifindex), r.mac, r.nodeMac]),
          ),
        );
        return 0;
      }
      case 'ipcache': {
        const rows = dp.ipcache.dump().map(([prefix, val]) => ({ prefix, ...val }));
        print(io, v.json, rows, () =>
          table(
            ['PREFIX', 'IDENTITY', 'FLAGS'],
            rows.map((r) => [r.prefix, String(r.identity), String(r.flags)]),
          ),
        );
        return 0;
      }
      case 'ct': {
        const rows = dp.ct.dump().map(([k, e]) => ({ ...k, ...e }));
        print(io, v.json, rows, () =>
          table(
            ['PROTO', 'SOURCE', 'DESTINATION', 'DIR', 'REV', 'IDENTITIES', 'AGE'],
            rows.map((r) => [
              protoName(r.proto),
              `${r.saddr}:${r.sport}`,
              `${r.daddr}:${r.dport}`,
              `${r.flags & CtFlags.CT_F_REPLY ? 'reply' : 'open'}${r.flags & CtFlags.CT_F_DENIED ? ' denied' : ''}`,
              String(r.rev),
              `${r.srcSecId} → ${r.dstSecId}`,
              `${(Number(process.hrtime.bigint() - r.createdNs) / 1e9) | 0} s`,
            ]),
          ),
        );
        return 0;
      }
      case 'metrics': {
        const rows = dp.counters().map((k) => ({
          endpoint: k.lxcId,
          reason: reasonName(k.reason),
          direction: dirName(k.dir),
          packets: k.packets.toString(),
          bytes: k.bytes.toString(),
        }));
        rows.sort((a, b) => a.endpoint - b.endpoint || a.reason.localeCompare(b.reason));
        print(io, v.json, rows, () =>
          table(
            ['ENDPOINT', 'REASON', 'DIRECTION', 'PACKETS', 'BYTES'],
            rows.map((r) => [String(r.endpoint), r.reason, r.direction, r.packets, r.bytes]),
          ),
        );
        return 0;
      }
      case 'policy': {
        const pod = state.pods[args[1] ?? ''];
        if (!pod) throw new AgentError('NotFound', `map dump policy <ns/pod>: no pod ${args[1] ?? '(none)'}`);
        const rows = dp.policyEntries(pod.lxcId).map(({ key, value }) => ({
          ...describePolicyKey(key),
          verdict: value.deny ? 'deny' : 'allow',
        }));
        print(io, v.json, rows, () =>
          table(
            ['DIRECTION', 'IDENTITY', 'PROTOCOL', 'PORT', 'VERDICT'],
            rows.map((r) => [r.direction, String(r.identity), r.protocol, r.port, r.verdict]),
          ),
        );
        return 0;
      }
      default:
        throw new AgentError('InvalidArgument', 'map dump <endpoints|ipcache|ct|metrics|policy <ns/pod>>');
    }
  });
}

function cmdPolicyTrace(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  if (v.from === undefined || v.to === undefined || v.port === undefined) {
    throw new AgentError('InvalidArgument', 'policy trace needs --from, --to and --port');
  }
  const protocol = (v.protocol ?? 'TCP').toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') {
    throw new AgentError('InvalidArgument', `--protocol must be TCP, UDP or SCTP`);
  }
  const engine = engineFromState(state);
  const flow = { from: v.from, to: v.to, port: Number(v.port[0]), protocol: protocol as 'TCP' };
  const verdict = flowVerdict(engine, flow);
  const explanation = flowExplanation(engine, flow);
  print(io, v.json, { flow, verdict, explanation }, () => explanation);
  return 0;
}

async function cmdPolicyApply(file: string | undefined, v: Values, io: Io): Promise<number> {
  if (file === undefined) throw new AgentError('InvalidArgument', 'policy apply <file.yaml|json>');
  const policies = loadPolicies(file);
  const agent = await Agent.restore(agentOptions(v, io));
  try {
    const sync = agent.setPolicies(policies);
    print(io, v.json, sync, () =>
      table(
        ['MAP', 'UPDATED', 'DELETED'],
        [
          ...Object.entries(sync.endpoints).map(([pod, d]) => [`policy ${pod}`, d] as const),
          ['ipcache', sync.ipcache] as const,
        ]
          .map(([name, d]) => [name, String(d.updated), String(d.deleted)])
          .concat([['total writes', String(sync.writes), `revision ${sync.revision}`]]),
      ),
    );
    return 0;
  } finally {
    agent.close();
  }
}

async function cmdPod(sub: string | undefined, key: string | undefined, v: Values, io: Io): Promise<number> {
  if (key === undefined || !key.includes('/'))
    throw new AgentError('InvalidArgument', `pod ${sub} <ns/name>`);
  const agent = await Agent.restore(agentOptions(v, io));
  try {
    if (sub === 'add') {
      const [namespace, name] = key.split('/') as [string, string];
      const labels = Object.fromEntries((v.label ?? []).map((l) => l.split('=') as [string, string]));
      const ports = (v.port ?? []).map((p) => {
        const [port, protocol] = p.split('/');
        const proto = (protocol ?? 'TCP').toUpperCase();
        if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP')
          throw new AgentError('InvalidArgument', `--port ${p}: protocol must be TCP, UDP or SCTP`);
        return { port: Number(port), protocol: proto as 'TCP' | 'UDP' | 'SCTP' };
      });
      const [rec] = await agent.addPodsAsync([
        { namespace, name, labels, ports, ...(v.ip === undefined ? {} : { ip: v.ip }) },
      ]);
      print(
        io,
        v.json,
        rec,
        () => `pod ${key}: ${rec?.ip}, endpoint ${rec?.lxcId}, identity ${rec?.identity}`,
      );
    } else if (sub === 'del') {
      await agent.removePodAsync(key);
      print(io, v.json, { removed: key }, () => `pod ${key} removed`);
    } else if (sub === 'terminate') {
      const written = agent.terminatePod(key);
      print(io, v.json, { terminating: key, services: Object.fromEntries(written) }, () =>
        written.size === 0
          ? `pod ${key} terminating (no service selects it)`
          : `pod ${key} terminating in ${[...written.keys()].join(', ')}`,
      );
    } else {
      throw new AgentError('InvalidArgument', 'pod add|del|terminate <ns/name>');
    }
    return 0;
  } finally {
    agent.close();
  }
}

function cmdServiceList(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  const local: BackendPod[] = Object.values(state.pods).map((p) => ({
    key: p.key,
    namespace: p.ns,
    labels: p.labels,
    ip: p.ip,
    ports: p.ports,
  }));
  const views =
    state.serviceStatus ??
    serviceViews(state.services ?? [], local, new Set(state.terminating ?? []), state.hostIp);
  print(io, v.json, views, () => serviceTable(views));
  return 0;
}

/** `service apply|delete` on the state files (no agent serves; through the API otherwise: api/commands.ts). */
async function cmdServiceChange(
  sub: 'apply' | 'delete',
  arg: string | undefined,
  v: Values,
  io: Io,
): Promise<number> {
  if (sub === 'apply' && arg === undefined)
    throw new AgentError('InvalidArgument', 'service apply <file.yaml|json>');
  const applied = sub === 'apply' ? loadServices(arg!) : [];
  const agent = await Agent.restore(agentOptions(v, io));
  try {
    if (sub === 'delete') {
      const key = serviceToDelete(arg, agent.services());
      await agent.deleteService(key);
      print(io, v.json, { removed: true, service: key }, () => `service ${key} deleted`);
      return 0;
    }
    const plan = mergeServices(agent.services(), applied);
    await agent.setServices(plan.services);
    const keys = new Set(applied.map((s) => `${s.namespace}/${s.name}`));
    printApplied(
      io,
      v.json,
      plan,
      agent.serviceViews().filter((s) => keys.has(s.service)),
      'to the agent state',
    );
    return 0;
  } finally {
    agent.close();
  }
}

function cmdLbMapDump(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  const dump = dumpLbMaps(state.pinDir);
  print(io, v.json, dump, () =>
    [
      'lb_services:',
      table(
        ['FRONTEND', 'PROTO', 'SLOT', 'BACKEND ID / COUNT', 'REV NAT', 'FLAGS'],
        dump.services.map((e) => [
          e.frontend,
          e.protocol,
          String(e.slot),
          e.slot === 0 ? `count ${e.count}` : String(e.backendId),
          String(e.revNatId),
          [
            ...(e.flags ?? []),
            ...(e.affinityTimeout === undefined ? [] : [`timeout ${e.affinityTimeout}s`]),
          ].join(','),
        ]),
      ),
      '',
      'lb_backends:',
      table(
        ['ID', 'ADDRESS', 'PORT', 'PROTO', 'STATE'],
        dump.backends.map((b) => [String(b.id), b.address, String(b.port), b.protocol, b.state]),
      ),
      '',
      'lb_reverse_nat:',
      table(
        ['ID', 'FRONTEND'],
        dump.revNat.map((r) => [String(r.id), r.frontend]),
      ),
      '',
      'lb_affinity:',
      table(
        ['CLIENT', 'REV NAT', 'BACKEND ID', 'LAST USED (ns)'],
        dump.affinity.map((a) => [a.client, String(a.revNatId), String(a.backendId), a.lastUsedNs]),
      ),
      '',
      'lb_affinity_match:',
      table(
        ['BACKEND ID', 'REV NAT'],
        dump.affinityMatch.map((m) => [String(m.backendId), String(m.revNatId)]),
      ),
    ].join('\n'),
  );
  return 0;
}

function cmdBpfShow(v: Values, io: Io): number {
  const state = Agent.readState(agentOptions(v, io));
  const node = Netns.open({ name: state.nodeNetns });
  try {
    const rows = Object.values(state.pods)
      .sort((a, b) => a.lxcId - b.lxcId)
      .map((p) => {
        const q = node.run(() => query({ ifindex: p.hostIfindex }));
        return {
          pod: p.key,
          endpoint: p.lxcId,
          device: `${p.hostIfname} (ifindex ${p.hostIfindex}, netns ${state.nodeNetns})`,
          attach: p.attach,
          ingress: q.tcx.ingress.programs.map((x) => `${x.name}#${x.id}`),
          egress: q.tcx.egress.programs.map((x) => `${x.name}#${x.id}`),
          tc: q.tc.map((x) => `${x.direction}:${x.name}#${x.id}`),
        };
      });
    print(io, v.json, rows, () =>
      table(
        ['ENDPOINT', 'POD', 'DEVICE', 'ATTACH', 'INGRESS', 'EGRESS'],
        rows.map((r) => [
          String(r.endpoint),
          r.pod,
          r.device,
          r.attach,
          [...r.ingress, ...r.tc.filter((x) => x.startsWith('ingress'))].join(' ') || '-',
          [...r.egress, ...r.tc.filter((x) => x.startsWith('egress'))].join(' ') || '-',
        ]),
      ),
    );
    return 0;
  } finally {
    node.close();
  }
}

/**
 * Runs one command line; returns the exit code (0 ok, 1 probe mismatch or failure, 2 usage).
 */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        json: { type: 'boolean' },
        keep: { type: 'boolean' },
        replace: { type: 'boolean' },
        timeout: { type: 'string' },
        attach: { type: 'string' },
        delivery: { type: 'string' },
        'pod-cidr': { type: 'string' },
        'pod-cidr6': { type: 'string' },
        'state-dir': { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        port: { type: 'string', multiple: true },
        protocol: { type: 'string' },
        label: { type: 'string', multiple: true },
        ip: { type: 'string' },
        type: { type: 'string', multiple: true },
        pod: { type: 'string' },
        count: { type: 'string' },
        verdict: { type: 'string' },
        last: { type: 'string' },
        flows: { type: 'string' },
        'metrics-port': { type: 'string' },
        socket: { type: 'string' },
        'lease-ms': { type: 'string' },
        prefix: { type: 'string' },
        etcd: { type: 'string' },
        'etcd-members': { type: 'string' },
        'etcd-prefix': { type: 'string' },
        underlay: { type: 'string' },
        fabric: { type: 'string' },
        mode: { type: 'string' },
        scenario: { type: 'string' },
        ttl: { type: 'string' },
        'cidr-grace': { type: 'string' },
        nodes: { type: 'string' },
        'lb-selection': { type: 'string' },
        'lb-hash-seed': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }) as { values: Values; positionals: string[] };
  } catch (err) {
    io.err(`agent: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals: p } = parsed;
  if (v.help) {
    io.out(USAGE);
    return 0;
  }
  const needsRoot = p[0] !== undefined && p[0] !== 'policy';
  if (needsRoot && process.getuid?.() !== 0) {
    io.err(
      'agent: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF): it creates namespaces, veths and BPF programs',
    );
    return 1;
  }
  const [cmd, sub, arg] = p;
  try {
    const api = await viaApi(p, v, io);
    if (api !== undefined) return api;
    switch (cmd) {
      case 'cluster': {
        const r = await cmdCluster(sub, arg, v, io);
        if (r !== undefined) return r;
        break;
      }
      case 'node':
        if (sub === 'up') return await cmdNodeUp(v, io);
        break;
      case 'serve':
        return await cmdServe(sub, agentOptions(v, io), v, io, (stateDir, agent) =>
          startObserver(stateDir, v, io, agent),
        );
      case 'run':
        if (sub === undefined) break;
        return await cmdRun(sub, v, io);
      case 'up':
        if (sub === undefined) break;
        return await cmdUp(sub, v, io);
      case 'down':
        return await cmdDown(v, io);
      case 'status':
        return cmdStatus(v, io);
      case 'endpoint':
        if (sub === 'list') return cmdEndpointList(v, io);
        break;
      case 'map':
        if (sub === 'dump') return cmdMapDump(p.slice(2), v, io);
        break;
      case 'policy':
        if (sub === 'trace') return cmdPolicyTrace(v, io);
        if (sub === 'apply') return await cmdPolicyApply(arg, v, io);
        break;
      case 'pod':
        return await cmdPod(sub, arg, v, io);
      case 'bpf':
        if (sub === 'show') return cmdBpfShow(v, io);
        break;
      case 'service':
        if (sub === 'list') return cmdServiceList(v, io);
        if (sub === 'apply' || sub === 'delete') return await cmdServiceChange(sub, arg, v, io);
        break;
      case 'lb':
        if (sub === 'map' && arg === 'dump') return cmdLbMapDump(v, io);
        break;
      case 'monitor':
        return await cmdMonitor(Agent.stateDir(agentOptions(v, io)), v, io);
      case 'observe':
        return await cmdObserve(Agent.stateDir(agentOptions(v, io)), v, io);
      case 'config':
        return cmdConfig(Agent.stateDir(agentOptions(v, io)), p.slice(1), v, io);
    }
  } catch (err) {
    if (err instanceof AgentError || (err as Error).name?.endsWith('Error')) {
      const e = err as Error & { code?: string; reason?: string };
      io.err(`agent: ${e.message}${e.code ? ` [${e.code}${e.reason ? ` ${e.reason}` : ''}]` : ''}`);
      return 1;
    }
    throw err;
  }
  io.err(USAGE);
  return 2;
}
