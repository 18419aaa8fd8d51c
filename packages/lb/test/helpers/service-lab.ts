/**
 * The fixture the per-packet service tests share (nodeport.priv and services.priv): the topology of
 * ./topology.ts with three pods, a bpffs directory for the pinned maps, and pods 0 and 1 as backends
 * `be0` and `be1` (TCP and UDP servers on 8080 over IPv4 and on {@link PORT6} over IPv6), all made
 * before the file's tests and removed after them, with a leak scan. Also what those tests read off a
 * client's answers and the flow map.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, expect } from 'vitest';
import type { NatFlowHalf, ServiceWriter } from '../../src/datapath.js';
import { NatDir } from '../../src/netdev.gen.js';
import { buildTopology, type Topology } from './topology.js';
import { type Server, startServer } from './traffic.js';

/** The IPv6 backends' port (servers on `::`, apart from the IPv4 ones on 8080). */
export const PORT6 = 8086;

/** The shared fixture; read its fields inside tests (they are set in the file's `beforeAll`). */
export interface ServiceLab {
  readonly t: Topology;
  readonly pinDir: string;
}

/** Registers the fixture's `beforeAll` / `afterAll` in the calling `describe`. */
export function serviceLab(): ServiceLab {
  let t: Topology | undefined;
  let prefix = '';
  let pinDir = '';
  const servers: Server[] = [];
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return; // every test skips itself (requireRoot)
    prefix = uniqueName();
    t = buildTopology(prefix, 3);
    pinDir = mkdtempSync(join('/sys/fs/bpf', `${prefix}-`));
    for (const [i, p] of t.pods.slice(0, 2).entries()) {
      servers.push(await startServer(p.ns, 'tcp', 8080, '0.0.0.0', `be${i}`));
      servers.push(await startServer(p.ns, 'udp', 8080, '0.0.0.0', `be${i}`));
      servers.push(await startServer(p.ns, 'tcp', PORT6, '::', `be${i}`));
      servers.push(await startServer(p.ns, 'udp', PORT6, '::', `be${i}`));
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    t?.close();
    if (prefix) expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });
  return {
    get t() {
      return t!;
    },
    get pinDir() {
      return pinDir;
    },
  };
}

/** A test's services, written through the package's writer; all removed when the test ends. */
export const scoped = (writer: ServiceWriter) => ({
  upsert: (input: unknown) => writer.upsert(input),
  writer,
  [Symbol.dispose]() {
    for (const name of writer.table.names()) writer.remove(name);
    writer.close();
  },
});

/** The backend name of an answer (`<peer>@<name> <local port> <remote>`). */
export const nameOf = (a: string) => a.split(' ')[0]!.split('@')[1];
/** The address the client talked to (`… <remote addr:port>`). */
export const remoteOf = (a: string) => a.split(' ')[2];
/** The client address:port the backend saw. */
export const peerOf = (a: string) => a.split(' ')[0]!.split('@')[0];

/**
 * Asserts that every connection (TCP) or request socket (UDP) of a client run went through a service
 * flow of the flow map: the `Service` half keyed by the client's tuple (its address `saddr`, the local
 * port its answer reports, the frontend `daddr`:`dport`) leads to the backend that answered, and the
 * `ServiceReply` half of the same pair is there. Unlike a count of new flows, it holds when a source
 * port comes back and meets the flow a previous socket opened (one flow for two requests, as the
 * kernel's own conntrack would have it).
 */
export function expectServiceFlows(
  halves: readonly NatFlowHalf[],
  answers: readonly string[],
  flow: {
    proto: 'tcp' | 'udp';
    saddr: string;
    daddr: string;
    dport: number;
    /** backend name → the address and port its flows are translated to */
    backends: Readonly<Record<string, { address: string; port: number }>>;
  },
  what: string,
): void {
  const proto = flow.proto === 'tcp' ? 6 : 17;
  const key = (h: NatFlowHalf['key']) => `${h.dir} ${h.proto} ${h.saddr} ${h.sport} ${h.daddr} ${h.dport}`;
  const byKey = new Map(halves.map((h) => [key(h.key), h.entry]));
  for (const a of answers) {
    const sport = Number(a.split(' ')[1]);
    const backend = flow.backends[nameOf(a)!];
    const fwd = byKey.get(
      key({ dir: NatDir.NAT_DIR_SVC, proto, saddr: flow.saddr, sport, daddr: flow.daddr, dport: flow.dport }),
    );
    expect(fwd, `${what}: no service flow for source port ${sport}`).toBeDefined();
    expect(`${fwd!.toAddr}:${fwd!.toPort}`, `${what}: source port ${sport}`).toBe(
      `${backend?.address}:${backend?.port}`,
    );
    const rev = byKey.get(
      key({
        dir: NatDir.NAT_DIR_RSVC,
        proto,
        saddr: fwd!.toAddr,
        sport: fwd!.toPort,
        daddr: flow.saddr,
        dport: sport,
      }),
    );
    expect(rev, `${what}: no reply half for source port ${sport}`).toBeDefined();
    expect(`${rev!.toAddr}:${rev!.toPort}`, `${what}: reply half of source port ${sport}`).toBe(
      `${flow.daddr}:${flow.dport}`,
    );
  }
}
