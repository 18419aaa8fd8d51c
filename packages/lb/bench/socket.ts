// Benchmark: socket LB (@datapath/lb SocketLb) vs a kube-proxy-style iptables baseline the bench builds
// itself, and Maglev table builds vs a straightforward implementation, all in one run.
//   - iptables: the filter and nat rules kube-proxy's iptables mode writes (iptablesRules below), loaded
//     with iptables-restore inside a namespace the bench makes.
//   - ours: the same services through SocketLb on a cgroup the bench makes.
//   A C client (bench/connect.c, built here) runs sequential TCP connect + request + close to the LAST
//   service's ClusterIP (the worst case for a linear chain) from inside that namespace and cgroup; a C
//   server (bench/server.c) answers in a second namespace. 100, 1 000 and 10 000 services; each round
//   measures both sides back to back (which goes first alternates) and the table reports medians of the
//   per-round ratios. Second figure: CPU time per connection of the client (its own clock) and of the
//   server (/proc/<pid>/schedstat), which a loaded machine's waits for a CPU do not enter.
// Knobs (the section says which were on): LB_BENCH_MS, LB_BENCH_ROUNDS, LB_BENCH_COUNTS
// (e.g. 100,10000), LB_BENCH_NICE (niceness of client and server, default -10, 0: none), LB_BENCH_PIN (server:client
// CPUs, e.g. 1:1).
//   - floor: beside each pair the client also runs straight to a backend address (no service, no rule, no
//     program): the kernel's own cost of a connection in this harness, which no load balancer can go below.
// Writes $BENCH_OUT/lb-socket.md. Needs root, cc, clang, iptables. Run: LB_BENCH=socket node scripts/bench.mjs lb
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocketLb } from '../src/datapath.js';
import { maglevMoved, maglevPermutation, maglevTable } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const MS = Number(process.env.LB_BENCH_MS ?? 1000);
const ROUNDS = Number(process.env.LB_BENCH_ROUNDS ?? 5);
const COUNTS = (process.env.LB_BENCH_COUNTS ?? '100,1000,10000').split(',').map(Number);
const PIN = process.env.LB_BENCH_PIN ?? '';
/**
 * Niceness of the client and server (both sides alike, default -10): on this shared 2-vCPU machine the
 * per-connection wakeups of client and server wait behind other work, a fixed cost both sides pay that
 * compresses the ratio; 0 turns it off.
 */
const NICE = process.env.LB_BENCH_NICE ?? '-10';
const POOL = ['10.244.1.1', '10.244.1.2', '10.244.1.3', '10.244.1.4'];
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
      `echo $$ > "$0/cgroup.procs" && exec ${NICE ? `nice -n ${NICE} ` : ''}${PIN ? `taskset -c ${PIN.split(':')[1]} ` : ''}ip netns exec "$1" "$2" "$3" "$4" "$5"`,
      cg,
      ns,
      bin,
      host,
      String(port),
      String(MS),
    ],
    { encoding: 'utf8', timeout: MS + 30_000 },
  );
  if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
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

/** A kube-proxy chain suffix: 16 characters of a hash of the service (kube-proxy uses base32 of SHA-256). */
const chainId = (what: string) => createHash('sha256').update(what).digest('hex').slice(0, 16).toUpperCase();

/**
 * The rules kube-proxy's iptables mode writes for `count` ClusterIP services of two endpoints each
 * (pkg/proxy/iptables: the filter-table jumps and chains, KUBE-SERVICES with one rule per service and
 * the KUBE-NODEPORTS rule last, KUBE-SVC-* with the masquerade mark for traffic from outside the
 * cluster CIDR and `statistic` random over the endpoints, KUBE-SEP-* with the hairpin mark and DNAT,
 * KUBE-MARK-MASQ and KUBE-POSTROUTING), comments included.
 */
function iptablesRules(count: number): string {
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
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
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
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (let i = 0; i < count; i++) {
    const name = `default/svc-${i}:http`;
    const svc = `KUBE-SVC-${chainId(`${name}tcp`)}`;
    const eps = [0, 1].map((k) => `${POOL[(i + k) % 4]}:${PORT}`);
    const seps = eps.map((ep) => `KUBE-SEP-${chainId(`${name}tcp${ep}`)}`);
    chains.push(`:${svc} - [0:0]`, ...seps.map((c) => `:${c} - [0:0]`));
    rules.push(
      `-A KUBE-SERVICES -d ${vip(i)}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport 80 -j ${svc}`,
      `-A ${svc} ! -s 10.244.0.0/16 -d ${vip(i)}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
      `-A ${svc} -m comment --comment "${name} -> ${eps[0]}" -m statistic --mode random --probability 0.50000000000 -j ${seps[0]}`,
      `-A ${svc} -m comment --comment "${name} -> ${eps[1]}" -j ${seps[1]}`,
    );
    for (const [k, sep] of seps.entries())
      rules.push(
        `-A ${sep} -s ${eps[k]!.split(':')[0]}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`,
        `-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${eps[k]}`,
      );
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  return `${[...filter, ...chains, ...rules, 'COMMIT'].join('\n')}\n`;
}

async function main(): Promise<void> {
  const tag = `lbb${process.pid}`;
  const cns = `${tag}-c`;
  const pns = `${tag}-p`;
  const cg = join(cgroup2Root(), tag);
  const work = mkdtempSync(join(tmpdir(), 'lb-bench-'));
  const cbin = join(work, 'connect');
  const sbin = join(work, 'server');
  execFileSync('cc', ['-O2', '-o', cbin, join(here, 'connect.c')]);
  execFileSync('cc', ['-O2', '-o', sbin, join(here, 'server.c')]);
  const rows: string[] = [];
  const cpuRows: string[] = [];
  const loadBefore = loadavg()[0]!;
  let rounds: Record<number, { base: Run[]; ours: Run[]; floor: Run[] }> | undefined;
  /** The most conntrack entries one run of ours or of the floor added in the client namespace. */
  let ctAdded = 0;
  /** Run time of ours' connect4 program per connection, ns (kernel BPF statistics, one extra run). */
  let connect4Ns = 0;
  let server: ReturnType<typeof spawn> | undefined;
  try {
    ip('netns', 'add', cns);
    ip('netns', 'add', pns);
    ip('-n', cns, 'link', 'set', 'lo', 'up');
    ip('-n', pns, 'link', 'set', 'lo', 'up');
    ip('-n', cns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pns);
    ip('-n', cns, 'addr', 'add', '10.244.0.1/16', 'dev', 'eth0');
    for (const a of POOL) ip('-n', pns, 'addr', 'add', `${a}/16`, 'dev', 'eth0');
    ip('-n', cns, 'link', 'set', 'eth0', 'up');
    ip('-n', pns, 'link', 'set', 'eth0', 'up');
    ip('-n', cns, 'route', 'add', '10.96.0.0/12', 'dev', 'eth0');
    mkdirSync(cg);
    server = spawn(
      'nice',
      [
        '-n',
        NICE || '0',
        ...(PIN ? ['taskset', '-c', PIN.split(':')[0]!] : []),
        'ip',
        'netns',
        'exec',
        pns,
        sbin,
        String(PORT),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const res: Record<string, { base: Run[]; ours: Run[]; floor: Run[] }> = {};
    for (const n of COUNTS) res[n] = { base: [], ours: [], floor: [] };
    const spid = server.pid!;
    /** Conntrack entries in the client namespace (ours and the floor must not add any: no table there). */
    const ctCount = () =>
      Number(
        execFileSync('ip', ['netns', 'exec', cns, 'cat', '/proc/sys/net/netfilter/nf_conntrack_count'], {
          encoding: 'utf8',
        }),
      );
    const runNoTable = (host: string, port: number) => {
      const before = ctCount();
      const r = client(cbin, cg, cns, host, spid, port);
      ctAdded = Math.max(ctAdded, ctCount() - before);
      return r;
    };
    const runFloor = (n: number) => res[n]!.floor.push(runNoTable(POOL[0]!, PORT));
    const runBase = (n: number) => {
      execFileSync('ip', ['netns', 'exec', cns, 'iptables-restore'], { input: iptablesRules(n) });
      res[n]!.base.push(client(cbin, cg, cns, vip(n - 1), spid, 80));
      execFileSync('ip', ['netns', 'exec', cns, 'iptables-restore'], {
        input: '*filter\nCOMMIT\n*nat\nCOMMIT\n',
      });
    };
    const attachOurs = async (n: number) => {
      const lb = await SocketLb.attach({ cgroupPath: cg, tableSize: 251 });
      for (let i = 0; i < n; i++)
        lb.upsert({
          name: `s${i}`,
          protocol: 'TCP',
          frontends: [{ address: vip(i), port: 80 }],
          backends: [0, 1].map((k) => ({ address: POOL[(i + k) % 4]!, port: PORT })),
        });
      return lb;
    };
    const runOurs = async (n: number) => {
      using _lb = await attachOurs(n);
      res[n]!.ours.push(runNoTable(vip(n - 1), 80));
    };
    /**
     * What ours adds to a connection, measured inside the kernel: the run time of the connect4 program
     * per run (kernel.bpf_stats_enabled on for this one extra run only, which no other figure uses).
     */
    const connect4Cost = async (n: number) => {
      using lb = await attachOurs(n);
      const sysctl = '/proc/sys/kernel/bpf_stats_enabled';
      const prev = readFileSync(sysctl, 'utf8').trim();
      writeFileSync(sysctl, '1');
      try {
        client(cbin, cg, cns, vip(n - 1), spid, 80);
      } finally {
        writeFileSync(sysctl, prev);
      }
      const id = lb.collection.program('lb_sock_connect4').info().id;
      const info = JSON.parse(
        execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' }),
      );
      return info.run_cnt ? info.run_time_ns / info.run_cnt : 0;
    };
    for (let round = 0; round < ROUNDS; round++)
      for (const n of COUNTS) {
        // the order of the three rotates by round, so none always runs right after another's setup or
        // teardown (removing 10 000 services' rules leaves the kernel work to finish)
        const sides = [() => runBase(n), () => runOurs(n), () => runFloor(n)];
        for (let k = 0; k < 3; k++) await sides[(round + k) % 3]!();
      }
    connect4Ns = await connect4Cost(COUNTS[COUNTS.length - 1]!);
    const rate = (r: Run[]) => r.reduce((a, x) => a + x.n, 0) / r.reduce((a, x) => a + x.secs, 0);
    const errs = (r: Run[]) => r.reduce((a, x) => a + x.errors, 0);
    const r1 = (x: Run) => x.n / x.secs;
    // paired: the two sides of one round ran back to back, so a burst of other work on the machine
    // hits both; the median of the per-round ratios is what the table reports
    const paired = (a: Run[], b: Run[], f: (x: Run) => number) => median(a.map((x, i) => f(x) / f(b[i]!)));
    const cpu = (r: Run[], f: (x: Run) => number) => median(r.map(f));
    /** Every floor run (the floor does not depend on the count). */
    const floor = COUNTS.flatMap((n) => res[n]!.floor);
    for (const n of COUNTS) {
      const { base, ours, floor: beside } = res[n]!;
      cpuRows.push(
        `| ${n.toLocaleString('en')} services | ${cpu(ours, (x) => x.cpu).toFixed(1)} µs | ${cpu(base, (x) => x.cpu).toFixed(1)} µs | **${paired(base, ours, (x) => x.cpu).toFixed(2)}×** | ${cpu(ours, (x) => x.srv).toFixed(1)} µs | ${cpu(base, (x) => x.srv).toFixed(1)} µs |`,
      );
      rows.push(
        `| ${n.toLocaleString('en')} services | ${rate(ours).toFixed(0)}/s, p50 ${median(ours.map((r) => r.p50)).toFixed(0)} µs | ${rate(base).toFixed(0)}/s, p50 ${median(base.map((r) => r.p50)).toFixed(0)} µs | **${paired(ours, base, r1).toFixed(2)}×** | ${paired(ours, base, (x) => x.p50).toFixed(2)}× | ${paired(ours, res[COUNTS[0]!]!.ours, r1).toFixed(2)}× | ${paired(beside, base, r1).toFixed(2)}× | ${paired(ours, beside, r1).toFixed(2)}× |${errs(ours) + errs(base) ? ` errors: ours ${errs(ours)}, baseline ${errs(base)}` : ''}`,
      );
    }
    rows.push(
      `| no service (the floor) | ${rate(floor).toFixed(0)}/s, p50 ${median(floor.map((r) => r.p50)).toFixed(0)} µs | | | | | | |${errs(floor) ? ` errors: ${errs(floor)}` : ''}`,
    );
    cpuRows.push(
      `| no service (the floor) | ${cpu(floor, (x) => x.cpu).toFixed(1)} µs | | | ${cpu(floor, (x) => x.srv).toFixed(1)} µs | |`,
    );
    rounds = res;
  } finally {
    server?.kill();
    try {
      rmdirSync(cg);
    } catch {
      // not made
    }
    for (const ns of [cns, pns]) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(work, { recursive: true, force: true });
  }
  const perRound = COUNTS.map(
    (n) =>
      `${n}: ours ${rounds![n]!.ours.map((x) => (x.n / x.secs).toFixed(0)).join(' / ')} · baseline ${rounds![n]!.base.map((x) => (x.n / x.secs).toFixed(0)).join(' / ')} · floor ${rounds![n]!.floor.map((x) => (x.n / x.secs).toFixed(0)).join(' / ')}`,
  ).join('; ');
  const iptv = execFileSync('iptables', ['--version'], { encoding: 'utf8' })
    .trim()
    .replace(/^iptables /, '');
  const md = `## @datapath/lb: socket LB vs kube-proxy-style iptables, Maglev

Sequential TCP connect + request + close to the ClusterIP of the last of N services (the worst case for
kube-proxy's linear KUBE-SERVICES chain), ${MS} ms per cell, ${ROUNDS} rounds, each round per
count the baseline, ours and the floor back to back (their order rotates by round).
- **Shared by both sides**: a C client (\`bench/connect.c\`: socket, connect, write, read the answer
  line, close) in a client namespace, a C server (\`bench/server.c\`, one process: accept, read, write,
  close with a reset so no TIME_WAIT is left; SO_LINGER set once on the listener; TCP_DEFER_ACCEPT so it
  wakes once per connection) in a second namespace, over one veth pair${PIN ? `; server on CPU ${PIN.split(':')[0]}, client on CPU ${PIN.split(':')[1]}` : ''}${NICE ? `; both at niceness ${NICE}` : ''}.
- **Baseline**: the filter and nat rules kube-proxy's iptables mode writes (filter INPUT/FORWARD/OUTPUT
  jumps to KUBE-PROXY-FIREWALL, KUBE-SERVICES, KUBE-FORWARD; nat PREROUTING/OUTPUT → KUBE-SERVICES, one rule
  per service, KUBE-NODEPORTS last → KUBE-SVC-* with the KUBE-MARK-MASQ rule and \`statistic\` random over two
  endpoints → KUBE-SEP-* with the hairpin mark and DNAT; KUBE-POSTROUTING; comments included), loaded with
  \`iptables-restore\` (${iptv}) into the client's namespace; the first packet of each connection walks the
  chains, conntrack carries the rest.
- **Ours**: the same services in \`SocketLb\` on a cgroup holding the client (random selection). Per TCP
  connection only \`cgroup/connect4\` runs (sendmsg4/recvmsg4 are UDP hooks, getpeername4 runs on
  getpeername() only): a service lookup, a slot lookup, a backend lookup and one \`lb_sock_rev\` update; the
  packets then carry the backend address. It ran **${connect4Ns.toFixed(0)} ns per connection** (the kernel's
  BPF statistics over one extra run at ${COUNTS[COUNTS.length - 1]!.toLocaleString('en')} services, which no other figure uses). The client namespace has no
  netfilter table while ours runs (the baseline's \`iptables-restore\` of empty tables removes them), so no
  conntrack either: the most conntrack entries one run of ours or of the floor added there: ${ctAdded}.
- **Floor**: beside each pair the same client also runs straight to a backend address (no service, no
  rule, no program): the kernel's own cost of a connection in this harness, below which no load balancer can go.
  \`floor / baseline\` is the ceiling of any rate ratio here; \`ours / floor\` is what ours keeps of it.

Targets: ≥ 3× the baseline at 10 000 services; ours at 10 000 ≥ 0.9× ours at 100. Ratios are medians of
the per-round ratios. Load average (1 min) ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after (2 vCPU shared
with other work). Rerun: \`LB_BENCH=socket flock /tmp/datapath-bench.lock node scripts/bench.mjs lb\`.

| services | ours: rate, p50 | baseline: rate, p50 | rate ratio | p50 ratio | ours vs ours at ${COUNTS[0]} | ceiling: floor / baseline | ours / floor |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

CPU time per connection, the second figure: the rate includes the time client and server wait for a CPU
on a loaded machine, CPU time does not. Client: its own CPU time (user + system, and the softirq work the
kernel does in its context: the netfilter OUTPUT walk and \`connect4\` run in its \`connect()\`); server:
the server process's (\`/proc/<pid>/schedstat\`), the same work for both sides. Medians over the rounds;
the ratio is baseline / ours (median of the per-round ratios).

| services | ours: client CPU/conn | baseline: client CPU/conn | client CPU ratio | ours: server CPU/conn | baseline: server CPU/conn |
| --- | --- | --- | --- | --- | --- |
${cpuRows.join('\n')}

Per-round connections/s: ${perRound}.
${
  process.env.LB_BENCH_COUNTS
    ? ''
    : `
| Maglev | ours | baseline | ratio |
| --- | --- | --- | --- |
${maglevRows().join('\n')}
`
}`;
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'lb-socket.md'), md);
  }
  console.log(md);
}

await main();
