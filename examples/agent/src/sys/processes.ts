/**
 * The child processes of `agent cluster`: a local etcd of one or more members (the Debian `etcd-server`
 * binary, on loopback, each member with a temporary data dir) and one `agent node up` process per node. Detached, so they outlive the
 * `cluster up` command; `cluster down` stops them by pid.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../errors.js';

/** The etcd binary; `ETCD_BIN` overrides it. */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/** A free TCP port on 127.0.0.1. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether an etcd answers `/health` with `true`. */
export async function etcdHealthy(endpoint: string, timeoutMs = 500): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    return ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** A local etcd member the cluster tool started. */
export interface LocalEtcd {
  pid: number;
  endpoint: string;
  dataDir: string;
}

/**
 * Starts a one-member etcd on 127.0.0.1 (random ports, data in a new temp dir) and waits until healthy.
 * @throws AgentError `NotFound` (no etcd binary), `StoreUnavailable` (it did not come up; nothing is left).
 */
export async function startLocalEtcd(logFile: string): Promise<LocalEtcd> {
  const [member] = await startLocalEtcdCluster(1, () => logFile);
  return member!;
}

/**
 * Starts an etcd cluster of `size` members on 127.0.0.1 (members `m0`…, random client and peer ports, each
 * member's data in a new temp dir, its output appended to `logFile(name)`) and waits until every member is
 * healthy (the cluster has a leader). On failure every member started is killed and its data dir removed.
 * @throws AgentError `InvalidArgument` (size not 1–9), `NotFound` (no etcd binary), `StoreUnavailable` (a
 * member exited or the cluster did not become healthy; nothing is left).
 */
export async function startLocalEtcdCluster(
  size: number,
  logFile: (member: string) => string,
): Promise<LocalEtcd[]> {
  if (!Number.isInteger(size) || size < 1 || size > 9)
    throw new AgentError('InvalidArgument', `etcd members: 1–9, got ${size}`);
  const planned: { name: string; endpoint: string; peerUrl: string; dataDir: string }[] = [];
  for (let i = 0; i < size; i++) {
    const endpoint = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const peerUrl = `http://127.0.0.1:${await freeLoopbackPort()}`;
    planned.push({ name: `m${i}`, endpoint, peerUrl, dataDir: '' });
  }
  const initial = planned.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `dp-${process.pid}-${planned[0]!.peerUrl.replace(/\D/g, '')}`;
  const procs: ReturnType<typeof spawn>[] = [];
  const remove = () => {
    for (const p of procs) stopPid(p.pid);
    for (const m of planned) if (m.dataDir !== '') rmSync(m.dataDir, { recursive: true, force: true });
  };
  const failures: Promise<Error>[] = [];
  try {
    for (const m of planned) {
      m.dataDir = mkdtempSync(join(tmpdir(), 'dp-cluster-etcd-'));
      const out = openSync(logFile(m.name), 'a');
      const p = spawn(
        ETCD_BIN,
        [
          `--name=${m.name}`,
          `--data-dir=${m.dataDir}`,
          `--listen-client-urls=${m.endpoint}`,
          `--advertise-client-urls=${m.endpoint}`,
          `--listen-peer-urls=${m.peerUrl}`,
          `--initial-advertise-peer-urls=${m.peerUrl}`,
          `--initial-cluster=${initial}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${token}`,
          '--log-level=warn',
        ],
        { detached: true, stdio: ['ignore', out, out] },
      );
      closeSync(out);
      failures.push(new Promise<Error>((resolve) => p.once('error', resolve)));
      p.unref();
      procs.push(p);
    }
  } catch (err) {
    remove();
    throw err;
  }
  const failed = Promise.race(failures);
  const deadline = Date.now() + (size === 1 ? 20_000 : 30_000);
  while (Date.now() < deadline) {
    const err = await Promise.race([failed, new Promise<undefined>((r) => setTimeout(r, 100, undefined))]);
    if (err !== undefined) {
      remove();
      throw new AgentError('NotFound', `cannot start ${ETCD_BIN}: ${err.message} (apt install etcd-server)`, {
        cause: err,
      });
    }
    const exited = procs.findIndex((p) => p.exitCode !== null || p.signalCode !== null);
    if (exited >= 0) {
      remove();
      throw new AgentError(
        'StoreUnavailable',
        `etcd member ${planned[exited]!.name} exited (log: ${logFile(planned[exited]!.name)})`,
      );
    }
    if ((await Promise.all(planned.map((m) => etcdHealthy(m.endpoint)))).every(Boolean))
      return planned.map((m, i) => ({ pid: procs[i]!.pid!, endpoint: m.endpoint, dataDir: m.dataDir }));
  }
  remove();
  throw new AgentError(
    'StoreUnavailable',
    `etcd did not become healthy on ${planned.map((m) => m.endpoint).join(',')} (log: ${logFile(planned[0]!.name)})`,
  );
}

/** Whether a process is alive. */
export function pidAlive(pid: number | undefined): boolean {
  if (pid === undefined || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends a signal to a pid, ignoring a process that is gone. */
export function signalPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** SIGKILLs a pid (ignoring a process that is gone). */
export function stopPid(pid: number | undefined): void {
  signalPid(pid, 'SIGKILL');
}

/** Waits until a pid exits, up to `ms`; whether it did. */
export async function waitExit(pid: number | undefined, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));
/** tsx's loader, so the child runs the TypeScript sources whatever started this process. */
const TSX = import.meta.resolve('tsx');

/**
 * Starts `agent node up <args>` as a detached process (this Node with tsx's loader, output to `logFile`).
 * Returns its pid.
 */
export function spawnNodeAgent(args: readonly string[], logFile: string): number {
  const out = openSync(logFile, 'a');
  const p = spawn(process.execPath, ['--import', TSX, MAIN, 'node', 'up', ...args], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  closeSync(out);
  p.unref();
  return p.pid!;
}
