/**
 * The service lab: a client namespace, backend namespaces behind it, a cgroup for the client
 * process, and socket-level load balancing from @datapath/lb attached to that cgroup.
 */
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Selection } from '@datapath/lb';
import { SocketLb } from '@datapath/lb/datapath';
import { addrAdd, linkAdd, linkSetUp } from '@datapath/netdev';
import { Handle, type Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { type Backend, connectMany, startBackend } from './sys/procs.js';

/** The first cgroup v2 mount of this machine (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`). */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, path, type] = line.split(' ');
    if (type === 'cgroup2' && path) return path;
  }
  throw new Error('no cgroup v2 mount: the connect4 hook needs one');
}

function tryDelete(name: string): void {
  try {
    netnsDelete(name);
  } catch {
    // not created
  }
}

/** One backend namespace. */
export interface BackendNs {
  name: string;
  ip: string;
  netns: Netns;
}

/** Client and backend namespaces, the cgroup and the socket LB on it; `close()` removes all of it. */
export class ServiceLab implements AsyncDisposable {
  readonly client: Netns;
  readonly backends: BackendNs[];
  readonly cgroupDir: string;
  /** The socket load balancer attached to the cgroup. */
  readonly lb: SocketLb;
  readonly #names: string[];
  readonly #servers: Backend[] = [];

  private constructor(
    names: string[],
    client: Netns,
    backends: BackendNs[],
    cgroupDir: string,
    lb: SocketLb,
  ) {
    this.#names = names;
    this.client = client;
    this.backends = backends;
    this.cgroupDir = cgroupDir;
    this.lb = lb;
  }

  /**
   * Builds the lab: `<prefix>-c` (client) and `<prefix>-b<i>` (backends, each on its own /30 veth
   * from the client), a TCP server on `port` in every backend, a cgroup `<prefix>` with socket LB.
   */
  static async create(prefix: string, backendCount: number, port: number): Promise<ServiceLab> {
    const names = [`${prefix}-c`, ...Array.from({ length: backendCount }, (_, i) => `${prefix}-b${i}`)];
    const opened: Netns[] = [];
    const cgroupDir = join(cgroup2Root(), prefix);
    let lab: ServiceLab | undefined;
    try {
      const client = netnsAdd(names[0]!);
      opened.push(client);
      const ch = Handle.open(client);
      const backends: BackendNs[] = [];
      try {
        linkSetUp('lo', { handle: ch });
        for (let i = 0; i < backendCount; i++) {
          const netns = netnsAdd(names[i + 1]!);
          opened.push(netns);
          const bh = Handle.open(netns);
          try {
            const base = 4 * i;
            linkAdd({ name: `b${i}`, kind: 'veth', peer: { name: 'eth0', netns } }, { handle: ch });
            addrAdd(`b${i}`, `10.244.10.${base + 1}/30`, { handle: ch });
            addrAdd('eth0', `10.244.10.${base + 2}/30`, { handle: bh });
            linkSetUp(`b${i}`, { handle: ch });
            linkSetUp('eth0', { handle: bh });
            linkSetUp('lo', { handle: bh });
            backends.push({ name: `backend-${i}`, ip: `10.244.10.${base + 2}`, netns });
          } finally {
            bh.close();
          }
        }
      } finally {
        ch.close();
      }
      mkdirSync(cgroupDir);
      const lb = await SocketLb.attach({ cgroupPath: cgroupDir, tableSize: 251 });
      lab = new ServiceLab(names, client, backends, cgroupDir, lb);
      for (const b of backends) lab.#servers.push(await startBackend(b.netns.path, b.name, port));
      return lab;
    } catch (err) {
      if (lab) await lab.close();
      else {
        for (const ns of opened) ns.close();
        for (const n of names) tryDelete(n);
        try {
          rmdirSync(cgroupDir);
        } catch {
          // not created
        }
      }
      throw err;
    }
  }

  /**
   * Points the service `vip:port` (TCP) at `backends:targetPort` through @datapath/lb: its writer puts
   * new backends first and the slot count last, so a connecting socket never sees a half-written service.
   */
  setService(
    vip: string,
    port: number,
    backends: readonly string[],
    targetPort: number,
    selection: Selection = 'random',
  ): void {
    this.lb.upsert({
      name: `${vip}:${port}`,
      protocol: 'TCP',
      frontends: [{ address: vip, port }],
      backends: backends.map((address) => ({ address, port: targetPort })),
      selection,
    });
  }

  /** Connects `count` times to `host:port` from a client process in the lab's cgroup. */
  connect(host: string, port: number, count: number): string[] {
    return connectMany(this.cgroupDir, this.client.path, host, port, count);
  }

  /** Stops the backends, detaches socket LB, removes the cgroup and the namespaces. */
  async close(): Promise<void> {
    await Promise.all(this.#servers.map((s) => s.stop()));
    this.lb.close();
    try {
      rmdirSync(this.cgroupDir);
    } catch {
      // still busy or already gone
    }
    this.client.close();
    for (const b of this.backends) b.netns.close();
    for (const n of this.#names) tryDelete(n);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
