/**
 * The child processes of `agent cluster`: a local etcd (the Debian `etcd-server` binary, on loopback
 * with a temporary data dir) and one `agent node up` process per node. Detached, so they outlive the
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

/** A local etcd the cluster tool started. */
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
  const client = await freeLoopbackPort();
  const peer = await freeLoopbackPort();
  const dataDir = mkdtempSync(join(tmpdir(), 'dp-cluster-etcd-'));
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const out = openSync(logFile, 'a');
  const p = spawn(
    ETCD_BIN,
    [
      '--name=n0',
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=n0=${peerUrl}`,
      '--log-level=warn',
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const failed = new Promise<Error>((resolve) => p.once('error', resolve));
  p.unref();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const err = await Promise.race([failed, new Promise<undefined>((r) => setTimeout(r, 100, undefined))]);
    if (err !== undefined) {
      rmSync(dataDir, { recursive: true, force: true });
      throw new AgentError('NotFound', `cannot start ${ETCD_BIN}: ${err.message} (apt install etcd-server)`, {
        cause: err,
      });
    }
    if (p.exitCode !== null) break;
    if (await etcdHealthy(endpoint)) return { pid: p.pid!, endpoint, dataDir };
  }
  stopPid(p.pid);
  rmSync(dataDir, { recursive: true, force: true });
  throw new AgentError('StoreUnavailable', `etcd did not become healthy on ${endpoint} (log: ${logFile})`);
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
