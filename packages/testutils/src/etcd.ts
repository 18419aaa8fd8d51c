// Test helper: a throwaway etcd on 127.0.0.1 with random free ports and a temporary data dir, which can be
// killed (SIGKILL, as a crash) and restarted on the same ports and data; and an n-member cluster on loopback
// whose members can be killed one by one (the leader found through the status API). One member launcher
// serves both.
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

/** One etcd member process: its URLs, data dir and the process while it runs. */
class Member {
  proc: ChildProcess | undefined;
  stderr = '';
  readonly name: string;
  readonly endpoint: string;
  readonly peer: string;
  readonly dataDir: string;
  private constructor(name: string, endpoint: string, peer: string, dataDir: string) {
    this.name = name;
    this.endpoint = endpoint;
    this.peer = peer;
    this.dataDir = dataDir;
  }

  static async create(name: string): Promise<Member> {
    const client = await freePort();
    const peer = await freePort();
    return new Member(
      name,
      `http://127.0.0.1:${client}`,
      `http://127.0.0.1:${peer}`,
      mkdtempSync(join(tmpdir(), 'dpt-etcd-')),
    );
  }

  /** Spawns the member of a cluster whose `--initial-cluster` is `initial` (does not wait). */
  spawn(initial: string, token: string): void {
    const p = spawn(
      ETCD_BIN,
      [
        '--name',
        this.name,
        '--data-dir',
        this.dataDir,
        '--listen-client-urls',
        this.endpoint,
        '--advertise-client-urls',
        this.endpoint,
        '--listen-peer-urls',
        this.peer,
        '--initial-advertise-peer-urls',
        this.peer,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        token,
        '--log-level',
        'error',
        '--logger',
        'zap',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.stderr = '';
    p.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.proc = p;
  }

  get exited(): boolean {
    return this.proc === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** SIGKILLs the process and waits for its exit. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Spawns the members as one cluster and waits until every one serves; on failure nothing is left. */
async function launch(members: Member[], timeoutMs: number): Promise<void> {
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const token = `dpt-${process.pid}-${members[0]!.peer}`;
  for (const m of members) m.spawn(initial, token);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = members.find((m) => m.exited);
    if (dead !== undefined) {
      for (const m of members) await m.kill();
      throw new Error(`etcd ${dead.name} exited: ${dead.stderr}`);
    }
    if ((await Promise.all(members.map((m) => healthy(m.endpoint)))).every(Boolean)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const m of members) await m.kill();
  throw new Error(
    `etcd did not become healthy on ${members.map((m) => m.endpoint).join(',')}: ${members.map((m) => m.stderr).join(' ')}`,
  );
}

export async function startEtcd(): Promise<TestEtcd> {
  const m = await Member.create('dpt');
  let stopped = false;
  try {
    await launch([m], 20_000);
  } catch (err) {
    await m.remove();
    throw err;
  }
  return {
    endpoint: m.endpoint,
    dataDir: m.dataDir,
    kill: () => m.kill(),
    restart: async () => {
      if (stopped) throw new Error('etcd was stopped');
      await m.kill();
      await launch([m], 20_000);
    },
    stop: async () => {
      stopped = true;
      await m.remove();
    },
  };
}

/** A three-member (or n-member) etcd cluster on loopback; members can be killed one by one. */
export interface TestEtcdCluster {
  readonly endpoints: string[];
  /** The index of the member that leads now (asked of the members that run, through `/v3/maintenance/status`). */
  leader(): Promise<number>;
  /** SIGKILLs member `i`. */
  kill(i: number): Promise<void>;
  /** Kills every member and removes the data dirs. */
  stop(): Promise<void>;
}

interface MemberStatus {
  header?: { member_id?: string };
  leader?: string;
}

async function memberStatus(endpoint: string): Promise<MemberStatus | undefined> {
  try {
    const res = await fetch(`${endpoint}/v3/maintenance/status`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(1000),
    });
    return (await res.json()) as MemberStatus;
  } catch {
    return undefined;
  }
}

export async function startEtcdCluster(size = 3): Promise<TestEtcdCluster> {
  const members: Member[] = [];
  for (let i = 0; i < size; i++) members.push(await Member.create(`m${i}`));
  const stop = async () => {
    for (const m of members) await m.remove();
  };
  try {
    await launch(members, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoints: members.map((m) => m.endpoint),
    leader: async () => {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const status = await Promise.all(
          members.map((m) => (m.exited ? undefined : memberStatus(m.endpoint))),
        );
        const leaderId = status.find((s) => s?.leader !== undefined && s.leader !== '0')?.leader;
        const i = status.findIndex((s) => s?.header?.member_id === leaderId);
        if (leaderId !== undefined && i >= 0) return i;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('the etcd cluster has no leader');
    },
    kill: (i: number) => members[i]!.kill(),
    stop,
  };
}
