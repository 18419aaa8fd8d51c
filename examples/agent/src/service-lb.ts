/**
 * The agent's services in the kernel: `@datapath/lb`'s socket LB (`SocketLb`: cgroup connect, sendmsg,
 * recvmsg and getpeername programs, v4 and v6) attached to the node's pod cgroup, its maps pinned by name
 * in `<pinDir>/lb`, and every service change written through its `ServiceWriter` (new backends first,
 * the slot count last; only the services whose input changed produce map updates). A restarted agent
 * reopens the pinned maps, writes the same services again (unchanged entries are rewritten with the same
 * values) and then removes what no service owns any more: connected sockets were translated at
 * connect() and never look at these maps again, so established flows are not disturbed. The cgroup links
 * are pinned in `<pinDir>/lb/links`: while no agent runs (closed, or killed) the pods keep socket LB, and
 * the next agent adopts the links, swapping its own programs in (one set of links, never two).
 */
import { join } from 'node:path';
import { HashMap, type LruHashMap, openPinned } from '@datapath/bpf-maps';
import {
  affinityMatchKeyCodec,
  affinityMatchValueCodec,
  backendIdCodec,
  backendValueCodec,
  type LayoutCodec,
  LB_MAP_NAMES,
  LbServiceFlag,
  type LbServiceKey,
  revNatIdCodec,
  revNatValueCodec,
  serviceKeyCodec,
  serviceValueCodec,
  unmappedAddress,
} from '@datapath/lb';
import { NodeNetdev, SocketLb } from '@datapath/lb/datapath';
import type { Netns } from '@datapath/netlink';
import { AgentError } from './errors.js';
import { AGENT_MAGLEV_TABLE } from './layout.js';
import { DEFAULT_LB_SETTINGS, type LbSettings } from './lb-settings.js';
import type { LbServiceInput } from './services.js';
import { ensureCgroup, inCgroup, removeCgroup } from './sys/cgroup.js';

/**
 * Where the agent pins its socket-LB cgroup links (one per hook): beside the lb maps, so that an agent that
 * exits or is killed leaves them attached and the next one adopts them.
 */
export function socketLinkDir(pinDir: string): string {
  return join(pinDir, 'lb', 'links');
}

/** The directory of the agent's lb maps inside its pin directory. */
export function lbPinDir(pinDir: string): string {
  return join(pinDir, 'lb');
}

/** `struct lb_affinity_key` of bpf/lb.h (32 bytes): a client (address or netns cookie) and a frontend. */
interface AffinityKey {
  client: string;
  revNatId: number;
  kind: 'address' | 'netns';
}

const affinityKeyCodec: LayoutCodec<AffinityKey> = {
  size: 24,
  align: 8,
  encode() {
    throw new AgentError('InvalidArgument', 'lb_affinity keys are read, never written, by the agent');
  },
  decode(view, off) {
    const kind = view.getUint8(off + 18) === 1 ? 'netns' : 'address';
    const client =
      kind === 'netns'
        ? `netns:${view.getBigUint64(off, true)}`
        : unmappedAddress(new Uint8Array(view.buffer, view.byteOffset + off, 16));
    return { client, revNatId: view.getUint16(off + 16, true), kind };
  },
};

const affinityValueCodec: LayoutCodec<{ lastUsedNs: bigint; backendId: number }> = {
  size: 16,
  align: 8,
  encode() {
    throw new AgentError('InvalidArgument', 'lb_affinity values are read, never written, by the agent');
  },
  decode(view, off) {
    return { lastUsedNs: view.getBigUint64(off, true), backendId: view.getUint32(off + 8, true) };
  },
};

const STATE_NAMES = ['active', 'terminating', 'quarantined'] as const;
const PROTO_NAMES: Record<number, string> = { 6: 'TCP', 17: 'UDP' };

/** The decoded contents of the agent's lb maps (`agent lb map dump`). */
export interface LbMapDump {
  services: {
    frontend: string;
    protocol: string;
    slot: number;
    backendId?: number;
    count?: number;
    revNatId: number;
    flags?: string[];
    affinityTimeout?: number;
  }[];
  backends: { id: number; address: string; port: number; protocol: string; state: string }[];
  revNat: { id: number; frontend: string }[];
  affinity: { client: string; revNatId: number; backendId: number; lastUsedNs: string }[];
  affinityMatch: { backendId: number; revNatId: number }[];
}

const flagNames = (flags: number): string[] =>
  Object.entries(LbServiceFlag)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);

const hostPort = (address: string, port: number) =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

/**
 * Reads the pinned lb maps of an agent (read-only; the agent may be running or not).
 * @throws AgentError `NotFound` when the agent has no services (no pinned maps).
 */
export function dumpLbMaps(pinDir: string): LbMapDump {
  const dir = lbPinDir(pinDir);
  const open = <K, V>(name: string, key: LayoutCodec<K>, value: LayoutCodec<V>, lru = false) => {
    try {
      return openPinned(join(dir, name), {
        type: lru ? 'lruHash' : 'hash',
        key,
        value,
        readOnly: true,
      }) as HashMap<K, V> | LruHashMap<K, V>;
    } catch (err) {
      if ((err as { code?: string }).code === 'NotFound')
        throw new AgentError('NotFound', `no lb maps in ${dir}: the agent has no services`, { cause: err });
      throw err;
    }
  };
  using services = open(LB_MAP_NAMES.services, serviceKeyCodec, serviceValueCodec);
  using backends = open(LB_MAP_NAMES.backends, backendIdCodec, backendValueCodec);
  using revNat = open(LB_MAP_NAMES.revNat, revNatIdCodec, revNatValueCodec);
  using affinity = open(LB_MAP_NAMES.affinity, affinityKeyCodec, affinityValueCodec, true);
  using match = open(LB_MAP_NAMES.affinityMatch, affinityMatchKeyCodec, affinityMatchValueCodec);
  const byKey = (a: LbServiceKey, b: LbServiceKey) =>
    a.address < b.address
      ? -1
      : a.address > b.address
        ? 1
        : a.port - b.port || a.proto - b.proto || a.slot - b.slot;
  return {
    services: [...services.entries()]
      .sort(([a], [b]) => byKey(a, b))
      .map(([k, v]) => ({
        frontend: hostPort(k.address, k.port),
        protocol: PROTO_NAMES[k.proto] ?? String(k.proto),
        slot: k.slot,
        revNatId: v.revNatId,
        ...(k.slot === 0
          ? {
              count: v.count,
              flags: flagNames(v.flags),
              ...((v.flags & LbServiceFlag.Affinity) !== 0 ? { affinityTimeout: v.backendId } : {}),
            }
          : { backendId: v.backendId }),
      })),
    backends: [...backends.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, b]) => ({
        id,
        address: b.address,
        port: b.port,
        protocol: PROTO_NAMES[b.proto] ?? String(b.proto),
        state: STATE_NAMES[b.state] ?? String(b.state),
      })),
    revNat: [...revNat.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, v]) => ({ id, frontend: hostPort(v.address, v.port) })),
    affinity: [...affinity.entries()].map(([k, v]) => ({
      client: k.client,
      revNatId: k.revNatId,
      backendId: v.backendId,
      lastUsedNs: v.lastUsedNs.toString(),
    })),
    affinityMatch: [...match.keys()]
      .map((k) => ({ backendId: k.backendId, revNatId: k.revNatId }))
      .sort((a, b) => a.revNatId - b.revNatId || a.backendId - b.backendId),
  };
}

/** The agent's socket LB: programs on the node's pod cgroup, pinned maps, the writer. */
export class ServiceLb implements Disposable {
  readonly cgroupDir: string;
  readonly #lb: SocketLb;
  /** Placeholder services of {@link ServiceLb.reserveIds}: in the table, never in the maps. */
  readonly #reserved = new Set<string>();
  /** Per-packet NodePort on the node's outward device, once a service has a NodePort. */
  #netdev: NodeNetdev | undefined;
  readonly #pinDir: string;
  readonly #settings: LbSettings;
  #closed = false;

  private constructor(cgroupDir: string, lb: SocketLb, pinDir: string, settings: LbSettings) {
    this.cgroupDir = cgroupDir;
    this.#lb = lb;
    this.#pinDir = pinDir;
    this.#settings = settings;
  }

  /** Whether NodePort is attached to the node's outward device. */
  get nodePort(): boolean {
    return this.#netdev !== undefined;
  }

  /**
   * Attaches `@datapath/lb`'s per-packet NodePort (`NodeNetdev`: `from_netdev`/`to_netdev` at tc on
   * `ifname` in the node namespace) over the same pinned service maps: flows from outside the node to
   * `nodeAddress:<nodePort>` are translated to a backend and back. Idempotent.
   * @throws AgentError `DatapathFailed`.
   */
  async attachNodePort(nodeAddress: string, ifname: string, netns: Netns): Promise<void> {
    if (this.#netdev !== undefined) return;
    try {
      this.#netdev = await NodeNetdev.attach(
        { nodeAddress, nodePort: true, hashSeed: this.#settings.hashSeed },
        { ifname, netns, pinDir: lbPinDir(this.#pinDir), lb: { maglevTableSize: AGENT_MAGLEV_TABLE } },
      );
    } catch (err) {
      throw new AgentError('DatapathFailed', `NodePort on ${ifname}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Creates (or reuses) the cgroup `<cgroup2>/<prefix>`, loads the socket LB with its maps pinned in
   * `<pinDir>/lb` (reused when pinned already) and attaches it there; `settings` give the Maglev seed and how
   * every service written later picks backends.
   * @throws AgentError `DatapathFailed` (the loader's or libbpf's error as cause), `NotSupported`.
   */
  static async open(
    prefix: string,
    pinDir: string,
    settings: LbSettings = DEFAULT_LB_SETTINGS,
  ): Promise<ServiceLb> {
    const cgroupDir = ensureCgroup(prefix);
    try {
      const lb = await SocketLb.attach({
        cgroupPath: cgroupDir,
        pinDir: lbPinDir(pinDir),
        pinByName: true,
        tableSize: AGENT_MAGLEV_TABLE,
        seed: settings.hashSeed,
        linkPinDir: socketLinkDir(pinDir),
      });
      return new ServiceLb(cgroupDir, lb, pinDir, settings);
    } catch (err) {
      try {
        removeCgroup(cgroupDir);
      } catch {
        // a restarted agent's cgroup may still hold a process: keep it
      }
      throw new AgentError('DatapathFailed', `socket LB: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The lb services the maps hold, by name. */
  names(): string[] {
    return this.#lb.table.names().filter((n) => !this.#reserved.has(n));
  }

  /**
   * Brings the maps to `desired`: services that went are removed, the others upserted (a service whose
   * input did not change produces no update). Returns the number of map updates written per service.
   * The inputs were checked before (services.ts `checkPlan`), so a failure here is the kernel's: the
   * writer has undone that service's updates.
   * @throws AgentError `DatapathFailed`.
   */
  sync(desired: readonly LbServiceInput[]): Map<string, number> {
    const wanted = new Set(desired.map((d) => d.name));
    const written = new Map<string, number>();
    try {
      for (const name of this.#lb.table.names())
        if (!wanted.has(name) && !this.#reserved.has(name)) written.set(name, this.#lb.remove(name).length);
      for (const d of [...desired].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const ops = this.#lb.upsert({ ...d, selection: this.#settings.selection });
        if (ops.length > 0) written.set(d.name, ops.length);
      }
    } catch (err) {
      throw new AgentError('DatapathFailed', `service maps: ${(err as Error).message}`, { cause: err });
    }
    return written;
  }

  /**
   * Before the first write after a restart: the table is new, the pinned maps are not. The ids the maps
   * use (backend ids, frontend ids) are reserved in the table by placeholder services that are recorded
   * but never written, so the services written next get fresh ids and never overwrite an entry a live
   * slot still names: each frontend's master entry switches from the old slots to the new ones in one
   * update. {@link ServiceLb.sweep} then removes the old ids' entries. Returns the placeholders' names
   * (drop them with {@link ServiceLb.releaseReserved} after the first sync).
   */
  reserveIds(): string[] {
    const c = this.#lb.collection;
    let maxBackend = 0;
    let maxRev = 0;
    {
      using b = openMap(c.map(LB_MAP_NAMES.backends).fd, backendIdCodec, backendValueCodec);
      for (const id of b.keys()) maxBackend = Math.max(maxBackend, id);
      using r = openMap(c.map(LB_MAP_NAMES.revNat).fd, revNatIdCodec, revNatValueCodec);
      for (const id of r.keys()) maxRev = Math.max(maxRev, id);
    }
    const names: string[] = [];
    const table = this.#lb.table;
    // TEST-NET-1 addresses, never a scenario's; at most 4096 backends per service.
    for (let done = 0, i = 0; done < Math.max(maxBackend, maxRev); i++) {
      const n = Math.min(4096, Math.max(maxBackend, maxRev) - done);
      const name = `(reserved ${i})`;
      table
        .upsert({
          name,
          protocol: 'TCP',
          frontends: Array.from({ length: done < maxRev ? Math.min(n, maxRev - done) : 1 }, (_, k) => ({
            address: `192.0.2.${1 + (i % 250)}`,
            port: done + k + 1,
          })),
          backends: Array.from(
            { length: done < maxBackend ? Math.min(n, maxBackend - done) : 0 },
            (_, k) => ({
              address: `192.0.2.${1 + (i % 250)}`,
              port: done + k + 1,
            }),
          ),
        })
        .commit();
      this.#reserved.add(name);
      names.push(name);
      done += n;
    }
    return names;
  }

  /** Forgets the placeholders of {@link ServiceLb.reserveIds} (they were never written). */
  releaseReserved(names: readonly string[]): void {
    for (const name of names) {
      this.#lb.table.remove(name).commit();
      this.#reserved.delete(name);
    }
  }

  /**
   * After a restart: deletes the entries of the pinned maps that no service of the table owns (a
   * service or backend that went while no agent ran). Returns how many went.
   */
  sweep(): number {
    const table = this.#lb.table;
    const keys = new Set<string>();
    const backendIds = new Set<number>();
    const revNat = new Set<number>();
    const match = new Set<string>();
    for (const name of table.names()) {
      const a = table.get(name)!;
      for (const f of a.frontends) {
        revNat.add(f.revNatId);
        for (let slot = 0; slot <= a.slots.length; slot++) keys.add(JSON.stringify({ ...f.key, slot }));
        for (const id of a.slots) match.add(`${id}/${f.revNatId}`);
      }
      for (const id of a.backendIds) backendIds.add(id);
    }
    const c = this.#lb.collection;
    let removed = 0;
    const sweepMap = <K>(
      name: string,
      key: LayoutCodec<K>,
      value: LayoutCodec<unknown>,
      keep: (k: K) => boolean,
    ) => {
      using m = openMap(c.map(name).fd, key, value);
      for (const k of [...m.keys()])
        if (!keep(k)) {
          m.delete(k);
          removed++;
        }
    };
    sweepMap(LB_MAP_NAMES.services, serviceKeyCodec, serviceValueCodec, (k) =>
      keys.has(
        JSON.stringify({ address: k.address, port: k.port, slot: k.slot, proto: k.proto, scope: k.scope }),
      ),
    );
    sweepMap(LB_MAP_NAMES.backends, backendIdCodec, backendValueCodec, (k) => backendIds.has(k));
    sweepMap(LB_MAP_NAMES.revNat, revNatIdCodec, revNatValueCodec, (k) => revNat.has(k));
    sweepMap(LB_MAP_NAMES.affinityMatch, affinityMatchKeyCodec, affinityMatchValueCodec, (k) =>
      match.has(`${k.backendId}/${k.revNatId}`),
    );
    return removed;
  }

  /** Runs `fn` with this process in the pod cgroup: its sockets get the socket LB (the probes). */
  inPodCgroup<T>(fn: () => Promise<T>): Promise<T> {
    return inCgroup(this.cgroupDir, fn);
  }

  /**
   * Closes the maps and releases the link handles; the pinned links stay attached (sockets of the pods keep
   * their service translation while no agent runs), as do the map pins and the cgroup: a restarted agent
   * adopts them.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#netdev?.close();
    this.#lb.close();
  }

  /** Detaches the socket-LB links (their pins go too), closes, then removes the cgroup. */
  destroy(): void {
    if (!this.#closed) {
      this.#netdev?.close();
      this.#netdev = undefined;
      this.#closed = true;
      this.#lb.detach();
    }
    removeCgroup(this.cgroupDir);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A typed view of one of the lb maps by fd (the client holds its own handle; the collection keeps its own). */
function openMap<K>(fd: number, key: LayoutCodec<K>, value: LayoutCodec<unknown>): HashMap<K, unknown> {
  return HashMap.fromFd(fd, { key, value });
}
