/**
 * Where the CPU goes in a 4-stream iperf3 run, per setup (`pnpm exec tsx bench/profile-datapath.ts
 * [on|off|egress|bridge]…`, root, perf installed; run under the bench lock): sets the pair up, runs
 * iperf3 -P 4 (pinned as in bench/run.ts), records `perf record -a -g` for a few seconds in the
 * middle, prints the flat profile (`perf report --no-children --sort sym`) and the share of the
 * BPF programs, the map helpers behind their lookups, and the bridge/netfilter path.
 * Environment: PROFILE_T (s of iperf3, default 10), PERF_T (s recorded, default 4), TOP (rows, 40),
 * PERF_DIR (keep the perf.data files there, `<mode>.data`, for `perf report -i`), PERF_STAT=1
 * (count wake-ups, IPIs and packets per GB with `perf stat` instead of sampling).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentPair, bridgePair, iperf, type Pair, sh } from './pairs.js';

const PROFILE_T = Number(process.env.PROFILE_T ?? 10);
const PERF_T = Number(process.env.PERF_T ?? 4);
const TOP = Number(process.env.TOP ?? 40);
/** PERF_STAT=1: count scheduler and IPI events per GB instead of sampling. */
const STAT = process.env.PERF_STAT === '1';
const STAT_EVENTS = [
  'sched:sched_wakeup',
  'sched:sched_switch',
  'irq_vectors:reschedule_entry',
  'irq_vectors:call_function_single_entry',
  'net:netif_rx',
  'net:netif_receive_skb',
  'net:net_dev_xmit',
];

type Mode = 'on' | 'off' | 'egress' | 'bridge';

/** Symbol groups whose summed share is printed (a symbol counts in the first group it matches). */
const GROUPS: [string, RegExp][] = [
  ['BPF programs (JITed bpf_prog_*)', /^bpf_prog_/],
  [
    'BPF map helpers (hash, LRU, per-CPU, array, LPM lookups/updates)',
    /^(__)?(htab_|bpf_map_|percpu_|array_map_|trie_|lookup_nulls_elem|lookup_elem_raw|bpf_lru_|__bpf_lru|jhash|pcpu_)/,
  ],
  ['other BPF helpers (ktime, redirect, skb)', /^(bpf_|____bpf_|sk_skb_|skb_do_redirect|ktime_get)/],
  ['tc / tcx hooks (classifier entry)', /^(tcx_|tc_run|sch_handle|cls_bpf|tcf_classify|__tcf_)/],
  ['bridge (br_*)', /^(br_|__br_|nbp_)/],
  [
    'netfilter / conntrack (nf_*, ipt_*, nft_*)',
    /^(nf_|__nf_|ipt_|nft_|ipv4_conntrack|ip_sabotage|iptable_)/,
  ],
];

/** Hook functions whose inclusive share (the function and everything it calls) is printed. */
const INCLUSIVE = [
  'sch_handle_ingress',
  'tcx_run',
  'tcf_classify',
  'cls_bpf_classify',
  'skb_do_redirect',
  'br_handle_frame',
  'br_forward',
  'nf_hook_slow',
  'veth_xmit',
  'process_backlog',
  '__netif_receive_skb_core',
  'ip_rcv',
  'tcp_v4_rcv',
  'net_rx_action',
];

async function profile(mode: Mode, dir: string): Promise<void> {
  let pair: Pair;
  if (mode === 'bridge') pair = bridgePair(0);
  else pair = await agentPair(mode !== 'off', mode === 'egress' ? 'egress' : 'peer');
  const data = join(dir, `${mode}.data`);
  try {
    sh('nsenter', [`--net=/run/netns/${pair.client}`, 'ping', '-c', '2', '-i', '0.2', '-W', '1', pair.ip]);
    const run = iperf(pair, 4, PROFILE_T, { server: '0', client: '1' });
    await new Promise((r) => setTimeout(r, Math.max(0, (PROFILE_T - PERF_T) / 2) * 1000));
    const args = STAT
      ? [
          'stat',
          '-a',
          '-x',
          ',',
          '-o',
          `${data}.stat`,
          '-e',
          STAT_EVENTS.join(','),
          '--',
          'sleep',
          String(PERF_T),
        ]
      : ['record', '-a', '-g', '-q', '-o', data, '--', 'sleep', String(PERF_T)];
    const rec = spawn('perf', args, { stdio: 'ignore' });
    const recorded = new Promise<void>((resolve, reject) =>
      rec.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`perf record exited ${code}`)))),
    );
    const gbit = await run;
    await recorded;
    if (STAT) {
      // counts per GB moved while perf stat ran (the iperf3 average rate times PERF_T)
      const gb = (gbit / 8) * PERF_T;
      const counts = readFileSync(`${data}.stat`, 'utf8')
        .split('\n')
        .map((l) => l.split(','))
        .filter((f) => f.length > 3 && /^\d+$/.test(f[0]!))
        .map((f) => `${f[2]} ${(Number(f[0]) / gb).toFixed(0)}/GB`);
      console.log(
        `\n=== ${mode} (${pair.name}): iperf3 -P 4 ${gbit.toFixed(2)} Gbit/s; ${counts.join(', ')}`,
      );
      return;
    }
    const flat = sh('perf', [
      'report',
      '-i',
      data,
      '--no-children',
      '--sort',
      'sym',
      '--stdio',
      '-g',
      'none',
      '--percent-limit',
      '0',
    ]);
    const rows = [...flat.matchAll(/^\s+([\d.]+)%\s+\[(.)\]\s+(\S+)/gm)].map((m) => ({
      pct: Number(m[1]),
      space: m[2]!,
      sym: m[3]!,
    }));
    const shares = GROUPS.map(([name]) => ({ name, pct: 0, syms: [] as string[] }));
    for (const r of rows) {
      const g = GROUPS.findIndex(([, re]) => re.test(r.sym));
      if (g < 0) continue;
      shares[g]!.pct += r.pct;
      if (r.pct >= 0.1) shares[g]!.syms.push(`${r.sym} ${r.pct.toFixed(2)}`);
    }
    const children = sh('perf', [
      'report',
      '-i',
      data,
      '--children',
      '--sort',
      'sym',
      '--stdio',
      '-g',
      'none',
    ]);
    const inclusive = INCLUSIVE.map((sym) => {
      const m = children.match(new RegExp(`^\\s+([\\d.]+)%\\s+[\\d.]+%\\s+\\[.\\]\\s+${sym}\\s*$`, 'm'));
      return `${sym} ${m ? m[1] : '0'}`;
    });
    // the agent's programs with everything they call (helpers, map lookups; not the redirect itself)
    const progs = [
      ...children.matchAll(/^\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+bpf_prog_\w+_(?:from|to)_container\s*$/gm),
    ].reduce((a, m) => a + Number(m[1]), 0);
    inclusive.push(`bpf_prog_*_container ${progs.toFixed(2)}`);
    const comms = sh('perf', [
      'report',
      '-i',
      data,
      '--no-children',
      '--sort',
      'comm',
      '--stdio',
      '-g',
      'none',
    ])
      .split('\n')
      .filter((l) => /^\s+[\d.]+%/.test(l))
      .slice(0, 8)
      .map((l) => l.trim().replace(/\s+/g, ' '));
    const perCpu = sh('perf', [
      'report',
      '-i',
      data,
      '--no-children',
      '--sort',
      'cpu,comm',
      '--stdio',
      '-g',
      'none',
    ])
      .split('\n')
      .map((l) => l.match(/^\s+([\d.]+)%\s+(\d+)\s+(\S+)/))
      .filter((m): m is RegExpMatchArray => m !== null && Number(m[1]) >= 1)
      .map((m) => `cpu${m[2]} ${m[3]} ${m[1]}%`);
    const idle = rows.filter((r) =>
      /^(default_idle|pv_native_safe_halt|native_safe_halt|cpuidle|poll_idle|haltpoll)/.test(r.sym),
    );
    console.log(
      `\n=== ${mode} (${pair.name}): iperf3 -P 4 ${gbit.toFixed(2)} Gbit/s over ${PROFILE_T} s, perf ${PERF_T} s`,
    );
    console.log(`idle: ${idle.reduce((a, r) => a + r.pct, 0).toFixed(2)} %`);
    console.log(`by command: ${comms.join(', ')}`);
    console.log(`by CPU and command (≥ 1 %): ${perCpu.join(', ')}`);
    console.log(`inclusive (with children) %: ${inclusive.join(', ')}`);
    for (const s of shares) console.log(`${s.pct.toFixed(2).padStart(6)} %  ${s.name}: ${s.syms.join(', ')}`);
    console.log(`top ${TOP}:`);
    for (const r of rows.slice(0, TOP))
      console.log(`${r.pct.toFixed(2).padStart(6)} %  [${r.space}] ${r.sym}`);
  } finally {
    pair.close();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('profiling needs root');
  const modes = (process.argv.slice(2).length ? process.argv.slice(2) : ['on', 'bridge']) as Mode[];
  const keep = process.env.PERF_DIR;
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'dpprof-'));
  try {
    for (const m of modes) await profile(m, dir);
  } finally {
    if (keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
