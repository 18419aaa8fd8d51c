/**
 * Agent API latency (`pnpm exec tsx bench/api.ts`, root; part of `node scripts/bench.mjs agent`, alone with
 * AGENT_BENCH_ONLY=api): endpoint create (`POST /v1/endpoints`: address, veth into a namespace the caller
 * made, datapath attach, identity, policy, state) from a resident client over the unix socket, p50/p99, one
 * client and 16 concurrent clients, against the same endpoint create called in-process on an agent
 * (`Agent.addAttachedPod`, no API), measured in the same run. The served agent is a separate process
 * (`agent serve`), as in production. Both sides first make WARM creates that the p50/p99 leave out (reported
 * apart). Writes $BENCH_OUT/agent-api.md. Environment: N (60), WARM (10).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { EndpointCreateRequest } from '../src/api/schema.js';

const N = Number(process.env.N ?? 60);
// Creates made first and left out of the p50/p99 of both sides (a fresh process compiles its create path on the
// first few: 10-70 ms each); their own p50 is a row of its own.
const WARM = Number(process.env.WARM ?? 10);
const CONCURRENT = 16;
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const tsx = resolve(here, '../../node_modules/tsx/dist/esm/index.mjs');
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))] ?? Number.NaN;
};

function netnsBatch(prefix: string, n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  for (const name of names) execFileSync('ip', ['netns', 'add', name]);
  return names;
}
const dropNetns = (names: string[]) => {
  for (const n of names) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
};

async function waitFor(path: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (existsSync(path)) return;
    if (child.exitCode !== null) throw new Error(`agent serve exited (${child.exitCode})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`agent serve did not create ${path}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/api.ts needs root');
  const load0 = loadavg()[0]!;
  const tag = `ab${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), 'agent-api-bench-'));
  // Undone in reverse order: clients, the served agent (stopped, then `agent down`), namespaces, files.
  const cleanup: (() => void | Promise<void>)[] = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    // Baseline: the same endpoint create in-process.
    const inproc = await Agent.start(
      { name: `${tag}i`, prefix: `${tag}i`, stateDir: join(dir, 'inproc'), podCidr: '10.244.2.0/24' },
      { namespaces: {}, policies: [], enforcement: 'default' },
    );
    cleanup.unshift(() => inproc.destroy());
    const inNs = netnsBatch(`${tag}x`, WARM + N);
    cleanup.splice(cleanup.length - 1, 0, () => dropNetns(inNs));
    const base: number[] = [];
    const baseWarm: number[] = [];
    for (const [i, ns] of inNs.entries()) {
      const t = performance.now();
      inproc.addAttachedPod({
        namespace: 'bench',
        name: `p${i}`,
        labels: { app: `a${i % 5}` },
        attachment: { containerId: `in${i}`, ifname: 'eth0', netnsPath: `/run/netns/${ns}` },
      });
      (i < WARM ? baseWarm : base).push(performance.now() - t);
    }

    // The served agent, in its own process.
    const stateDir = join(dir, 'served');
    const socket = join(stateDir, 'api.sock');
    const child = spawn(
      process.execPath,
      [
        '--import',
        tsx,
        join(here, 'src/main.ts'),
        'serve',
        '--name',
        `${tag}s`,
        '--state-dir',
        stateDir,
        '--pod-cidr',
        '10.244.3.0/23',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    cleanup.unshift(() => {
      execFileSync(
        process.execPath,
        ['--import', tsx, join(here, 'src/main.ts'), 'down', '--name', `${tag}s`, '--state-dir', stateDir],
        {
          stdio: 'ignore',
        },
      );
    });
    cleanup.unshift(
      () =>
        new Promise<void>((r) => {
          if (child.exitCode !== null) return r();
          child.once('exit', () => r());
          child.kill('SIGTERM');
        }),
    );
    await waitFor(socket, child);
    await new Promise((r) => setTimeout(r, 200));
    const one = new AgentClient({ socketPath: socket });
    cleanup.unshift(() => one.close());
    await one.health();
    const seqNs = netnsBatch(`${tag}q`, WARM + N);
    cleanup.splice(cleanup.length - 1, 0, () => dropNetns(seqNs));
    const seq: number[] = [];
    const seqWarm: number[] = [];
    for (const [i, ns] of seqNs.entries()) {
      const t = performance.now();
      await one.createEndpoint({
        containerId: `seq${i}`,
        netns: `/run/netns/${ns}`,
        podNamespace: 'bench',
        podName: `s${i}`,
        labels: { app: `a${i % 5}` },
      });
      (i < WARM ? seqWarm : seq).push(performance.now() - t);
    }
    // What the API itself costs: a request that does nothing (GET /v1/health) over the same connection,
    // and the zod check of an endpoint-create body, in this process.
    const rtt: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await one.health();
      rtt.push(performance.now() - t);
    }
    const body = {
      containerId: 'c0ffee',
      netns: '/run/netns/pod1',
      podNamespace: 'bench',
      podName: 'p1',
      labels: { app: 'a1' },
    };
    const zt = performance.now();
    for (let i = 0; i < 2000; i++) EndpointCreateRequest.parse(body);
    const zodMs = (performance.now() - zt) / 2000;
    // 16 clients, each with its own connection, creating at once.
    const conNs = netnsBatch(`${tag}c`, CONCURRENT * 4);
    cleanup.splice(cleanup.length - 1, 0, () => dropNetns(conNs));
    const clients = Array.from({ length: CONCURRENT }, () => new AgentClient({ socketPath: socket }));
    cleanup.unshift(() => {
      for (const c of clients) c.close();
    });
    const con: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      clients.map(async (c, k) => {
        for (let j = 0; j < 4; j++) {
          const i = k * 4 + j;
          const t = performance.now();
          await c.createEndpoint({
            containerId: `con${i}`,
            netns: `/run/netns/${conNs[i]}`,
            podNamespace: 'bench',
            podName: `c${i}`,
            labels: { app: `a${i % 5}` },
          });
          con.push(performance.now() - t);
        }
      }),
    );
    const wall = performance.now() - t0;
    const f = (x: number) => `${x.toFixed(2)} ms`;
    const cmd = '`AGENT_BENCH_ONLY=api node scripts/bench.mjs agent` (root)';
    const b50 = pct(base, 0.5);
    const md = [
      '## examples/agent: local API (endpoint create)',
      '',
      `Load average (1 min) ${load0.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after, on this 2-core VM shared with other work. ` +
        "`POST /v1/endpoints` over the agent's unix socket (HTTP/1.1 keep-alive, JSON, zod-checked body, SO_PEERCRED " +
        'checked per connection) to an agent serving in its own process (`agent serve`): address, veth into a namespace ' +
        `the caller made, tcx attach, identity, policy writes, state journal record. N=${N} sequential creates from one resident ` +
        `client after ${WARM} warm-up creates on each side (a fresh process compiles its create path on them; their p50 is its own row), ` +
        `client, then ${CONCURRENT} clients × 4 creates at once (the agent runs changes one at a time: the latency ` +
        'includes the queue). Baseline, same run: the same create called in-process (`Agent.addAttachedPod`, no API).',
      '',
      '| target | measured | baseline (same run) | ratio | rerun |',
      '|---|---:|---:|---:|---|',
      `| endpoint create through the API, one resident client, p50 (≤ 3 ms) | ${f(pct(seq, 0.5))} ${pct(seq, 0.5) <= 3 ? '✓' : '✗'} | ${f(b50)} (in-process p50) | ${(pct(seq, 0.5) / b50).toFixed(2)}× | ${cmd} |`,
      `| endpoint create through the API, one client, p99 (no target) | ${f(pct(seq, 0.99))} | ${f(pct(base, 0.99))} (in-process p99) | ${(pct(seq, 0.99) / pct(base, 0.99)).toFixed(2)}× | ${cmd} |`,
      `| endpoint create, ${CONCURRENT} concurrent clients, per-request p50 (no target) | ${f(pct(con, 0.5))} | ${f(b50)} (in-process p50) | ${(pct(con, 0.5) / b50).toFixed(2)}× | ${cmd} |`,
      `| endpoint create, ${CONCURRENT} concurrent clients, per-request p99 (no target) | ${f(pct(con, 0.99))} | ${f(pct(base, 0.99))} (in-process p99) | ${(pct(con, 0.99) / pct(base, 0.99)).toFixed(2)}× | ${cmd} |`,
      `| API round trip without work (\`GET /v1/health\`, same connection), p50 (no target) | ${f(pct(rtt, 0.5))} | ${f(b50)} (in-process create p50) | ${(pct(rtt, 0.5) / b50).toFixed(2)}× | ${cmd} |`,
      `| zod check of an endpoint-create body, in-process (no target) | ${(zodMs * 1000).toFixed(1)} µs | ${f(b50)} (in-process create p50) | ${(zodMs / b50).toFixed(4)}× | ${cmd} |`,
      `| the ${WARM} warm-up creates of a fresh process, p50 (left out above; no target) | ${f(pct(seqWarm, 0.5))} (API) | ${f(pct(baseWarm, 0.5))} (in-process) | ${(pct(seqWarm, 0.5) / pct(baseWarm, 0.5)).toFixed(2)}× | ${cmd} |`,
      `| ${CONCURRENT} concurrent clients: wall time per create (throughput), no target | ${f(wall / con.length)} | ${f(b50)} (in-process p50) | ${(wall / con.length / b50).toFixed(2)}× | ${cmd} |`,
      '',
    ].join('\n');
    const out = process.env.BENCH_OUT;
    if (out) {
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'agent-api.md'), md);
    }
    process.stdout.write(`${md}\n`);
  } finally {
    for (const c of cleanup) {
      try {
        await c();
      } catch (err) {
        process.stderr.write(`cleanup: ${(err as Error).message}\n`);
      }
    }
  }
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === 'api') await main();
