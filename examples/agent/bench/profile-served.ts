/**
 * Where the API's endpoint create spends its time (`pnpm exec tsx bench/profile-served.ts [n] [mode]`, root):
 * a served agent in a child process (as `agent serve`: startResident and the observer beside it) with
 * timestamps on both sides of the socket, on one clock (performance.timeOrigin + now):
 *
 *   client send → server request start (http diagnostics channel) → addAttachedPodAsync entered → its stages
 *   (the agent's trace) → returned → server response finish → client answer.
 *
 * Modes: `served` (default: as agent serve), `noobs` (no observer beside the agent), `inproc` (the same
 * agent, API server and client in one process). Medians of n creates after 10 warm-up creates.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type AgentOptions, type SetupStage } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { startResident } from '../src/api/serve.js';
import { Observer } from '../src/serve.js';
import type { AgentState } from '../src/state.js';

const now = () => performance.timeOrigin + performance.now();
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN;
const WARM = 10;

interface ServerMarks {
  /** CPU of the whole process and of its main thread, per POST (request start → response finish), ms. */
  cpu: number[];
  mainCpu: number[];
  reqStart: number[];
  enter: number[];
  exit: number[];
  resFinish: number[];
  stages: [SetupStage, number, number][][];
}

async function serve(stateDir: string, out: string | undefined, observer: boolean) {
  const marks: ServerMarks = {
    cpu: [],
    mainCpu: [],
    reqStart: [],
    enter: [],
    exit: [],
    resFinish: [],
    stages: [],
  };
  let cur: [SetupStage, number, number][] = [];
  let c0 = process.cpuUsage();
  let m0 = process.threadCpuUsage();
  const options: AgentOptions = {
    name: `pf${process.pid % 10000}`,
    prefix: `pf${process.pid % 10000}`,
    stateDir,
    podCidr: '10.244.6.0/23',
    trace: (s, ms) => cur.push([s, ms, now()]),
  };
  const r = await startResident(options, undefined, {});
  const obs = observer
    ? await Observer.start({
        stateDir,
        onDeviceGone: (g) => r.agent.removePodAsync(g.pod),
        state: () => r.agent.state as AgentState,
      })
    : undefined;
  diagnostics.subscribe('http.server.request.start', (m) => {
    const req = (m as { request: { method: string } }).request;
    if (req.method === 'POST') {
      marks.reqStart.push(now());
      c0 = process.cpuUsage();
      m0 = process.threadCpuUsage();
    }
  });
  diagnostics.subscribe('http.server.response.finish', (m) => {
    const req = (m as { request: { method: string } }).request;
    if (req.method === 'POST') {
      marks.resFinish.push(now());
      const c = process.cpuUsage(c0);
      const m = process.threadCpuUsage(m0);
      marks.cpu.push((c.user + c.system) / 1000);
      marks.mainCpu.push((m.user + m.system) / 1000);
    }
  });
  const orig = r.agent.addAttachedPodAsync.bind(r.agent);
  // CPU_PROF_OUT=<file>: a V8 CPU profile of the steady state (from the first create after the warm-up ones).
  const prof = process.env.CPU_PROF_OUT === undefined ? undefined : new Session();
  prof?.connect();
  await prof?.post('Profiler.enable');
  await prof?.post('Profiler.setSamplingInterval', { interval: 50 });
  let calls = 0;
  r.agent.addAttachedPodAsync = async (pod) => {
    if (++calls === WARM + 1) await prof?.post('Profiler.start');
    cur = [];
    marks.enter.push(now());
    try {
      return await orig(pod);
    } finally {
      marks.exit.push(now());
      marks.stages.push(cur);
    }
  };
  const stop = async () => {
    if (prof !== undefined) {
      const { profile } = await prof.post('Profiler.stop');
      writeFileSync(process.env.CPU_PROF_OUT!, JSON.stringify(profile));
    }
    await obs?.close();
    await r.close();
    if (out !== undefined) writeFileSync(out, JSON.stringify(marks));
  };
  return { agent: r.agent, socket: r.server.socketPath, stop, marks };
}

async function client(socket: string, nss: string[]) {
  const c = new AgentClient({ socketPath: socket });
  const send: number[] = [];
  const got: number[] = [];
  const cpu: number[] = [];
  for (const [i, ns] of nss.entries()) {
    const c0 = process.threadCpuUsage();
    send.push(now());
    await c.createEndpoint({
      containerId: `pf${i}`,
      netns: `/run/netns/${ns}`,
      podNamespace: 'bench',
      podName: `p${i}`,
      labels: { app: `a${i % 5}` },
    });
    got.push(now());
    const d = process.threadCpuUsage(c0);
    cpu.push((d.user + d.system) / 1000);
  }
  c.close();
  return { send, got, cpu };
}

function report(send: number[], got: number[], clientCpu: number[], m: ServerMarks) {
  const row = (name: string, xs: number[]) => console.log(`${name.padEnd(34)} ${med(xs).toFixed(3)} ms`);
  const idx = send.map((_, i) => i).slice(WARM);
  row(
    'client round trip',
    idx.map((i) => got[i]! - send[i]!),
  );
  row(
    'CPU: client main thread',
    idx.map((i) => clientCpu[i]!),
  );
  row(
    'CPU: server process',
    idx.map((i) => m.cpu[i]!),
  );
  row(
    'CPU: server main thread',
    idx.map((i) => m.mainCpu[i]!),
  );
  row(
    'send → server request start',
    idx.map((i) => m.reqStart[i]! - send[i]!),
  );
  row(
    'request start → create entered',
    idx.map((i) => m.enter[i]! - m.reqStart[i]!),
  );
  row(
    'create (addAttachedPodAsync)',
    idx.map((i) => m.exit[i]! - m.enter[i]!),
  );
  row(
    'create returned → response finish',
    idx.map((i) => m.resFinish[i]! - m.exit[i]!),
  );
  row(
    'response finish → client answer',
    idx.map((i) => got[i]! - m.resFinish[i]!),
  );
  const stages = new Map<string, number[]>();
  for (const i of idx) {
    for (const [s, ms, at] of m.stages[i]!) {
      const l = stages.get(s) ?? [];
      l.push(ms);
      stages.set(s, l);
      const e = stages.get(`${s} ended at`) ?? [];
      e.push(at - m.enter[i]!);
      stages.set(`${s} ended at`, e);
    }
  }
  for (const [s, l] of stages) row(`  ${s}`, l);
}

const [, , nArg, modeArg, ...rest] = process.argv;
if (nArg === 'child') {
  const [stateDir, out, obs] = [modeArg!, rest[0]!, rest[1] !== 'noobs'];
  const s = await serve(stateDir, out, obs);
  // an interrupt (Ctrl-C reaches the whole process group) is the parent's to handle: it stops this
  // child with SIGTERM, then removes what the agent made
  process.on('SIGINT', () => {});
  process.once('SIGTERM', () => void s.stop().then(() => process.exit(0)));
  process.stdout.write('ready\n');
} else {
  if (process.getuid?.() !== 0) throw new Error('needs root');
  const n = Number(nArg ?? 40) + WARM;
  const mode = modeArg ?? 'served';
  const dir = mkdtempSync(join(tmpdir(), 'pfserved-'));
  const nss = Array.from({ length: n }, (_, i) => `pfserved${process.pid % 10000}-${i}`);
  let child: ChildProcess | undefined;
  const stateDir = join(dir, 's');
  let cleaned: Promise<void> | undefined;
  /** Stops the child agent, then removes what the agent and this script made (pins, cgroup, namespaces, files). */
  const cleanup = () =>
    (cleaned ??= (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const c = child;
        await new Promise<void>((resolve) => {
          const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          c.kill('SIGTERM');
        });
      }
      try {
        if (existsSync(stateDir)) {
          const st = Agent.readState({ name: 'x', stateDir });
          const a = await Agent.restore({ name: st.name, prefix: st.prefix, stateDir });
          a.destroy();
        }
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
      for (const x of nss) spawnSync('ip', ['netns', 'del', x], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    })());
  // an interrupted run leaves nothing behind either
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143)));
  try {
    for (const x of nss) execFileSync('ip', ['netns', 'add', x]);
    if (mode === 'inproc') {
      const s = await serve(stateDir, undefined, true);
      const { send, got, cpu } = await client(s.socket, nss);
      await s.stop();
      report(send, got, cpu, s.marks);
    } else {
      const out = join(dir, 'marks.json');
      child = spawn(
        process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url), 'child', stateDir, out, mode],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        child!.stdout!.once('data', () => resolve());
        child!.once('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      const { send, got, cpu } = await client(join(stateDir, 'api.sock'), nss);
      await new Promise<void>((resolve) => {
        child!.once('exit', () => resolve());
        child!.kill('SIGTERM');
      });
      if (!existsSync(out)) throw new Error('no marks from the child');
      report(send, got, cpu, JSON.parse(readFileSync(out, 'utf8')) as ServerMarks);
    }
  } finally {
    await cleanup();
  }
}
