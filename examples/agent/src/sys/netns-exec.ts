/**
 * Child processes inside network namespaces: listeners and probers (netns-worker.ts run through
 * `nsenter --net=<path>`). The only place in the agent that spawns processes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../errors.js';

const WORKER = fileURLToPath(new URL('./netns-worker.ts', import.meta.url));

/** A transport protocol a listener or a probe can use on this kernel. */
export type SocketProtocol = 'TCP' | 'UDP';

/** One probe to send from inside a namespace. */
export interface ProbeRequest {
  id: number;
  host: string;
  port: number;
  protocol: SocketProtocol;
  timeoutMs: number;
  localAddress?: string;
}

/** What happened to one probe. */
export interface ProbeOutcome {
  id: number;
  result: 'connected' | 'refused' | 'timeout' | 'error';
  reply?: string;
  message?: string;
  ms: number;
}

/** A running listener process; `close()` stops it and waits for its exit. */
export interface ListenerProcess {
  readonly pid: number;
  close(): Promise<void>;
}

function workerArgs(netnsPath: string, mode: string, spec: unknown): string[] {
  return [
    `--net=${netnsPath}`,
    '--',
    process.execPath,
    '--no-warnings',
    '--disable-warning=ExperimentalWarning',
    WORKER,
    mode,
    JSON.stringify(spec),
  ];
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Resolves once the process has exited and its stdio is drained ('exit' can come before the last output). */
function closed(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('close', (code) => resolve(code)));
}

/**
 * Starts a listener inside the namespace at `netnsPath` answering on every port with `label`;
 * resolves once every socket is bound.
 * @throws AgentError `ListenerFailed` when a port cannot be bound or the process dies.
 */
export async function startListener(
  netnsPath: string,
  label: string,
  ports: readonly { port: number; protocol: SocketProtocol }[],
): Promise<ListenerProcess> {
  const child = spawn('nsenter', workerArgs(netnsPath, 'listen', { label, ports }), {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ ok: boolean; message?: string }>((resolve) => {
    lines.once('line', (line) => {
      try {
        const ev = JSON.parse(line) as { event: string; message?: string };
        resolve(ev.event === 'ready' ? { ok: true } : { ok: false, message: ev.message ?? line });
      } catch {
        resolve({ ok: false, message: line });
      }
    });
    child.once('exit', () => resolve({ ok: false, message: stderr.trim() || 'listener exited' }));
    child.once('error', (err) => resolve({ ok: false, message: err.message }));
  });
  if (!ready.ok) {
    child.kill('SIGKILL');
    await exited(child);
    throw new AgentError('ListenerFailed', `listener ${label} in ${netnsPath}: ${ready.message}`);
  }
  return {
    pid: child.pid ?? -1,
    async close() {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.kill('SIGTERM');
      await exited(child);
      clearTimeout(timer);
      lines.close();
    },
  };
}

/**
 * Sends every probe concurrently from inside the namespace at `netnsPath` and returns one
 * outcome per probe, in request order.
 * @throws AgentError `ProbeFailed` when the prober process itself fails.
 */
export async function runProbes(netnsPath: string, probes: readonly ProbeRequest[]): Promise<ProbeOutcome[]> {
  if (probes.length === 0) return [];
  const child = spawn('nsenter', workerArgs(netnsPath, 'probe', { probes }), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const code = await Promise.race([closed(child), spawnError]);
  if (code instanceof Error) throw new AgentError('ProbeFailed', `prober: ${code.message}`, { cause: code });
  const byId = new Map<number, ProbeOutcome>();
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const o = JSON.parse(line) as ProbeOutcome & { event?: string; message?: string };
    if (o.event === 'error') throw new AgentError('ProbeFailed', `prober in ${netnsPath}: ${o.message}`);
    byId.set(o.id, o);
  }
  if (code !== 0 || byId.size !== probes.length) {
    throw new AgentError(
      'ProbeFailed',
      `prober in ${netnsPath} exited ${code} with ${byId.size}/${probes.length} results: ${stderr.trim()}`,
    );
  }
  return probes.map((p) => byId.get(p.id)!);
}
