// Benchmark: socket LB (@datapath/lb SocketLb) vs a kube-proxy-style iptables baseline the bench builds
// itself, and Maglev table builds vs a straightforward implementation, all in one run.
//   - iptables: the filter and nat rules kube-proxy's iptables mode writes (iptablesRules below), loaded
//     with iptables-restore inside namespaces the bench makes.
//   - ours: the same services through SocketLb on a cgroup the bench makes.
//   - floor: beside each pair the client also runs straight to a backend address (no service, no rule, no
//     program): the kernel's own cost of a connection in this harness, which no load balancer can go below.
//   A C client (bench/connect.c, built here) runs sequential TCP connect + request + close to the LAST
//   service's ClusterIP (the worst case for a linear chain) from inside a client namespace and the cgroup;
//   a C server (bench/server.c) answers. 100, 1 000 and 10 000 services; each round measures the three
//   back to back (their order rotates by round) and the tables report medians of the per-round ratios.
//   Second figure: CPU time per connection of the client (its own clock) and of the server
//   (/proc/<pid>/schedstat), which a loaded machine's waits for a CPU do not enter.
// Topologies (LB_BENCH_TOPO, a comma list, default host,pod,pod-ct,pod-local,pod-local-ct):
//   - host: a host-network client (the node's own namespace holds the rules) and the server one veth away.
//   - pod: a client pod on node A reaching backend pods on node B: pod → veth → node A → underlay veth →
//     node B → veth → pod; kube-proxy's rules on BOTH nodes (as it writes them on every node).
//   - pod-local: the same client pod, backend pods on node A (same node): rules on node A.
//   - any of them with `-ct` (e.g. pod-ct): the node namespaces (where the baseline loads its rules) hold,
//     for ours and the floor too, one stateful filter rule (`--ctstate INVALID -j DROP` on INPUT, FORWARD
//     and OUTPUT), so conntrack tracks every packet crossing a node for all three sides, as on a node
//     whose firewall has any conntrack rule; without `-ct` only the baseline's rules turn conntrack on.
//   Before every run of every side the conntrack table of every namespace on the path is emptied
//   (bench/ctflush.c, ctnetlink), so no side starts with entries another side left.
// Knobs (the section says which were on): LB_BENCH_MS (default 600), LB_BENCH_ROUNDS, LB_BENCH_COUNTS
// (e.g. 100,10000), LB_BENCH_TOPO, LB_BENCH_NICE (niceness of client and server, default -10, 0: none),
// LB_BENCH_PIN (server:client CPUs, e.g. 1:1), LB_BENCH_SCHED=fifo (client and server SCHED_FIFO),
// LB_BENCH_CT_FLUSH=0 (no conntrack flush between runs: shows what the flush prevents).
// Writes $BENCH_OUT/lb-socket.md. Needs root, cc, clang, iptables. Run: LB_BENCH=socket node scripts/bench.mjs lb
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocketLb } from '../src/datapath.js';
import { maglevMoved, maglevPermutation, maglevTable } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** Per cell, ms: 600 keeps the five default placements near 5 minutes (setup and rule loads are the rest). */
const MS = Number(process.env.LB_BENCH_MS ?? 600);
const ROUNDS = Number(process.env.LB_BENCH_ROUNDS ?? 5);
const COUNTS = (process.env.LB_BENCH_COUNTS || '100,1000,10000').split(',').map(Number);
const PIN = process.env.LB_BENCH_PIN ?? '';
/**
 * Niceness of the client and server (both sides alike, default -10): on this shared 2-vCPU machine the
 * per-connection wakeups of client and server wait behind other work, a fixed cost both sides pay that
 * compresses the ratio; 0 turns it off.
 */
const NICE = process.env.LB_BENCH_NICE ?? '-10';
/**
 * LB_BENCH_SCHED=fifo: client and server run SCHED_FIFO priority 1 (chrt), both sides alike, so other
 * work on the machine cannot make them wait for a CPU (the kernel's RT throttling still leaves 5 %).
 */
const FIFO = process.env.LB_BENCH_SCHED === 'fifo';
const CHRT = FIFO ? 'chrt -f 1 ' : '';
const TOPOS = (process.env.LB_BENCH_TOPO || 'host,pod,pod-ct,pod-local,pod-local-ct').split(',');
/** LB_BENCH_CT_FLUSH=0: no conntrack flush between runs (to show what the flush prevents). */
const FLUSH = process.env.LB_BENCH_CT_FLUSH !== '0';
/** Backend addresses (one namespace holds them, one server answers on all): host and pod topologies. */
const POOL = ['10.244.1.1', '10.244.1.2', '10.244.1.3', '10.244.1.4'];
/** Backend pods on the client's own node (pod-local topology): node A's pod range. */
const POOL_LOCAL = ['10.244.0.11', '10.244.0.12', '10.244.0.13', '10.244.0.14'];
const PORT = 8080;
const vip = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- Maglev: ours vs the paper's pseudocode with materialised permutations
function naiveMaglev(keys: string[], M: number): Int32Array {
  const perm = keys.map((k) => {
    const { offset, skip } = maglevPermutation(k, M);
    const p = new Int32Array(M);
    for (let j = 0; j < M; j++) p[j] = (offset + j * skip) % M;
    return p;
  });
  const next = new Int32Array(keys.length);
  const entry = new Int32Array(M).fill(-1);
  let n = 0;
  for (;;)
    for (let i = 0; i < keys.length; i++) {
      let c = perm[i]![next[i]!]!;
      while (entry[c]! >= 0) c = perm[i]![++next[i]!]!;
      entry[c] = i;
      next[i]!++;
      if (++n === M) return entry;
    }
}

function maglevRows(): string[] {
  const M = 65521;
  const keys = Array.from({ length: 100 }, (_, i) => `10.244.${i >> 8}.${i & 255}:8080`);
  const time = (f: () => unknown, n: number) => {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      f();
      t.push(performance.now() - t0);
    }
    return median(t);
  };
  const ours = time(
    () =>
      maglevTable(
        keys.map((key) => ({ key })),
        M,
      ),
    9,
  );
  const naive = time(() => naiveMaglev(keys, M), 5);
  const changed = [...keys];
  changed[50] = '10.244.9.9:8080';
  const a = maglevTable(
    keys.map((key) => ({ key })),
    M,
  );
  const change = time(
    () =>
      maglevTable(
        changed.map((key) => ({ key })),
        M,
      ),
    9,
  );
  const b = maglevTable(
    changed.map((key) => ({ key })),
    M,
  );
  const moved = maglevMoved(a, b, keys, changed);
  const fewer = keys.filter((_, i) => i !== 50);
  const removed = maglevMoved(
    a,
    maglevTable(
      fewer.map((key) => ({ key })),
      M,
    ),
    keys,
    fewer,
  );
  return [
    `| Maglev table build, 65 521 entries × 100 backends | ${ours.toFixed(1)} ms | ${naive.toFixed(1)} ms (paper pseudocode, materialised permutations) | ${(ours / naive).toFixed(2)}× |`,
    `| one backend replaced (one out, one in): rebuild | ${change.toFixed(1)} ms, ${moved} entries moved (${((100 * moved) / M).toFixed(2)} % of the table; ideal 2/N = 2.00 %) | | |`,
    `| one backend removed | ${removed} entries moved (${((100 * removed) / M).toFixed(2)} %; ideal 1/N = 1.00 %) | | |`,
  ];
}

// ---- the namespaces, cgroup, server, client
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
const inNs = (ns: string, cmd: string, args: string[], input?: string) =>
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
  });
function cgroup2Root(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, path, type] = line.split(' ');
    if (type === 'cgroup2' && path) return path;
  }
  throw new Error('no cgroup v2 mount');
}

interface Run {
  n: number;
  errors: number;
  secs: number;
  p50: number;
  /** The client's CPU time per connection, µs (process context and the softirq work done in it). */
  cpu: number;
  /** The server's CPU time per connection, µs (/proc/<pid>/schedstat over the run). */
  srv: number;
}

/** Time on CPU of a process so far, ns (the first field of /proc/<pid>/schedstat). */
const cpuNs = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

function client(bin: string, cg: string, ns: string, host: string, serverPid: number, port: number): Run {
  const srv0 = cpuNs(serverPid);
  const r = spawnSync(
    'sh',
    [
      '-c',
      `echo $$ > "$0/cgroup.procs" && exec ${CHRT}${NICE ? `nice -n ${NICE} ` : ''}${PIN ? `taskset -c ${PIN.split(':')[1]} ` : ''}ip netns exec "$1" "$2" "$3" "$4" "$5"`,
      cg,
      ns,
      bin,
      host,
      String(port),
      String(MS),
    ],
    { encoding: 'utf8', timeout: MS + 30_000 },
  );
  // a Ctrl-C reaches the client too (same process group): stop as the signal handler would
  if ((r.signal === 'SIGINT' || r.signal === 'SIGTERM') && !r.error) {
    interrupted ??= r.signal;
    throw new Interrupted(r.signal);
  }
  if (r.status !== 0) throw new Error(`client: ${r.error?.message ?? ''} ${r.stderr}`);
  const srv = (cpuNs(serverPid) - srv0) / 1000;
  const [n, errors, secs, p50, , cpu] = r.stdout.trim().split(' ').map(Number) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { n, errors, secs, p50, cpu, srv: n ? srv / n : 0 };
}

/** The bench server in a namespace, at the bench's niceness; resolves once it listens. */
async function startServer(bin: string, ns: string): Promise<ChildProcess> {
  const server = spawn(
    FIFO ? 'chrt' : 'nice',
    [
      ...(FIFO ? ['-f', '1', 'nice'] : []),
      '-n',
      NICE || '0',
      ...(PIN ? ['taskset', '-c', PIN.split(':')[0]!] : []),
      'ip',
      'netns',
      'exec',
      ns,
      bin,
      String(PORT),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  return server;
}

/** A kube-proxy chain suffix: 16 characters of a hash of the service (kube-proxy uses base32 of SHA-256). */
const chainId = (what: string) => createHash('sha256').update(what).digest('hex').slice(0, 16).toUpperCase();

/**
 * The rules kube-proxy's iptables mode writes for `count` ClusterIP services of two endpoints each from
 * `pool` (pkg/proxy/iptables: the filter-table jumps and chains, kubelet's KUBE-FIREWALL localnet rule,
 * KUBE-SERVICES with one rule per service and the KUBE-NODEPORTS rule last, KUBE-SVC-* with the
 * masquerade mark for traffic from outside the cluster CIDR and `statistic` random over the endpoints,
 * KUBE-SEP-* with the hairpin mark and DNAT, KUBE-MARK-MASQ and KUBE-POSTROUTING). Comments as
 * kube-proxy writes them: above 1000 endpoints ("large cluster mode") the KUBE-SVC-* → KUBE-SEP-* and
 * KUBE-SEP-* rules carry none.
 */
function iptablesRules(count: number, pool: readonly string[]): string {
  const large = count * 2 > 1000;
  const comment = (text: string) => (large ? '' : ` -m comment --comment "${text}"`);
  const filter = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FIREWALL - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A INPUT -j KUBE-FIREWALL',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -j KUBE-FIREWALL',
    '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ];
  const chains = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-SERVICES - [0:0]',
  ];
  const rules = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (let i = 0; i < count; i++) {
    const name = `default/svc-${i}:http`;
    const svc = `KUBE-SVC-${chainId(`${name}tcp`)}`;
    const eps = [0, 1].map((k) => `${pool[(i + k) % pool.length]}:${PORT}`);
    const seps = eps.map((ep) => `KUBE-SEP-${chainId(`${name}tcp${ep}`)}`);
    chains.push(`:${svc} - [0:0]`, ...seps.map((c) => `:${c} - [0:0]`));
    rules.push(
      `-A KUBE-SERVICES -m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${vip(i)}/32 --dport 80 -j ${svc}`,
      `-A ${svc} -m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${vip(i)}/32 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
      `-A ${svc}${comment(`${name} -> ${eps[0]}`)} -m statistic --mode random --probability 0.5000000000 -j ${seps[0]}`,
      `-A ${svc}${comment(`${name} -> ${eps[1]}`)} -j ${seps[1]}`,
    );
    for (const [k, sep] of seps.entries())
      rules.push(
        `-A ${sep}${comment(name)} -s ${eps[k]!.split(':')[0]}/32 -j KUBE-MARK-MASQ`,
        `-A ${sep}${comment(name)} -m tcp -p tcp -j DNAT --to-destination ${eps[k]}`,
      );
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  return `${[...filter, ...chains, ...rules, 'COMMIT'].join('\n')}\n`;
}

/** MTU and queue counts of every device but lo in the namespaces, e.g. `MTU 1500, 2 tx / 2 rx queues`. */
function linkShapes(namespaces: readonly string[]): Set<string> {
  const shapes = new Set<string>();
  for (const ns of namespaces)
    for (const l of JSON.parse(
      execFileSync('ip', ['-n', ns, '-d', '-j', 'link', 'show'], { encoding: 'utf8' }),
    ) as {
      ifname: string;
      mtu: number;
      num_tx_queues: number;
      num_rx_queues: number;
    }[])
      if (l.ifname !== 'lo') shapes.add(`MTU ${l.mtu}, ${l.num_tx_queues} tx / ${l.num_rx_queues} rx queues`);
  return shapes;
}

/** Empty filter and nat tables: what the baseline leaves after each of its runs. */
const NO_RULES = '*filter\nCOMMIT\n*nat\nCOMMIT\n';
/**
 * A `-ct` placement's node firewall, for every side (the baseline's rules replace it during its runs:
 * they hold the same INVALID drop in KUBE-FORWARD): one conntrack match per hook, so conntrack tracks
 * every packet that crosses the node, and no nat table.
 */
const CT_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A OUTPUT -m conntrack --ctstate INVALID -j DROP
COMMIT
*nat
COMMIT
`;

/** One placement of client, nodes and backends. */
interface Topology {
  key: string;
  /** The client's namespace (the cgroup holds the client process there). */
  client: string;
  server: ChildProcess;
  /** The backends of every service: addresses the server answers on. */
  pool: readonly string[];
  /** Where the baseline loads kube-proxy's rules. */
  ruleNs: readonly string[];
  /** Namespaces on the path, checked for conntrack entries while ours and the floor run. */
  pathNs: readonly string[];
  /** A `-ct` placement: the rule namespaces hold CT_RULES whenever the baseline's rules are not loaded. */
  ct: boolean;
}

/** Makes the namespaces with loopback up, each recorded in `made` (removed at the end) as soon as it exists. */
function addNamespaces(made: string[], names: readonly string[]): void {
  for (const ns of names) {
    ip('netns', 'add', ns);
    made.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
}

/** host: the client namespace holds the rules (a host-network client), the server one veth away. */
async function hostTopology(tag: string, sbin: string, made: string[]): Promise<Topology> {
  const cns = `${tag}-c`;
  const pns = `${tag}-p`;
  addNamespaces(made, [cns, pns]);
  ip('-n', cns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pns);
  ip('-n', cns, 'addr', 'add', '10.244.0.1/16', 'dev', 'eth0');
  for (const a of POOL) ip('-n', pns, 'addr', 'add', `${a}/16`, 'dev', 'eth0');
  ip('-n', cns, 'link', 'set', 'eth0', 'up');
  ip('-n', pns, 'link', 'set', 'eth0', 'up');
  ip('-n', cns, 'route', 'add', '10.96.0.0/12', 'dev', 'eth0');
  const server = await startServer(sbin, pns);
  return { key: 'host', ct: false, client: cns, server, pool: POOL, ruleNs: [cns], pathNs: [cns, pns] };
}

/**
 * A pod namespace wired to its node the way routed CNIs do it (Cilium, Calico): a veth, /32 addresses
 * in the pod, a default route via the node's router address (on the node's side of the veth), a /32
 * route per pod address on the node.
 */
function podNs(pod: string, node: string, dev: string, addrs: readonly string[], router: string): void {
  ip('-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', dev, 'netns', node);
  for (const a of addrs) ip('-n', pod, 'addr', 'add', `${a}/32`, 'dev', 'eth0');
  ip('-n', pod, 'link', 'set', 'eth0', 'up');
  ip('-n', pod, 'route', 'add', router, 'dev', 'eth0', 'scope', 'link');
  ip('-n', pod, 'route', 'add', 'default', 'via', router, 'dev', 'eth0');
  ip('-n', node, 'addr', 'add', `${router}/32`, 'dev', dev);
  ip('-n', node, 'link', 'set', dev, 'up');
  for (const a of addrs) ip('-n', node, 'route', 'add', `${a}/32`, 'dev', dev);
}

/**
 * pod: a client pod on node A, backend pods on node B (the underlay: one veth between the nodes in
 * 198.18.0.0/15, each node routing the other's pod range); kube-proxy's rules on both nodes.
 */
async function podTopology(tag: string, sbin: string, made: string[]): Promise<Topology> {
  const [nodeA, nodeB, pod, backends] = ['na', 'nb', 'pc', 'pb'].map((x) => `${tag}-${x}`) as [
    string,
    string,
    string,
    string,
  ];
  addNamespaces(made, [nodeA, nodeB, pod, backends]);
  ip('-n', nodeA, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nodeB);
  ip('-n', nodeA, 'addr', 'add', '198.18.0.1/24', 'dev', 'eth0');
  ip('-n', nodeB, 'addr', 'add', '198.18.0.2/24', 'dev', 'eth0');
  for (const n of [nodeA, nodeB]) {
    ip('-n', n, 'link', 'set', 'eth0', 'up');
    // a router: forwarding on, in this namespace only
    inNs(n, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  }
  ip('-n', nodeA, 'route', 'add', '10.244.1.0/24', 'via', '198.18.0.2', 'dev', 'eth0');
  ip('-n', nodeB, 'route', 'add', '10.244.0.0/24', 'via', '198.18.0.1', 'dev', 'eth0');
  podNs(pod, nodeA, 'lxcc', ['10.244.0.2'], '10.244.0.254');
  podNs(backends, nodeB, 'lxcb', POOL, '10.244.1.254');
  const server = await startServer(sbin, backends);
  return {
    key: 'pod',
    ct: false,
    client: pod,
    server,
    pool: POOL,
    ruleNs: [nodeA, nodeB],
    pathNs: [pod, nodeA, nodeB, backends],
  };
}

/**
 * pod-local: a client pod and the backend pods on one node (namespaces of its own: the pod placement's
 * conntrack entries, same client and service addresses with other backends, stay out of its way);
 * kube-proxy's rules on that node.
 */
async function podLocalTopology(tag: string, sbin: string, made: string[]): Promise<Topology> {
  const [node, pod, backends] = ['la', 'lc', 'lb'].map((x) => `${tag}-${x}`) as [string, string, string];
  addNamespaces(made, [node, pod, backends]);
  inNs(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  podNs(pod, node, 'lxcc', ['10.244.0.2'], '10.244.0.254');
  podNs(backends, node, 'lxcl', POOL_LOCAL, '10.244.0.254');
  const server = await startServer(sbin, backends);
  return {
    key: 'pod-local',
    ct: false,
    client: pod,
    server,
    pool: POOL_LOCAL,
    ruleNs: [node],
    pathNs: [pod, node, backends],
  };
}

interface Sides {
  base: Run[];
  ours: Run[];
  floor: Run[];
}

/** Conntrack's per-namespace statistics summed over CPUs and over the rule namespaces (nodes). */
interface CtStat {
  /** Entries on the nodes after the run (the table was emptied before it), per connection. */
  entriesPerConn: number;
  /** Packets conntrack found INVALID, entries that failed to insert, packets conntrack dropped. */
  invalid: number;
  insertFailed: number;
  drop: number;
}

interface Measured {
  res: Record<number, Sides>;
  /** The most conntrack entries one run of ours or of the floor added on the path. */
  ctAdded: number;
  /** Per side, conntrack on the nodes over its first run at the largest count. */
  ct: Partial<Record<keyof Sides, CtStat>>;
  /** Conntrack INVALID / insert_failed / drop on the nodes summed over every run of the placement. */
  ctTrouble: { invalid: number; insertFailed: number; drop: number };
  /** Wall time of one iptables-restore of N services' rules into one namespace, ms (the last load). */
  restoreMs: Record<number, number>;
  /**
   * Per rule namespace, the packets that jumped from nat PREROUTING or OUTPUT to KUBE-SERVICES per
   * connection (the first baseline run at the largest count): 1 = every connection's SYN walked it.
   */
  walks: number[];
}

/** Packets counted by the nat PREROUTING and OUTPUT jumps to KUBE-SERVICES in a namespace. */
function natWalks(ns: string): number {
  let packets = 0;
  for (const chain of ['PREROUTING', 'OUTPUT'])
    for (const line of inNs(ns, 'iptables', ['-t', 'nat', '-L', chain, '-v', '-x', '-n']).split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[2] === 'KUBE-SERVICES') packets += Number(f[0]);
    }
  return packets;
}

/** The services of a run, for SocketLb. */
async function attachOurs(cg: string, n: number, pool: readonly string[]): Promise<SocketLb> {
  const lb = await SocketLb.attach({ cgroupPath: cg, tableSize: 251 });
  for (let i = 0; i < n; i++)
    lb.upsert({
      name: `s${i}`,
      protocol: 'TCP',
      frontends: [{ address: vip(i), port: 80 }],
      backends: [0, 1].map((k) => ({ address: pool[(i + k) % pool.length]!, port: PORT })),
    });
  return lb;
}

/** Conntrack's statistics of a namespace (/proc/net/stat/nf_conntrack: one hex row per CPU), summed. */
function ctStats(ns: string): Record<string, number> {
  const [head, ...rows] = inNs(ns, 'cat', ['/proc/net/stat/nf_conntrack']).trim().split('\n');
  const names = head!.trim().split(/\s+/);
  const sum: Record<string, number> = {};
  for (const row of rows)
    for (const [i, v] of row.trim().split(/\s+/).entries())
      sum[names[i]!] = (sum[names[i]!] ?? 0) + Number.parseInt(v, 16);
  return sum;
}

async function measure(t: Topology, cbin: string, cg: string, flush: string): Promise<Measured> {
  const res: Record<number, Sides> = {};
  for (const n of COUNTS) res[n] = { base: [], ours: [], floor: [] };
  const restoreMs: Record<number, number> = {};
  const walks: number[] = [];
  const spid = t.server.pid!;
  const last = COUNTS[COUNTS.length - 1]!;
  const idle = t.ct ? CT_RULES : NO_RULES;
  for (const ns of t.ruleNs) inNs(ns, 'iptables-restore', [], idle);
  let ctAdded = 0;
  const ct: Measured['ct'] = {};
  const ctTrouble = { invalid: 0, insertFailed: 0, drop: 0 };
  const ctCount = (namespaces: readonly string[]) =>
    namespaces.reduce(
      (a, ns) => a + Number(inNs(ns, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_count'])),
      0,
    );
  const nodeStats = () => {
    const sum = { invalid: 0, insertFailed: 0, drop: 0 };
    for (const ns of t.ruleNs) {
      const x = ctStats(ns);
      sum.invalid += x.invalid ?? 0;
      sum.insertFailed += x.insert_failed ?? 0;
      sum.drop += x.drop ?? 0;
    }
    return sum;
  };
  /**
   * One client run of a side: every namespace on the path starts with an empty conntrack table; after
   * the run, what conntrack saw on the nodes (the first run of each side at the largest count is kept).
   */
  const run = (side: keyof Sides, n: number, host: string, port: number): Run => {
    if (FLUSH) for (const ns of t.pathNs) inNs(ns, flush, []);
    const s0 = nodeStats();
    const r = client(cbin, cg, t.client, host, spid, port);
    const s1 = nodeStats();
    const trouble = {
      invalid: s1.invalid - s0.invalid,
      insertFailed: s1.insertFailed - s0.insertFailed,
      drop: s1.drop - s0.drop,
    };
    ctTrouble.invalid += trouble.invalid;
    ctTrouble.insertFailed += trouble.insertFailed;
    ctTrouble.drop += trouble.drop;
    if (side !== 'base') ctAdded = Math.max(ctAdded, ctCount(t.pathNs));
    if (n === last && !ct[side])
      ct[side] = { entriesPerConn: ctCount(t.ruleNs) / Math.max(1, r.n + r.errors), ...trouble };
    return r;
  };
  const runFloor = (n: number) => res[n]!.floor.push(run('floor', n, t.pool[0]!, PORT));
  const runBase = (n: number) => {
    const rules = iptablesRules(n, t.pool);
    for (const ns of t.ruleNs) {
      const t0 = performance.now();
      inNs(ns, 'iptables-restore', [], rules);
      restoreMs[n] = performance.now() - t0;
    }
    try {
      const r = run('base', n, vip(n - 1), 80);
      res[n]!.base.push(r);
      if (n === last && !walks.length) for (const ns of t.ruleNs) walks.push(natWalks(ns) / (r.n + r.errors));
    } finally {
      for (const ns of t.ruleNs) inNs(ns, 'iptables-restore', [], idle);
    }
  };
  const runOurs = async (n: number) => {
    using _lb = await attachOurs(cg, n, t.pool);
    res[n]!.ours.push(run('ours', n, vip(n - 1), 80));
  };
  for (let round = 0; round < ROUNDS; round++)
    for (const n of COUNTS) {
      // the order of the three rotates by round, so none always runs right after another's setup or
      // teardown (removing 10 000 services' rules leaves the kernel work to finish)
      const sides = [() => runBase(n), () => runOurs(n), () => runFloor(n)];
      for (let k = 0; k < 3; k++) {
        stopIfInterrupted();
        await sides[(round + k) % 3]!();
      }
    }
  return { res, ctAdded, ct, ctTrouble, restoreMs, walks };
}

/**
 * The signal that interrupted the run, if any. The handler only records it: the run stops at the next
 * step (stopIfInterrupted) and the finally of main removes what it made. Exiting from inside the handler
 * can hang: a SocketLb.attach in flight has a libuv worker inside libbpf waiting for a callback on the
 * main thread, and exit joins that worker.
 */
let interrupted: NodeJS.Signals | undefined;
class Interrupted extends Error {}
const stopIfInterrupted = () => {
  if (interrupted) throw new Interrupted(interrupted);
};

/** Run time per run (ns) and runs per connection of one of ours' programs, from the kernel's BPF statistics. */
interface ProgCost {
  ns: number;
  perConn: number;
}

/**
 * What ours adds to a connection, measured inside the kernel: the run time of the connect4 program
 * (at connect) and of the sock_release program (at close) per run, and their runs per connection
 * (kernel.bpf_stats_enabled on for this one extra run only, which no other figure uses).
 */
async function progCosts(
  t: Topology,
  cbin: string,
  cg: string,
  n: number,
): Promise<Record<string, ProgCost>> {
  using lb = await attachOurs(cg, n, t.pool);
  const sysctl = '/proc/sys/kernel/bpf_stats_enabled';
  const prev = readFileSync(sysctl, 'utf8').trim();
  writeFileSync(sysctl, '1');
  let run: Run;
  try {
    run = client(cbin, cg, t.client, vip(n - 1), t.server.pid!, 80);
  } finally {
    writeFileSync(sysctl, prev);
  }
  const out: Record<string, ProgCost> = {};
  for (const name of ['lb_sock_connect4', 'lb_sock_release']) {
    const id = lb.collection.program(name).info().id;
    const info = JSON.parse(
      execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' }),
    );
    out[name] = {
      ns: info.run_cnt ? info.run_time_ns / info.run_cnt : 0,
      perConn: (info.run_cnt ?? 0) / (run.n + run.errors),
    };
  }
  return out;
}

const rate = (r: Run[]) => r.reduce((a, x) => a + x.n, 0) / r.reduce((a, x) => a + x.secs, 0);
const errs = (r: Run[]) => r.reduce((a, x) => a + x.errors, 0);
const r1 = (x: Run) => x.n / x.secs;
// paired: the sides of one round ran back to back, so a burst of other work on the machine hits all of
// them; the median of the per-round ratios is what the tables report
const paired = (a: Run[], b: Run[], f: (x: Run) => number) => median(a.map((x, i) => f(x) / f(b[i]!)));
const cpuMedian = (r: Run[], f: (x: Run) => number) => median(r.map(f));
const both = (x: Run) => x.cpu + x.srv;

/** The rate table, the CPU table and the per-round line of one topology. */
function tables(m: Measured, withTotal: boolean): { rate: string; cpu: string; perRound: string } {
  const rows: string[] = [];
  const cpuRows: string[] = [];
  const floor = COUNTS.flatMap((n) => m.res[n]!.floor);
  const first = m.res[COUNTS[0]!]!.ours;
  for (const n of COUNTS) {
    const { base, ours, floor: beside } = m.res[n]!;
    const total = withTotal
      ? ` ${cpuMedian(ours, both).toFixed(1)} µs | ${cpuMedian(base, both).toFixed(1)} µs | **${paired(base, ours, both).toFixed(2)}×** |`
      : '';
    cpuRows.push(
      `| ${n.toLocaleString('en')} services | ${cpuMedian(ours, (x) => x.cpu).toFixed(1)} µs | ${cpuMedian(base, (x) => x.cpu).toFixed(1)} µs | **${paired(base, ours, (x) => x.cpu).toFixed(2)}×** | ${cpuMedian(ours, (x) => x.srv).toFixed(1)} µs | ${cpuMedian(base, (x) => x.srv).toFixed(1)} µs |${total}`,
    );
    rows.push(
      `| ${n.toLocaleString('en')} services | ${rate(ours).toFixed(0)}/s, p50 ${median(ours.map((r) => r.p50)).toFixed(0)} µs | ${rate(base).toFixed(0)}/s, p50 ${median(base.map((r) => r.p50)).toFixed(0)} µs | **${paired(ours, base, r1).toFixed(2)}×** | ${paired(ours, base, (x) => x.p50).toFixed(2)}× | ${paired(ours, first, r1).toFixed(2)}× | ${paired(beside, base, r1).toFixed(2)}× | ${paired(ours, beside, r1).toFixed(2)}× |${errs(ours) + errs(base) ? ` errors: ours ${errs(ours)}, baseline ${errs(base)}` : ''}`,
    );
  }
  rows.push(
    `| no service (the floor) | ${rate(floor).toFixed(0)}/s, p50 ${median(floor.map((r) => r.p50)).toFixed(0)} µs | | | | | | |${errs(floor) ? ` errors: ${errs(floor)}` : ''}`,
  );
  cpuRows.push(
    `| no service (the floor) | ${cpuMedian(floor, (x) => x.cpu).toFixed(1)} µs | | | ${cpuMedian(floor, (x) => x.srv).toFixed(1)} µs | |${withTotal ? ` ${cpuMedian(floor, both).toFixed(1)} µs | | |` : ''}`,
  );
  const perRound = COUNTS.map(
    (n) =>
      `${n}: ours ${m.res[n]!.ours.map((x) => r1(x).toFixed(0)).join(' / ')} · baseline ${m.res[n]!.base.map((x) => r1(x).toFixed(0)).join(' / ')} · floor ${m.res[n]!.floor.map((x) => r1(x).toFixed(0)).join(' / ')}`,
  ).join('; ');
  const head = `| services | ours: rate, p50 | baseline: rate, p50 | rate ratio | p50 ratio | ours vs ours at ${COUNTS[0]} | ceiling: floor / baseline | ours / floor |
| --- | --- | --- | --- | --- | --- | --- | --- |`;
  const cpuHead = withTotal
    ? `| services | ours: client CPU/conn | baseline: client CPU/conn | client CPU ratio | ours: server CPU/conn | baseline: server CPU/conn | ours: client + server | baseline: client + server | client + server ratio |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |`
    : `| services | ours: client CPU/conn | baseline: client CPU/conn | client CPU ratio | ours: server CPU/conn | baseline: server CPU/conn |
| --- | --- | --- | --- | --- | --- |`;
  return { rate: `${head}\n${rows.join('\n')}`, cpu: `${cpuHead}\n${cpuRows.join('\n')}`, perRound };
}

const fmtWalks = (w: number[]) => w.map((x) => x.toFixed(3)).join(', ');

/**
 * Where the ceiling (floor / baseline) comes from, in CPU time per connection: the floor's wall time per
 * connection (1 / its rate) against what the baseline adds on top of it (client + server CPU over the
 * floor's), split into a fixed part (at the smallest count: conntrack, NAT, the filter jumps) and a
 * per-rule part; a connection is a serial chain of client and server steps, so the baseline's extra CPU
 * lands on the wall clock nearly one for one and the ceiling is about (floor + extra) / floor.
 */
function ceilingNote(m: Measured, progUs: number | undefined): string {
  const first = COUNTS[0]!;
  const last = COUNTS[COUNTS.length - 1]!;
  const { base, floor } = m.res[last]!;
  // per-round medians throughout (as the ratios): one slow round on a loaded machine moves a pooled rate
  const floorWall = median(floor.map((x) => 1e6 / r1(x)));
  const nodes = Math.max(1, m.walks.length);
  const extra = cpuMedian(base, both) - cpuMedian(floor, both);
  const fixed = cpuMedian(m.res[first]!.base, both) - cpuMedian(m.res[first]!.floor, both);
  const perRule = last > first ? ((extra - fixed) * 1000) / (last - first) / nodes : 0;
  return `Where the ceiling comes from, at ${last.toLocaleString('en')} services: the floor takes ${floorWall.toFixed(1)} µs of wall time per connection (1 / its rate, median of the rounds; client ${cpuMedian(floor, (x) => x.cpu).toFixed(1)} µs + server ${cpuMedian(floor, (x) => x.srv).toFixed(1)} µs of CPU, partly overlapping on the 2 CPUs); the baseline adds ${extra.toFixed(1)} µs of client + server CPU per connection over the floor's, ${fixed.toFixed(1)} µs of which it already adds at ${first.toLocaleString('en')} services (conntrack, NAT, the filter jumps) and the rest about ${perRule.toFixed(1)} ns per KUBE-SERVICES rule per walk (${nodes === 1 ? 'one node walks the chain' : `${nodes} nodes walk the chain per connection`}). So the ceiling is about (${floorWall.toFixed(1)} + ${extra.toFixed(1)}) / ${floorWall.toFixed(1)} = ${((floorWall + extra) / floorWall).toFixed(2)}× (measured: ${paired(floor, base, r1).toFixed(2)}×); a rate ratio of 3× needs the baseline to add at least 2 × ${floorWall.toFixed(1)} = ${(2 * floorWall).toFixed(1)} µs per connection. Ours runs at the floor${progUs === undefined ? '' : ` (its connect4 and sock_release ran ${progUs.toFixed(1)} µs per connection together, BPF statistics above)`}, so this bound is set by the rule count and the floor's own cost (the kernel's TCP connect, request and reset-close over veth), not by any load balancer.`;
}

/** What conntrack did on the nodes: entries per connection per side, and trouble over every run. */
function ctLine(m: Measured, last: number): string {
  const e = (side: keyof Sides) => m.ct[side]?.entriesPerConn.toFixed(2) ?? '–';
  return `Conntrack on the node namespaces (${FLUSH ? 'every table on the path emptied before each run' : 'tables NOT emptied between runs'}): entries left per connection after the first run of each side at ${last.toLocaleString('en')} services: baseline ${e('base')}, ours ${e('ours')}, floor ${e('floor')}; over every run of the placement, packets conntrack found INVALID ${m.ctTrouble.invalid}, failed inserts ${m.ctTrouble.insertFailed}, drops ${m.ctTrouble.drop}.`;
}

async function main(): Promise<void> {
  const tag = `lbb${process.pid}`;
  const cg = join(cgroup2Root(), tag);
  const work = mkdtempSync(join(tmpdir(), 'lb-bench-'));
  const cbin = join(work, 'connect');
  const sbin = join(work, 'server');
  const flush = join(work, 'ctflush');
  execFileSync('cc', ['-O2', '-o', cbin, join(here, 'connect.c')]);
  execFileSync('cc', ['-O2', '-o', sbin, join(here, 'server.c')]);
  execFileSync('cc', ['-O2', '-o', flush, join(here, 'ctflush.c')]);
  const loadBefore = loadavg()[0]!;
  const made: string[] = [];
  const servers: ChildProcess[] = [];
  const measured: Record<string, Measured> = {};
  /** Run time of ours' connect4 program per connection, ns (kernel BPF statistics, one extra run). */
  let costs: Record<string, ProgCost> | undefined;
  /** Every device's MTU and queue counts, over all placements. */
  const shapes = new Set<string>();
  /** Everything the run made goes: servers, namespaces (their rules with them), the cgroup, the build dir. */
  const cleanup = () => {
    for (const s of servers) s.kill();
    try {
      rmdirSync(cg);
    } catch {
      // not made
    }
    for (const ns of made.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(work, { recursive: true, force: true });
  };
  // interrupted: the handler runs once the client run in progress returns (spawnSync) and records the
  // signal; the run stops before its next step and the finally below cleans up
  const onSignal = (signal: NodeJS.Signals) => () => {
    interrupted ??= signal;
  };
  const handlers = [
    ['SIGINT', onSignal('SIGINT')],
    ['SIGTERM', onSignal('SIGTERM')],
  ] as const;
  for (const [signal, h] of handlers) process.on(signal, h);
  try {
    mkdirSync(cg);
    for (const key of TOPOS) {
      stopIfInterrupted();
      const base = key.replace(/-ct$/, '');
      const t =
        base === 'host'
          ? await hostTopology(`${tag}${key === base ? '' : 'x'}`, sbin, made)
          : base === 'pod'
            ? await podTopology(`${tag}${key === base ? '' : 'x'}`, sbin, made)
            : base === 'pod-local'
              ? await podLocalTopology(`${tag}${key === base ? '' : 'x'}`, sbin, made)
              : undefined;
      if (!t)
        throw new Error(
          `LB_BENCH_TOPO: unknown topology ${key} (host, pod, pod-local, each optionally with -ct)`,
        );
      t.key = key;
      t.ct = key !== base;
      servers.push(t.server);
      for (const shape of linkShapes(t.pathNs)) shapes.add(shape);
      measured[key] = await measure(t, cbin, cg, flush);
      stopIfInterrupted();
      if (key === 'host') costs = await progCosts(t, cbin, cg, COUNTS[COUNTS.length - 1]!);
      t.server.kill();
    }
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
  } finally {
    cleanup();
    for (const [signal, h] of handlers) process.off(signal, h);
  }
  if (interrupted) {
    console.error(`lb socket bench: ${interrupted}, stopped; removed what the run made`);
    process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    return;
  }
  const loadAfter = loadavg()[0]!;
  const iptv = execFileSync('iptables', ['--version'], { encoding: 'utf8' })
    .trim()
    .replace(/^iptables /, '');
  const last = COUNTS[COUNTS.length - 1]!;
  const progUs =
    costs === undefined
      ? undefined
      : (costs.lb_sock_connect4!.ns * costs.lb_sock_connect4!.perConn +
          costs.lb_sock_release!.ns * costs.lb_sock_release!.perConn) /
        1000;
  const placement = `${FIFO ? '; both SCHED_FIFO priority 1 (LB_BENCH_SCHED=fifo)' : ''}${PIN ? `; server on CPU ${PIN.split(':')[0]}, client on CPU ${PIN.split(':')[1]}` : ''}${NICE ? `; both at niceness ${NICE}` : ''}`;
  const parts: string[] = [
    `## @datapath/lb: socket LB vs kube-proxy-style iptables, Maglev

Sequential TCP connect + request + close to the ClusterIP of the LAST of N services (the worst case for
kube-proxy's linear KUBE-SERVICES chain: the first packet of each connection walks all N rules), ${MS} ms
per cell, ${ROUNDS} rounds, each round per count the baseline, ours and the floor back to back (their order
rotates by round). Ratios are medians of the per-round ratios. Load average (1 min) ${loadBefore.toFixed(2)} before,
${loadAfter.toFixed(2)} after (2 vCPU shared with other work). Rerun:
\`LB_BENCH=socket flock /tmp/datapath-bench.lock node scripts/bench.mjs lb\` (\`LB_BENCH_TOPO=${TOPOS.join(',')}\`
picks the placements below; \`-ct\` after a placement puts a conntrack rule on its nodes for every side).
- **Shared by every side and placement**: a C client (\`bench/connect.c\`: socket, connect, write, read the
  answer line, close), a C server (\`bench/server.c\`, one process: accept, read, write, close with a reset
  so no TIME_WAIT is left; SO_LINGER set once on the listener; TCP_DEFER_ACCEPT so it wakes once per
  connection), the same binaries everywhere${placement}. Every link is a veth pair with the kernel's
  defaults, the same for all sides and placements (every device the bench made: ${[...shapes].join('; ')}).
  Before every run of every side the conntrack table of every namespace on the path is emptied (a
  ctnetlink flush, \`bench/ctflush.c\`), so no side starts with entries another side left${FLUSH ? '' : ' (**not in this run: LB_BENCH_CT_FLUSH=0**)'}.
- **Baseline**: the filter and nat rules kube-proxy's iptables mode writes for N ClusterIP services of two
  endpoints (filter INPUT/FORWARD/OUTPUT jumps to KUBE-PROXY-FIREWALL, KUBE-SERVICES, KUBE-FORWARD,
  KUBE-EXTERNAL-SERVICES and kubelet's KUBE-FIREWALL localnet rule; nat PREROUTING/OUTPUT → KUBE-SERVICES, one
  rule per service, KUBE-NODEPORTS (\`addrtype LOCAL\`) last → KUBE-SVC-* with the KUBE-MARK-MASQ rule for
  sources outside the cluster CIDR 10.244.0.0/16 and \`statistic\` random over the two endpoints → KUBE-SEP-*
  with the hairpin mark and DNAT; KUBE-POSTROUTING; comments as kube-proxy writes them, none on the SVC/SEP
  rules above 1000 endpoints), loaded with \`iptables-restore\` (${iptv}); the first packet of each connection
  walks the nat chains, conntrack carries the rest. After each baseline run empty tables are restored.
  Each placement reports how many packets jumped to nat KUBE-SERVICES per connection on each rule
  namespace (1 = every SYN walked the chain); slightly below 1 when a SYN reused the 4-tuple of a
  connection closed (reset) less than 10 s before, whose conntrack entry it then keeps, DNAT included,
  without a walk: in the baseline's favour.
- **Ours**: the same services in \`SocketLb\` on a cgroup holding the client (random selection). Per TCP
  connection two of its programs run (sendmsg4/recvmsg4 are UDP hooks, getpeername4 runs on getpeername()
  only): \`cgroup/connect4\` at connect (a service lookup, a slot lookup, a backend lookup and one
  \`lb_sock_rev\` update; the packets then carry the backend address) and \`cgroup/sock_release\` at close
  (deletes the socket's \`lb_sock_rev\` entry).${costs === undefined ? '' : ` connect4 ran **${costs.lb_sock_connect4!.ns.toFixed(0)} ns** per run (${costs.lb_sock_connect4!.perConn.toFixed(2)} runs per connection), sock_release **${costs.lb_sock_release!.ns.toFixed(0)} ns** per run (${costs.lb_sock_release!.perConn.toFixed(2)} runs per connection): the kernel's BPF statistics over one extra run at ${last.toLocaleString('en')} services in the host placement, which no other figure uses.`}
  In the host, pod and pod-local placements no namespace on the path has a netfilter table while ours
  runs, so no conntrack either (checked per placement below); in the \`-ct\` placements the nodes hold one
  conntrack rule for every side, and ours' connections get a conntrack entry on every node they cross,
  as the floor's do (the nodes here forward with the kernel's stack: no BPF on them redirects around
  netfilter).
- **Floor**: beside each pair the same client also runs straight to a backend address (no service, no
  rule, no program): the kernel's own cost of a connection on that path, below which no load balancer can
  go. \`floor / baseline\` is the ceiling of any rate ratio there; \`ours / floor\` is what ours keeps of it.
- **CPU time per connection**, the second figure: the rate includes the time client and server wait for a
  CPU on a loaded machine, CPU time does not. Client: its own CPU time (user + system, and the softirq work
  the kernel does in its context: the netfilter walks, \`connect4\` and, on veth, the forwarding of its
  packets through the node namespaces); server: the server process's (\`/proc/<pid>/schedstat\`), which
  includes the same for its replies. Medians over the rounds; ratios are baseline / ours (median of the
  per-round ratios).

Targets: ≥ 3× the baseline at 10 000 services; ours at 10 000 ≥ 0.9× ours at 100.
`,
  ];
  const h = measured.host;
  if (h) {
    const tb = tables(h, false);
    parts.push(`### Host-network client (the node's own namespace)

The client runs in a namespace that holds the baseline's rules (a process in a node's root namespace),
the server in a second namespace one veth away (backends 10.244.1.1–4 on its one device). Per connection
the baseline's SYN walks nat OUTPUT → KUBE-SERVICES (N rules, the Nth matches) → KUBE-SVC → KUBE-SEP (DNAT),
filter OUTPUT (KUBE-PROXY-FIREWALL, KUBE-SERVICES, KUBE-FIREWALL), nat POSTROUTING; the server's namespace
has no rule (checked: packets that jumped from nat PREROUTING/OUTPUT to KUBE-SERVICES per connection,
one baseline run at ${last.toLocaleString('en')} services: ${fmtWalks(h.walks)}). Most conntrack entries one run of ours or
of the floor added on the path: ${h.ctAdded}.

${tb.rate}

${tb.cpu}

${ceilingNote(h, progUs)}

Per-round connections/s: ${tb.perRound}.
`);
  }
  const p = measured.pod;
  if (p) {
    const tb = tables(p, true);
    parts.push(`### Pod to ClusterIP, backends on another node (kube-proxy's rules on both nodes)

A real cluster: kube-proxy writes the same rules on every node, and a pod's connection is forwarded, not
sent from the node's own stack. Namespaces: client pod → veth → node A → underlay veth (198.18.0.1/24 ↔
198.18.0.2/24) → node B → veth → backend pod (10.244.1.1–4, one server answering on all four). Pods have /32
addresses and a default route via their node's router address on the node's side of the veth (routed
CNIs such as Cilium and Calico; no bridge); each node has a /32 route per local pod and routes the other
node's pod /24 over the underlay; \`net.ipv4.ip_forward=1\` in the two node namespaces (set there only).
- **Baseline**: \`iptablesRules(N)\` in node A and node B (the same rule set), nothing in the pods. Per
  connection the SYN, on **node A**: nat PREROUTING → KUBE-SERVICES, N rules, the Nth (the probed
  service) matches → KUBE-SVC-* (the masquerade rule does not match: the source is in 10.244.0.0/16;
  \`statistic\`) → KUBE-SEP-* (hairpin rule, DNAT to a backend on node B); filter FORWARD →
  KUBE-PROXY-FIREWALL (empty), KUBE-FORWARD (INVALID, mark, ESTABLISHED: none match a SYN), KUBE-SERVICES and
  KUBE-EXTERNAL-SERVICES (empty in the filter table: every service has endpoints) → policy ACCEPT; nat
  POSTROUTING → KUBE-POSTROUTING (no mark: RETURN); a conntrack entry. On **node B** the DNATed SYN (to a
  pod address) walks nat PREROUTING → KUBE-SERVICES: all N rules and the KUBE-NODEPORTS \`addrtype LOCAL\`
  rule, none match; the same filter FORWARD and nat POSTROUTING walk; a second conntrack entry. Every other
  packet of the connection, both directions, on both nodes: a conntrack lookup (node A translates the
  replies back) and the filter FORWARD jumps (KUBE-FORWARD accepts it as ESTABLISHED). Checked: packets
  that jumped from nat PREROUTING/OUTPUT to KUBE-SERVICES per connection, one baseline run at
  ${last.toLocaleString('en')} services: node A ${fmtWalks(p.walks.slice(0, 1))}, node B ${fmtWalks(p.walks.slice(1))}.
- **Ours**: SocketLb on the client pod's cgroup; no rule, no netfilter table in any namespace: the nodes
  only route. Most conntrack entries one run of ours or of the floor added on the path (pod, node A,
  node B, backend pod): ${p.ctAdded}. ${ctLine(p, last)}
- **Floor**: the client pod straight to 10.244.1.1:8080 over the same path.

iptables-restore of ${last.toLocaleString('en')} services' rules into one node: ${(p.restoreMs[last] ?? 0).toFixed(0)} ms (not measured in any figure).

${tb.rate}

The client's CPU time includes the forwarding of its packets through both node namespaces (veth hands
packets on in the sender's softirq), the server's that of the replies; client + server is the whole
per-connection CPU cost of the path.

${tb.cpu}

${ceilingNote(p, progUs)}

Per-round connections/s: ${tb.perRound}.
`);
  }
  const l = measured['pod-local'];
  if (l) {
    const tb = tables(l, true);
    parts.push(`### Pod to ClusterIP, backends on the same node

A client pod as above and the backend pod (10.244.0.11–14) on one node (namespaces of their own), so the
connection never leaves that node. Baseline: the rules on that node (other nodes are not on the path);
per connection the SYN walks the node's nat PREROUTING → KUBE-SERVICES (N rules, the Nth matches) → KUBE-SVC → KUBE-SEP (DNAT), filter
FORWARD and nat POSTROUTING as above, once (checked: packets that jumped to KUBE-SERVICES per connection
on the node: ${fmtWalks(l.walks)}). Ours and the floor as above. Most conntrack entries one run of ours or
of the floor added on the path: ${l.ctAdded}. ${ctLine(l, last)}

${tb.rate}

${tb.cpu}

${ceilingNote(l, progUs)}

Per-round connections/s: ${tb.perRound}.
`);
  }
  const titles: Record<string, string> = {
    host: 'Host-network client',
    pod: 'Pod to ClusterIP, backends on another node',
    'pod-local': 'Pod to ClusterIP, backends on the same node',
  };
  const nodes: Record<string, string> = {
    host: "the client's namespace",
    pod: 'node A and node B',
    'pod-local': 'the node',
  };
  for (const key of TOPOS.filter((k) => k.endsWith('-ct'))) {
    const m = measured[key];
    if (!m) continue;
    const base = key.replace(/-ct$/, '');
    const tb = tables(m, base !== 'host');
    parts.push(`### ${titles[base]}, conntrack on the nodes (\`${key}\`)

The ${base} placement above with one change, the same for all three sides: whenever the baseline's rules are
not loaded, ${nodes[base]} hold a stateful filter rule (\`-m conntrack --ctstate INVALID -j DROP\` on INPUT,
FORWARD and OUTPUT, no nat table; the baseline's rules have the same drop in KUBE-FORWARD), so conntrack
tracks every packet that crosses a node for ours and the floor as it does for the baseline: a node whose
firewall has any conntrack rule, with the kernel forwarding pod traffic through the node's netfilter
hooks (no BPF on the nodes redirecting around them). Ours has no rule to walk there, but each node
makes and looks up a conntrack entry per connection, as for the floor.${FLUSH ? '' : ' **LB_BENCH_CT_FLUSH=0: tables were not emptied between runs.**'}
Checked: packets that jumped to nat KUBE-SERVICES per connection, one baseline run at
${last.toLocaleString('en')} services: ${fmtWalks(m.walks)}.

${ctLine(m, last)}

${tb.rate}

${tb.cpu}

${ceilingNote(m, progUs)}

Per-round connections/s: ${tb.perRound}.
`);
  }
  if (!process.env.LB_BENCH_COUNTS)
    parts.push(`| Maglev | ours | baseline | ratio |
| --- | --- | --- | --- |
${maglevRows().join('\n')}
`);
  const md = parts.join('\n');
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'lb-socket.md'), md);
  }
  console.log(md);
}

await main();
