/**
 * datapath-cni in agent mode vs in-process vs Debian's ptp + host-local (`pnpm exec tsx bench/cni.ts`, root;
 * part of `node scripts/bench.mjs agent`, alone with AGENT_BENCH_ONLY=cni). Back to back in one run, every
 * plugin timed by the repository's baseline harness (bench/baselines/cni-baseline.sh: exec'd inside a private
 * host namespace with only PATH and CNI_*, ADD/CHECK/DEL of N pods, results validated against the namespaces):
 *   ptp      Debian's ptp + host-local (the reference);
 *   inproc   datapath-cni in its default in-process mode (the Node plugin does IPAM and the endpoint);
 *   shim     datapath-cni in agent mode behind the C shim (native/shim.c): one request to a resident agent
 *            (`agent serve`, its own process), which allocates, wires, attaches, gives identity and policy;
 *   node     the same through the bundle's Node client (the fallback when the shim is not built);
 * and the floor of a Node plugin (an empty Node script behind the same sh launcher, timed the same way:
 * packages/cni-plugin/bench/floor.sh). Writes $BENCH_OUT/agent-cni.md. Environment: N (100).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installPlugin } from '@datapath/cni-plugin';

const N = process.env.N ?? '100';
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const root = resolve(here, '../..');
const tsx = resolve(root, 'node_modules/tsx/dist/esm/index.mjs');
const harness = process.env.CNI_BASELINE ?? resolve(root, 'bench/baselines/cni-baseline.sh');
const floorScript = resolve(root, 'packages/cni-plugin/bench/floor.sh');

interface Stat {
  p50: number;
  p99: number;
}
interface Summary {
  ADD: Stat;
  DEL: Stat;
  CHECK?: Stat;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/cni.ts needs root');
  if (!existsSync(harness)) throw new Error(`${harness} is missing`);
  const load0 = loadavg()[0]!;
  const tag = `acb${process.pid % 10000}`;
  const work = mkdtempSync(join(tmpdir(), 'agent-cni-bench-'));
  let agent: ChildProcess | undefined;
  const stateDir = join(work, 'agent');
  const socket = join(stateDir, 'api.sock');
  const main_ = join(here, 'src/main.ts');
  try {
    const shim = installPlugin({ binDir: join(work, 'shim') });
    installPlugin({ binDir: join(work, 'node'), shim: false });
    if (shim.forwarder !== 'shim') throw new Error('the agent-mode shim is not built (make build needs cc)');

    agent = spawn(
      process.execPath,
      [
        '--import',
        tsx,
        main_,
        'serve',
        '--name',
        tag,
        '--state-dir',
        stateDir,
        '--pod-cidr',
        '10.244.4.0/22',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    for (let i = 0; !existsSync(socket); i++) {
      if (i > 600 || agent.exitCode !== null) throw new Error('agent serve did not start');
      await new Promise((r) => setTimeout(r, 50));
    }

    const agentConf = join(work, 'agent-conf.json');
    writeFileSync(
      agentConf,
      JSON.stringify({
        cniVersion: '@CNI_VERSION@',
        name: '@NAME@',
        type: '@TYPE@',
        mode: 'agent',
        agentSocket: socket,
      }),
    );
    // The harness checks that a result's address and gateway lie in SUBNET: the agent's pod CIDR and its
    // link-local gateway (169.254.1.1, answered by the datapath) do not share one, so agent runs check 0.0.0.0/0
    // (the routes in the pod are still checked against the gateway the result names).
    const run = (label: string, plugin: string, cniPath: string, template?: string): Summary => {
      const json = join(work, `${label}.json`);
      const r = spawnSync('bash', [harness], {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          N,
          PLUGIN: plugin,
          CNI_PATH: cniPath,
          JSON_OUT: json,
          PREFIX: `${tag}${label[0]}`,
          ...(template === undefined ? {} : { CONF_TEMPLATE: template, SUBNET: '0.0.0.0/0' }),
        },
      });
      if (r.status !== 0) throw new Error(`cni-baseline.sh (${label}) failed (${r.status})`);
      return JSON.parse(readFileSync(json, 'utf8')) as Summary;
    };
    const ptp = run('ptp', 'ptp', '/usr/lib/cni');
    const shimR = run('shim', 'datapath-cni', `${join(work, 'shim')}:/usr/lib/cni`, agentConf);
    const nodeR = run('node', 'datapath-cni', `${join(work, 'node')}:/usr/lib/cni`, agentConf);
    const inproc = run('inproc', 'datapath-cni', `${join(work, 'node')}:/usr/lib/cni`);

    // The Node floor, timed as the harness times a plugin.
    const floorDir = join(work, 'floor');
    mkdirSync(floorDir);
    writeFileSync(join(floorDir, 'empty.cjs'), '');
    const empty = join(floorDir, 'node-empty');
    writeFileSync(
      empty,
      `#!/bin/sh\nunset NODE_OPTIONS NODE_EXTRA_CA_CERTS\nexec ${process.execPath} ${join(floorDir, 'empty.cjs')} "$@"\n`,
    );
    chmodSync(empty, 0o755);
    const conf = join(floorDir, 'conf.json');
    writeFileSync(conf, JSON.stringify({ cniVersion: '1.0.0', name: 'floor', type: 'node-empty' }));
    for (const s of ['h', 'p']) execFileSync('ip', ['netns', 'add', `${tag}f${s}`]);
    let floor: number;
    try {
      const text = execFileSync(
        'nsenter',
        [
          `--net=/run/netns/${tag}fh`,
          'bash',
          floorScript,
          'exec',
          `${tag}fh`,
          `${tag}fp`,
          '30',
          conf,
          join(floorDir, 'out'),
          empty,
        ],
        { encoding: 'utf8' },
      );
      const ms = text
        .trim()
        .split(' ')
        .slice(1)
        .map(Number)
        .sort((a, b) => a - b);
      floor = ms[Math.floor((ms.length - 1) / 2)]!;
    } finally {
      for (const s of ['h', 'p']) execFileSync('ip', ['netns', 'del', `${tag}f${s}`]);
    }

    const f = (x: number) => `${x.toFixed(1)} ms`;
    const r = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
    const cmd = '`AGENT_BENCH_ONLY=cni node scripts/bench.mjs agent` (root)';
    const md = [
      '## examples/agent: datapath-cni agent mode vs in-process vs Debian ptp + host-local',
      '',
      `Load average (1 min) ${load0.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after, on this 2-core VM shared with other work. ` +
        `N=${N} pods per plugin, cniVersion 1.0.0, every plugin timed back to back by \`bench/baselines/cni-baseline.sh\` ` +
        '(exec inside a private host namespace with only PATH + CNI_*, results validated against the namespaces). ' +
        'Agent mode: the plugin forwards the invocation to a resident agent (`agent serve`, its own process) in one ' +
        'request; the agent allocates, wires the veth into its node namespace, attaches the datapath (tcx), gives the ' +
        'identity and policy, and the plugin confirms the lease. "shim" is the C forwarder (native/shim.c), "Node ' +
        'client" the fallback in the bundle. DEL in every mode pays the kernel\'s veth delete. Ratio = measured / ptp.',
      '',
      '| target | measured | baseline (ptp + host-local, same run) | ratio | rerun |',
      '|---|---:|---:|---:|---|',
      `| agent mode (shim) ADD p50 ≤ 1.0× ptp | ${f(shimR.ADD.p50)} ${shimR.ADD.p50 <= ptp.ADD.p50 ? '✓' : '✗'} | ${f(ptp.ADD.p50)} | ${r(shimR.ADD.p50, ptp.ADD.p50)} | ${cmd} |`,
      `| agent mode (shim) DEL p50 ≤ ptp DEL | ${f(shimR.DEL.p50)} ${shimR.DEL.p50 <= ptp.DEL.p50 ? '✓' : '✗'} | ${f(ptp.DEL.p50)} | ${r(shimR.DEL.p50, ptp.DEL.p50)} | ${cmd} |`,
      `| agent mode (shim) ADD p99, no target | ${f(shimR.ADD.p99)} | ${f(ptp.ADD.p99)} | ${r(shimR.ADD.p99, ptp.ADD.p99)} | ${cmd} |`,
      `| agent mode (shim) DEL p99, no target | ${f(shimR.DEL.p99)} | ${f(ptp.DEL.p99)} | ${r(shimR.DEL.p99, ptp.DEL.p99)} | ${cmd} |`,
      `| agent mode (Node client) ADD p50, no target | ${f(nodeR.ADD.p50)} | ${f(ptp.ADD.p50)} | ${r(nodeR.ADD.p50, ptp.ADD.p50)} | ${cmd} |`,
      `| agent mode (Node client) DEL p50, no target | ${f(nodeR.DEL.p50)} | ${f(ptp.DEL.p50)} | ${r(nodeR.DEL.p50, ptp.DEL.p50)} | ${cmd} |`,
      `| agent mode (Node client) ADD p99 / DEL p99, no target | ${f(nodeR.ADD.p99)} / ${f(nodeR.DEL.p99)} | ${f(ptp.ADD.p99)} / ${f(ptp.DEL.p99)} | ${r(nodeR.ADD.p99, ptp.ADD.p99)} / ${r(nodeR.DEL.p99, ptp.DEL.p99)} | ${cmd} |`,
      `| in-process datapath-cni ADD p50 / DEL p50, no target | ${f(inproc.ADD.p50)} / ${f(inproc.DEL.p50)} | ${f(ptp.ADD.p50)} / ${f(ptp.DEL.p50)} | ${r(inproc.ADD.p50, ptp.ADD.p50)} / ${r(inproc.DEL.p50, ptp.DEL.p50)} | ${cmd} |`,
      `| in-process datapath-cni ADD p99 / DEL p99, no target | ${f(inproc.ADD.p99)} / ${f(inproc.DEL.p99)} | ${f(ptp.ADD.p99)} / ${f(ptp.DEL.p99)} | ${r(inproc.ADD.p99, ptp.ADD.p99)} / ${r(inproc.DEL.p99, ptp.DEL.p99)} | ${cmd} |`,
      `| floor: empty Node script behind the same sh launcher, same exec path, p50 | ${f(floor)} | ${f(ptp.ADD.p50)} (ptp ADD p50) | ${r(floor, ptp.ADD.p50)} | ${cmd} |`,
      `| agent mode (shim) CHECK p50, no target | ${f(shimR.CHECK?.p50 ?? Number.NaN)} | ${f(ptp.CHECK?.p50 ?? Number.NaN)} | ${r(shimR.CHECK?.p50 ?? Number.NaN, ptp.CHECK?.p50 ?? Number.NaN)} | ${cmd} |`,
      '',
    ].join('\n');
    const out = process.env.BENCH_OUT;
    if (out) {
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'agent-cni.md'), md);
    }
    process.stdout.write(`${md}\n`);
  } finally {
    if (agent && agent.exitCode === null) {
      const a = agent;
      await new Promise<void>((r) => {
        a.once('exit', () => r());
        a.kill('SIGTERM');
      });
    }
    if (existsSync(join(stateDir, 'state.json')))
      execFileSync(
        process.execPath,
        ['--import', tsx, main_, 'down', '--name', tag, '--state-dir', stateDir],
        {
          stdio: 'inherit',
        },
      );
    rmSync(work, { recursive: true, force: true });
  }
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === 'cni') await main();
