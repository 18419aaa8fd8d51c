/**
 * The service lab: a client namespace, backend namespaces behind it, a cgroup for the client
 * process, and the connect4 hook that turns connections to a service address into connections to a
 * backend picked at random.
 */
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  be16,
  type CodecType,
  HashMap,
  ipv4,
  PerCpuHashMap,
  pad,
  struct,
  u8,
  u32,
  u64,
} from '@datapath/bpf-maps';
import { type Collection, cgroupAttach, compile, type Link, load, openObject } from '@datapath/loader';
import { addrAdd, linkAdd, linkSetUp } from '@datapath/netdev';
import { Handle, type Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { type Backend, connectMany, startBackend } from './sys/procs.js';

const SOURCE = fileURLToPath(new URL('../bpf/sock_lb.c', import.meta.url));

/** `struct service_key` / `service_value` / `backend_key` / `backend_value` of bpf/sock_lb.c. */
export const serviceKey = struct({ vip: ipv4, port: be16, proto: u8, _pad: pad(1) }, { size: 8 });
export const serviceValue = struct({ id: u32, count: u32 }, { size: 8 });
export const backendKey = struct({ service: u32, slot: u32 }, { size: 8 });
export const backendValue = struct({ ip: ipv4, port: be16, _pad: pad(2) }, { size: 8 });

type BackendKey = CodecType<typeof backendKey>;

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

/** Client and backend namespaces, the cgroup and the attached hook; `close()` removes all of it. */
export class ServiceLab implements AsyncDisposable {
  readonly client: Netns;
  readonly backends: BackendNs[];
  readonly cgroupDir: string;
  readonly #names: string[];
  readonly #coll: Collection;
  readonly #link: Link;
  readonly #services: HashMap<CodecType<typeof serviceKey>, CodecType<typeof serviceValue>>;
  readonly #backendMap: HashMap<BackendKey, CodecType<typeof backendValue>>;
  readonly #servers: Backend[] = [];
  #nextId = 1;

  private constructor(
    names: string[],
    client: Netns,
    backends: BackendNs[],
    cgroupDir: string,
    coll: Collection,
    link: Link,
  ) {
    this.#names = names;
    this.client = client;
    this.backends = backends;
    this.cgroupDir = cgroupDir;
    this.#coll = coll;
    this.#link = link;
    this.#services = HashMap.fromFd(coll.map('services').fd, { key: serviceKey, value: serviceValue });
    this.#backendMap = HashMap.fromFd(coll.map('backends').fd, { key: backendKey, value: backendValue });
  }

  /**
   * Builds the lab: `<prefix>-c` (client) and `<prefix>-b<i>` (backends, each on its own /30 veth
   * from the client), a TCP server on `port` in every backend, a cgroup `<prefix>` with the hook.
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
      const obj = await compile({ files: [SOURCE] });
      const coll = load(openObject(obj.path, 'sock_lb'));
      let link: Link;
      try {
        link = cgroupAttach(coll.program('sock_connect4'), { cgroupPath: cgroupDir, attachType: 'connect4' });
      } catch (err) {
        coll.close();
        throw err;
      }
      lab = new ServiceLab(names, client, backends, cgroupDir, coll, link);
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
   * Points the service `vip:port` (TCP) at `backends:targetPort`: backend slots first, then the
   * count, so a connecting socket never sees a slot that is not written yet.
   */
  setService(vip: string, port: number, backends: readonly string[], targetPort: number): void {
    const key = { vip, port, proto: 6 };
    const existing = this.#services.get(key);
    const id = existing?.id ?? this.#nextId++;
    backends.forEach((ip, slot) => {
      this.#backendMap.set({ service: id, slot }, { ip, port: targetPort });
    });
    this.#services.set(key, { id, count: backends.length });
    for (let slot = backends.length; slot < (existing?.count ?? 0); slot++)
      this.#backendMap.delete({ service: id, slot });
  }

  /** Connects `count` times to `host:port` from a client process in the lab's cgroup. */
  connect(host: string, port: number, count: number): string[] {
    return connectMany(this.cgroupDir, this.client.path, host, port, count);
  }

  /** Connections the hook sent to each backend IP, summed over CPUs. */
  picks(): Record<string, bigint> {
    const picks = PerCpuHashMap.fromFd(this.#coll.map('picks').fd, { key: backendKey, value: u64 });
    const out: Record<string, bigint> = {};
    for (const [k, per] of picks.entries()) {
      const ip = this.#backendMap.get(k)?.ip ?? `service ${k.service} slot ${k.slot}`;
      out[ip] = (out[ip] ?? 0n) + per.reduce((a, b) => a + b, 0n);
    }
    picks.close();
    return out;
  }

  /** Stops the backends, detaches the hook, removes the cgroup and the namespaces. */
  async close(): Promise<void> {
    await Promise.all(this.#servers.map((s) => s.stop()));
    this.#services.close();
    this.#backendMap.close();
    this.#link.close();
    this.#coll.close();
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
