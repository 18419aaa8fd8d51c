// Per-packet Maglev picks a backend by the flow hash of bpf/lb.h (seeded by the cluster, not the skb
// hash): two independent "nodes" (each its own namespaces, programs and maps, the same service) send a
// flow to the same backend, though each receives it at its own NodePort address; @datapath/lb's
// flowHash/maglevBackendFor predicts that backend; after a backend is removed, a node that never saw a
// flow still sends it where the other node did when its table entry did not move.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireRoot, run, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowHash, maglevBackendFor } from '../src/flow-hash.js';
import { NodeNetdev } from '../src/netdev.js';
import type { ServiceTable } from '../src/plan.js';
import {
  buildTopology,
  NODE_ADDR,
  NODE_ADDR6,
  type Topology,
  WORLD_ADDR,
  WORLD_ADDR6,
} from './helpers/topology.js';

const NODE_PORT = 30080;
const SEED = 0x5eed1234;
/** Node B receives the flows at its own addresses (a NodePort flow reaches each node at that node's address). */
const NODE_B = '198.18.0.3';
const NODE_B6 = 'fd00:ff::3';

/** One backend: UDP on 0.0.0.0:8080 and TCP on [::]:8086, each answering with its name. */
const SERVER = `const [name] = process.argv.slice(1);
let up = 0; const ready = () => { if (++up === 2) process.stdout.write('ready\\n'); };
const u = require('dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(name, r.port, r.address));
u.bind(8080, '0.0.0.0', ready);
require('net').createServer((s) => { s.on('error', () => s.destroy()); s.end(name); }).listen(8086, '::', ready);`;

/** For each source port in turn, one exchange with host:port from that port: the backend's name or `error …`. */
const CLIENT = `const [proto, host, port, sports] = process.argv.slice(1);
const one = (sport) => new Promise((resolve) => {
  if (proto === 'udp') {
    const s = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { s.close(); resolve('error timeout'); }, 2000);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(String(m)); });
    s.bind(sport, () => s.send('hi', Number(port), host));
  } else {
    let data = '';
    const s = require('net').connect({ host, port: Number(port), localPort: sport });
    s.setTimeout(2000, () => { s.destroy(); resolve('error timeout'); });
    s.on('data', (d) => { data += d; });
    s.on('end', () => { s.destroy(); resolve(data); });
    s.on('error', (e) => resolve('error ' + e.code));
  }
});
(async () => { const out = []; for (const p of sports.split(',')) out.push(await one(Number(p))); process.stdout.write(JSON.stringify(out)); })();`;

function exchange(
  netns: string,
  proto: 'udp' | 'tcp',
  host: string,
  port: number,
  sports: number[],
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '-e', CLIENT, proto, host, String(port), sports.join(',')],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`client exited ${code}`)),
    );
  });
}

async function startBackend(netns: string, name: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', SERVER, name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`backend exited ${code}`)));
  });
  return child;
}

interface Node {
  t: Topology;
  pinDir: string;
  address: string;
  address6: string;
  backends: ChildProcess[];
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('per-packet Maglev by a seeded flow hash', () => {
  const nodes: Node[] = [];
  const prefixes: string[] = [];
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return; // every test skips itself (requireRoot)
    for (const [address, address6] of [
      [NODE_ADDR, NODE_ADDR6],
      [NODE_B, NODE_B6],
    ] as const) {
      const prefix = uniqueName();
      prefixes.push(prefix);
      const t = buildTopology(prefix, 4);
      const node: Node = {
        t,
        pinDir: mkdtempSync(join('/sys/fs/bpf', `${prefix}-`)),
        address,
        address6,
        backends: [],
      };
      nodes.push(node);
      if (address !== NODE_ADDR) {
        run('ip', ['-n', t.node, 'addr', 'add', `${address}/24`, 'dev', 'ext0']);
        run('ip', ['-n', t.node, 'addr', 'add', `${address6}/64`, 'dev', 'ext0', 'nodad']);
      }
      // the same four backends (same addresses, same names) on each node
      for (const [i, p] of t.pods.entries()) node.backends.push(await startBackend(p.ns, `be${i}`));
    }
  });
  afterAll(async () => {
    for (const n of nodes) {
      for (const b of n.backends) {
        const gone = new Promise((r) => b.once('exit', r));
        b.kill();
        await gone;
      }
      rmSync(n.pinDir, { recursive: true, force: true });
      n.t.close();
    }
    for (const p of prefixes) expect(scanLeaks(p)).toEqual({ netns: [], links: [], pins: [] });
  });

  /** The services of one node: UDP over IPv4 and TCP over IPv6, NodePort at the node's addresses, Maglev. */
  function services(n: Node, backends: number[]) {
    const pods = backends.map((i) => n.t.pods[i]!);
    return [
      {
        name: 'udp4',
        protocol: 'UDP',
        selection: 'maglev',
        frontends: [{ kind: 'NodePort', address: n.address, port: NODE_PORT }],
        backends: pods.map((p) => ({ address: p.ip, port: 8080 })),
      },
      {
        name: 'tcp6',
        protocol: 'TCP',
        selection: 'maglev',
        frontends: [{ kind: 'NodePort', address: n.address6, port: NODE_PORT }],
        backends: pods.map((p) => ({ address: p.ip6, port: 8086 })),
      },
    ];
  }

  /** The backend name each source port's flow reached, for both services. */
  async function flows(n: Node, sports: number[]) {
    const udp = await exchange(n.t.world, 'udp', n.address, NODE_PORT, sports);
    const tcp = await exchange(n.t.world, 'tcp', n.address6, NODE_PORT, sports);
    expect([...udp, ...tcp].filter((a) => !/^be\d$/.test(a))).toEqual([]);
    return { udp4: udp, tcp6: tcp };
  }

  /** maglevBackendFor's name for each flow of the service `name` of `table`. */
  function predicted(table: ServiceTable, name: 'udp4' | 'tcp6', sports: number[]): string[] {
    const svc = table.get(name)!;
    const v6 = name === 'tcp6';
    return sports.map((sourcePort) => {
      const be = maglevBackendFor(
        svc,
        {
          source: v6 ? WORLD_ADDR6 : WORLD_ADDR,
          sourcePort,
          destinationPort: NODE_PORT,
          protocol: v6 ? 'TCP' : 'UDP',
        },
        SEED,
      );
      const pod = nodes[0]!.t.pods.findIndex((p) => (v6 ? p.ip6 : p.ip) === be?.address);
      return `be${pod}`;
    });
  }

  it('two nodes with the same seed send each flow (UDP/IPv4, TCP/IPv6) to the same backend, the one maglevBackendFor predicts; a backend removed moves only the flows whose entry moved', async (ctx) => {
    requireRoot(ctx);
    const [a, b] = nodes as [Node, Node];
    using devA = await NodeNetdev.attach(
      { nodeAddress: a.address, nodeAddress6: a.address6, nodePort: true, hashSeed: SEED },
      { ifname: 'ext0', netns: a.t.nodeNetns, pinDir: a.pinDir },
    );
    using devB = await NodeNetdev.attach(
      { nodeAddress: b.address, nodeAddress6: b.address6, nodePort: true, hashSeed: SEED },
      { ifname: 'ext0', netns: b.t.nodeNetns, pinDir: b.pinDir },
    );
    using wa = devA.serviceWriter();
    using wb = devB.serviceWriter();
    for (const s of services(a, [0, 1, 2, 3])) wa.upsert(s);
    for (const s of services(b, [0, 1, 2, 3])) wb.upsert(s);

    // 1. the same flows through each node: the same backend, the predicted one, every backend used
    const sports = range(41000, 40);
    const onA = await flows(a, sports);
    const onB = await flows(b, sports);
    for (const name of ['udp4', 'tcp6'] as const) {
      expect(onB[name], `${name}: node B vs node A`).toEqual(onA[name]);
      expect(onA[name], `${name}: datapath vs maglevBackendFor`).toEqual(predicted(wa.table, name, sports));
      expect(new Set(onA[name]), name).toEqual(new Set(['be0', 'be1', 'be2', 'be3']));
    }

    // 2. backend be3 leaves node B's services; node A keeps its old view. New flows on A (fresh ports);
    // then the same flows enter node B, which never saw them: each flow whose table entry did not move
    // reaches the backend A chose, and only those of be3 and of moved entries go elsewhere.
    const before = {
      udp4: new Uint32Array(wb.table.get('udp4')!.maglev!),
      tcp6: new Uint32Array(wb.table.get('tcp6')!.maglev!),
    };
    for (const s of services(b, [0, 1, 2])) wb.upsert(s);
    const later = range(42000, 40);
    const laterA = await flows(a, later);
    const laterB = await flows(b, later);
    for (const name of ['udp4', 'tcp6'] as const) {
      const after = wb.table.get(name)!.maglev!;
      expect(laterB[name], `${name}: datapath vs maglevBackendFor after the removal`).toEqual(
        predicted(wb.table, name, later),
      );
      const v6 = name === 'tcp6';
      let kept = 0;
      for (const [i, sourcePort] of later.entries()) {
        const entry =
          flowHash(
            {
              source: v6 ? WORLD_ADDR6 : WORLD_ADDR,
              sourcePort,
              destinationPort: NODE_PORT,
              protocol: v6 ? 'TCP' : 'UDP',
            },
            SEED,
          ) % after.length;
        expect(laterB[name][i], `${name} :${sourcePort}`).not.toBe('be3');
        if (before[name][entry] === after[entry]) {
          expect(laterB[name][i], `${name} :${sourcePort}: its entry did not move`).toBe(laterA[name][i]);
          kept++;
        } else expect(laterA[name][i], `${name} :${sourcePort}: its entry moved`).not.toBe(laterB[name][i]);
      }
      // Maglev's disruption bound: one backend of four removed moves its own quarter and little else
      let moved = 0;
      for (let e = 0; e < after.length; e++) if (before[name][e] !== after[e]) moved++;
      expect(moved / after.length, `${name}: entries moved`).toBeLessThan(0.3);
      expect(kept, `${name}: flows kept`).toBeGreaterThanOrEqual(20);
    }
  });
});
