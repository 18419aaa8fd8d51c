// Test helper: two namespaces joined by a veth pair, UDP senders, bpftool oracles.
import { execFileSync, spawn } from 'node:child_process';
import { run, type TestNetns } from '@datapath/testutils';

/** A veth pair `<base>a` (in `a`, 10.244.<n>.1/24) ↔ `<base>b` (in `b`, 10.244.<n>.2/24). */
export interface Pair {
  a: TestNetns;
  b: TestNetns;
  devA: string;
  devB: string;
  ipA: string;
  ipB: string;
}

/** Creates the veth pair directly inside the two namespaces (never in the host namespace). */
export function vethPair(a: TestNetns, b: TestNetns, base: string, subnet = 1): Pair {
  const devA = `${base}a`;
  const devB = `${base}b`;
  run('ip', ['link', 'add', devA, 'netns', a.name, 'type', 'veth', 'peer', 'name', devB, 'netns', b.name]);
  const ipA = `10.244.${subnet}.1`;
  const ipB = `10.244.${subnet}.2`;
  run('ip', ['-n', a.name, 'addr', 'add', `${ipA}/24`, 'dev', devA]);
  run('ip', ['-n', b.name, 'addr', 'add', `${ipB}/24`, 'dev', devB]);
  run('ip', ['-n', a.name, 'link', 'set', devA, 'up']);
  run('ip', ['-n', b.name, 'link', 'set', devB, 'up']);
  // Resolve neighbours first so no datagram waits for ARP.
  run('ip', ['netns', 'exec', b.name, 'ping', '-c', '1', '-W', '2', ipA]);
  return { a, b, devA, devB, ipA, ipB };
}

const SENDER = 'for ((i = 0; i < $1; i++)); do printf x > "/dev/udp/$2/$3"; sleep "$4"; done';

/** Sends `count` one-byte UDP datagrams from namespace `from` to `ip:port` (bash /dev/udp), `gap` s apart. */
export function sendUdp(from: TestNetns, ip: string, port: number, count: number, gap = 0): void {
  execFileSync(
    'nsenter',
    [`--net=${from.path}`, 'bash', '-c', SENDER, '_', String(count), ip, String(port), String(gap)],
    {
      stdio: 'ignore',
    },
  );
}

/** Same as {@link sendUdp}, in the background; resolves when the sender exits. */
export function sendUdpAsync(
  from: TestNetns,
  ip: string,
  port: number,
  count: number,
  gap: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'nsenter',
      [`--net=${from.path}`, 'bash', '-c', SENDER, '_', String(count), ip, String(port), String(gap)],
      {
        stdio: 'ignore',
      },
    );
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`udp sender exited ${code}`))));
  });
}

interface DumpEntry {
  key: string[];
  value: string[];
}

/** The u64 counters of an array map pinned at `path`, read by bpftool (the oracle). */
export function counters(path: string): bigint[] {
  const dump = JSON.parse(run('bpftool', ['-j', 'map', 'dump', 'pinned', path])) as DumpEntry[];
  const out: bigint[] = [];
  for (const e of dump) {
    const key = Number.parseInt(e.key[0]!, 16);
    let v = 0n;
    for (let i = e.value.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(Number.parseInt(e.value[i]!, 16));
    out[key] = v;
  }
  return out;
}

/** `bpftool net show dev DEV -j` run inside a namespace. */
export function bpftoolNet(ns: TestNetns, dev: string): unknown {
  return JSON.parse(run('nsenter', [`--net=${ns.path}`, 'bpftool', '-j', 'net', 'show', 'dev', dev]));
}

/** `tc -j <args>` inside a namespace. */
export function tcJson(ns: TestNetns, args: string[]): unknown[] {
  const out = run('tc', ['-n', ns.name, '-j', ...args]).trim();
  return out === '' ? [] : (JSON.parse(out) as unknown[]);
}
