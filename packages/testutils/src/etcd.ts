// Test helper: a throwaway etcd on 127.0.0.1 with random free ports and a temporary data dir, which can be
// killed (SIGKILL, as a crash) and restarted on the same ports and data; and an n-member cluster on loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

export interface TestEtcd {
  readonly endpoint: string;
  readonly dataDir: string;
  /** SIGKILLs etcd (a crash); its data dir stays. */
  kill(): Promise<void>;
  /** Starts etcd again on the same ports and data dir and waits until it serves. */
  restart(): Promise<void>;
  /** Kills etcd and removes its data dir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

export async function startEtcd(): Promise<TestEtcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'dpt-etcd-'));
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name',
    'dpt',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `dpt=${peer}`,
    '--log-level',
    'error',
    '--logger',
    'zap',
  ];
  let proc: ChildProcess | undefined;
  let stopped = false;

  const launch = async () => {
    const p = spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    proc = p;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`etcd exited ${p.exitCode}: ${stderr}`);
      if (await healthy(endpoint)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    p.kill('SIGKILL');
    throw new Error(`etcd did not become healthy on ${endpoint}: ${stderr}`);
  };

  const kill = async () => {
    const p = proc;
    proc = undefined;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };

  try {
    await launch();
  } catch (err) {
    await kill();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint,
    dataDir,
    kill,
    restart: async () => {
      if (stopped) throw new Error('etcd was stopped');
      await kill();
      await launch();
    },
    stop: async () => {
      stopped = true;
      await kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A three-member (or n-member) etcd cluster on loopback; members can be killed one by one. */
export interface TestEtcdCluster {
  readonly endpoints: string[];
  /** SIGKILLs member `i`. */
  kill(i: number): Promise<void>;
  /** Kills every member and removes the data dirs. */
  stop(): Promise<void>;
}

export async function startEtcdCluster(size = 3): Promise<TestEtcdCluster> {
  const members: {
    name: string;
    endpoint: string;
    peer: string;
    dataDir: string;
    proc: ChildProcess | undefined;
  }[] = [];
  for (let i = 0; i < size; i++) {
    const client = await freePort();
    const peer = await freePort();
    members.push({
      name: `m${i}`,
      endpoint: `http://127.0.0.1:${client}`,
      peer: `http://127.0.0.1:${peer}`,
      dataDir: mkdtempSync(join(tmpdir(), 'dpt-etcd-')),
      proc: undefined,
    });
  }
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const killOne = async (m: (typeof members)[number]) => {
    const p = m.proc;
    m.proc = undefined;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  const stop = async () => {
    for (const m of members) {
      await killOne(m);
      rmSync(m.dataDir, { recursive: true, force: true });
    }
  };
  for (const m of members) {
    m.proc = spawn(
      ETCD_BIN,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        m.endpoint,
        '--advertise-client-urls',
        m.endpoint,
        '--listen-peer-urls',
        m.peer,
        '--initial-advertise-peer-urls',
        m.peer,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `dpt-${process.pid}`,
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ok = await Promise.all(members.map((m) => healthy(m.endpoint)));
    if (ok.every(Boolean)) {
      return {
        endpoints: members.map((m) => m.endpoint),
        kill: (i: number) => killOne(members[i]!),
        stop,
      };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error('the etcd cluster did not become healthy');
}
