/**
 * The cluster's side of the ipcache: the writer a control plane (the etcd mirror of `agent node up`) calls
 * to tell this node's datapath about pods and nodes elsewhere in the cluster.
 *
 * The `ipcache` map (bpf/datapath.h, an LPM trie keyed by IPv4/IPv6 prefix) has two writers:
 *
 * - the policy engine, for what the node knows by itself: `0.0.0.0/0` and `::/0` (world), the node's own
 *   addresses (host), its local pods and the CIDRs policies name;
 * - this writer, for everything the cluster says: each remote pod's address → its security identity and the
 *   underlay address of the node it runs on; each remote node's addresses → `remote-node` (identity 6)
 *   without a tunnel endpoint (node addresses are reached over the underlay, never through the tunnel).
 *   Its entries carry `IPCACHE_F_REMOTE`, which is how the agent's restart reconcile knows to leave them.
 *
 * What the datapath does with an entry:
 *
 * - from_container (a local pod sends): a destination that is not a local pod is looked up here; the
 *   identity feeds the pod's egress policy; in tunnel mode a non-zero tunnel endpoint means "encapsulate to
 *   that node with the source identity in the VNI and redirect to the VXLAN device".
 * - from_netdev (native mode with host routing, a packet for a local pod on the underlay device) and
 *   to_container (a packet that came through the node's stack): the *source* address is looked up here,
 *   and the identity feeds the destination pod's ingress policy; in native mode with host routing,
 *   from_container also needs a remote pod's node (any non-zero tunnel endpoint) to bypass the stack.
 * - from_overlay (tunnel mode): the identity comes from the VNI, not from here.
 *
 * Every write bumps the datapath's policy revision (one bump per {@link ClusterIpcache.apply} batch), so an
 * established flow is checked once more against the identity it now resolves to.
 *
 * @example Mirroring a remote node and one of its pods
 * ```ts
 * import { Datapath } from './datapath.js';
 * import { ClusterIpcache } from './ipcache.js';
 * using dp = Datapath.attachPinned('/sys/fs/bpf/dpagent-n1');
 * const ipc = new ClusterIpcache(dp);
 * ipc.apply([
 *   { op: 'upsert', entry: { prefix: '198.18.0.2/32', identity: 6 } },
 *   { op: 'upsert', entry: { prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.2' } },
 * ]);
 * ipc.delete('10.244.2.7/32');
 * ```
 */
import { formatPrefix, tryParseIp, tryParsePrefix } from '@datapath/ip';
import type { Datapath } from './datapath.js';
import { AgentError } from './errors.js';
import { IpcacheFlags } from './maps.js';

const { IPCACHE_F_REMOTE } = IpcacheFlags;

import type { IpcacheEntry } from './policy-map.js';

/** The reserved identity of every other node of the cluster (Cilium's `remote-node`). */
export const REMOTE_NODE_IDENTITY = 6;

/** The largest identity a VXLAN network identifier can carry (24 bits). */
export const MAX_TUNNEL_IDENTITY = 0xff_ffff;

/** One entry of the cluster's ipcache, as the control plane states it. */
export interface RemoteIpcacheEntry {
  /** IPv4 or IPv6 prefix: a pod's `/32`/`/128`, a node address, or a wider prefix. Host bits must be zero. */
  prefix: string;
  /**
   * Security identity of the prefix: a pod's cluster-wide identity, or {@link REMOTE_NODE_IDENTITY} for a
   * node address. 1..16777215 (it travels in the VNI); 0 (unknown) and 1 (host) are refused.
   */
  identity: number;
  /**
   * IPv4 underlay address of the node the prefix lives on: the VXLAN remote in tunnel mode. Omit it for a
   * node's own addresses and anything reached without the tunnel.
   */
  node?: string;
}

/** One change of a batch ({@link ClusterIpcache.apply}). */
export type IpcacheChange = { op: 'upsert'; entry: RemoteIpcacheEntry } | { op: 'delete'; prefix: string };

/** What a batch wrote. */
export interface IpcacheWrites {
  /** Entries written (new or changed; an upsert of the same value is skipped). */
  updated: number;
  /** Entries deleted. */
  deleted: number;
  /** The policy revision after the batch (unchanged when nothing was written). */
  revision: number;
}

/** Canonical prefix text of `prefix` (a bare address is its full-length prefix). */
function canonicalPrefix(prefix: string): string {
  if (typeof prefix !== 'string')
    throw new AgentError('InvalidArgument', `ipcache: not an IP prefix: ${JSON.stringify(prefix)}`);
  const text = prefix.includes('/') ? prefix : `${prefix}/${prefix.includes(':') ? 128 : 32}`;
  const p = tryParsePrefix(text);
  if (p === undefined) {
    const loose = tryParsePrefix(text, { strict: false });
    throw new AgentError(
      'InvalidArgument',
      loose === undefined
        ? `ipcache: not an IP prefix: ${JSON.stringify(prefix)}`
        : `ipcache: ${prefix} has host bits set (did you mean ${formatPrefix(loose)}?)`,
    );
  }
  if (p.length === 0)
    throw new AgentError(
      'InvalidArgument',
      `ipcache: ${prefix} is the world prefix; the policy engine owns it`,
    );
  return formatPrefix(p);
}

function checkEntry(e: RemoteIpcacheEntry): { prefix: string; value: IpcacheEntry } {
  if (e === null || typeof e !== 'object')
    throw new AgentError('InvalidArgument', 'ipcache: an entry must be an object');
  const prefix = canonicalPrefix(e.prefix);
  if (!Number.isInteger(e.identity) || e.identity < 2 || e.identity > MAX_TUNNEL_IDENTITY)
    throw new AgentError(
      'InvalidArgument',
      `ipcache ${prefix}: identity must be an integer in 2..${MAX_TUNNEL_IDENTITY}, got ${e.identity}`,
    );
  const value: IpcacheEntry = { identity: e.identity, flags: IPCACHE_F_REMOTE };
  if (e.node !== undefined) {
    const n = tryParseIp(e.node, 4);
    if (n === undefined)
      throw new AgentError(
        'InvalidArgument',
        `ipcache ${prefix}: node must be an IPv4 underlay address, got ${JSON.stringify(e.node)}`,
      );
    if (n.value === 0n) throw new AgentError('InvalidArgument', `ipcache ${prefix}: node 0.0.0.0 is no node`);
    value.tunnelEndpoint = e.node;
  }
  return { prefix, value };
}

/** Batches at least this long take {@link ClusterIpcache.apply}'s batch path (one dump, batch writes). */
const BATCH_MIN = 64;

type PlannedChange = { op: 'upsert'; prefix: string; value: IpcacheEntry } | { op: 'delete'; prefix: string };

function conflict(prefix: string, cur: IpcacheEntry): AgentError {
  return new AgentError(
    'IpcacheConflict',
    `ipcache ${prefix}: the node's policy engine owns this prefix (identity ${cur.identity})`,
  );
}

const same = (a: IpcacheEntry, b: IpcacheEntry) =>
  a.identity === b.identity && a.flags === b.flags && a.tunnelEndpoint === b.tunnelEndpoint;

/**
 * The writer of the cluster's entries in one node's `ipcache` map, bound to that node's open datapath
 * (it borrows the datapath's map; closing the datapath ends it). Entries the policy engine owns (world,
 * host, local pods, policy CIDRs) are never touched: writing over one is refused with `AlreadyExists`.
 */
export class ClusterIpcache {
  readonly #dp: Datapath;
  readonly #engineOwns: ((prefix: string) => boolean) | undefined;

  /**
   * Binds the writer to an open datapath (`Datapath.open` or `Datapath.attachPinned`). `engineOwns` says
   * whether the node's policy engine states a prefix (an agent passes its engine's ipcache); without it the
   * map is dumped to find out (a lookup in an LPM trie is a longest-prefix match, so `0.0.0.0/0` matches
   * every address and cannot tell an exact entry from a shorter one).
   */
  constructor(datapath: Datapath, options: { engineOwns?: (prefix: string) => boolean } = {}) {
    this.#dp = datapath;
    this.#engineOwns = options.engineOwns;
  }

  /** The entry of exactly `prefix` (not a longer-or-shorter match), from a dump taken once per batch. */
  #exact(prefix: string, dump: { map?: Map<string, IpcacheEntry> }): IpcacheEntry | undefined {
    dump.map ??= new Map(this.#dp.ipcache.dump());
    return dump.map.get(prefix);
  }

  /**
   * Inserts or replaces the entry of a prefix, then bumps the policy revision.
   *
   * Equivalent to: `bpftool map update pinned <pinDir>/ipcache key … value …`.
   * @throws AgentError `InvalidArgument` (bad prefix, identity or node; nothing written), `AlreadyExists`
   * (reason `IpcacheConflict`: the policy engine owns the prefix), `DatapathFailed` with the kernel's code
   * (e.g. `Exhausted` when the map is full).
   * @example A remote pod
   * ```ts
   * ipc.upsert({ prefix: '10.244.2.7/32', identity: 4242, node: '198.18.0.2' });
   * ```
   */
  upsert(entry: RemoteIpcacheEntry): void {
    this.apply([{ op: 'upsert', entry }]);
  }

  /**
   * Deletes the cluster's entry of a prefix (then bumps the policy revision); false when there was none.
   * An entry of the policy engine is left alone (false).
   *
   * Equivalent to: `bpftool map delete pinned <pinDir>/ipcache key …`.
   * @throws AgentError `InvalidArgument` (bad prefix), `DatapathFailed`.
   * @example Forgetting a pod that went away
   * ```ts
   * ipc.delete('10.244.2.7/32');
   * ```
   */
  delete(prefix: string): boolean {
    return this.apply([{ op: 'delete', prefix }]).deleted === 1;
  }

  /**
   * Applies a batch of upserts and deletes in order, with one policy-revision bump at the end. Every change
   * is validated before the first write, so a bad change leaves the map as it was.
   * @throws AgentError `InvalidArgument`, `AlreadyExists` (reason `IpcacheConflict`), `DatapathFailed`
   * (a kernel failure mid-batch: the writes before it stay, the revision is bumped for them).
   * @example A node's initial sync
   * ```ts
   * ipc.apply(pods.map((p) => ({ op: 'upsert', entry: { prefix: `${p.ip}/32`, identity: p.id, node: p.node } })));
   * ```
   */
  apply(changes: readonly IpcacheChange[]): IpcacheWrites {
    const plan = changes.map((c) =>
      c.op === 'upsert'
        ? { op: 'upsert' as const, ...checkEntry(c.entry) }
        : c.op === 'delete'
          ? { op: 'delete' as const, prefix: canonicalPrefix(c.prefix) }
          : (() => {
              throw new AgentError('InvalidArgument', `ipcache: unknown change ${JSON.stringify(c)}`);
            })(),
    );
    if (plan.length >= BATCH_MIN) return this.#applyBatch(plan);
    const map = this.#dp.ipcache;
    const out: IpcacheWrites = { updated: 0, deleted: 0, revision: 0 };
    const dump: { map?: Map<string, IpcacheEntry> } = {};
    try {
      for (const c of plan) {
        // LPM lookup: `cur` may be a shorter prefix's entry (0.0.0.0/0 matches everything); only an entry
        // of exactly this prefix counts.
        let cur = map.get(c.prefix);
        if (cur !== undefined && (cur.flags & IPCACHE_F_REMOTE) === 0) {
          const owned = this.#engineOwns?.(c.prefix) ?? this.#exact(c.prefix, dump) !== undefined;
          if (!owned) cur = undefined;
        } else if (cur !== undefined && dump.map !== undefined) cur = dump.map.get(c.prefix);
        if (c.op === 'upsert') {
          if (cur !== undefined && (cur.flags & IPCACHE_F_REMOTE) === 0) throw conflict(c.prefix, cur);
          if (cur !== undefined && same(cur, c.value)) continue;
          map.set(c.prefix, c.value);
          dump.map?.set(c.prefix, c.value);
          out.updated++;
        } else {
          if (cur === undefined || (cur.flags & IPCACHE_F_REMOTE) === 0) continue;
          map.delete(c.prefix);
          dump.map?.delete(c.prefix);
          out.deleted++;
        }
      }
    } catch (err) {
      if (out.updated + out.deleted > 0) this.#dp.bumpPolicyRevision();
      if (err instanceof AgentError) throw err;
      throw new AgentError('DatapathFailed', `ipcache: ${(err as Error).message}`, { cause: err });
    }
    out.revision = out.updated + out.deleted > 0 ? this.#dp.bumpPolicyRevision() : this.#dp.policyRevision();
    return out;
  }

  /**
   * A large batch (a node's initial sync, a node going away): the map is read once (a dump: exact
   * entries, no per-prefix lookup), each prefix's last change wins, and the writes go as one
   * `BPF_MAP_UPDATE_BATCH` run and one `BPF_MAP_DELETE_BATCH` run. A conflict is found before any write.
   */
  /**
   * Makes the writer's entries exactly `entries`: each is upserted, and every other entry of the cluster's
   * (`IPCACHE_F_REMOTE`) is deleted, with one read of the map and batch writes (one policy-revision bump). What
   * a control plane's initial sync calls with the whole cluster state: a restarted node drops what went while
   * it was away.
   * @throws AgentError `InvalidArgument`, `AlreadyExists` (reason `IpcacheConflict`), `DatapathFailed`.
   * @example A node's initial sync
   * ```ts
   * ipc.replace(pods.map((p) => ({ prefix: `${p.ip}/32`, identity: p.id, node: p.node })));
   * ```
   */
  replace(entries: readonly RemoteIpcacheEntry[]): IpcacheWrites {
    return this.#applyBatch(
      entries.map((e) => ({ op: 'upsert' as const, ...checkEntry(e) })),
      true,
    );
  }

  #applyBatch(plan: readonly PlannedChange[], exclusive = false): IpcacheWrites {
    const map = this.#dp.ipcache;
    const now = new Map<string, IpcacheEntry>();
    try {
      for (const [prefix, v] of map.dump()) now.set(prefix, v);
    } catch (err) {
      throw new AgentError('DatapathFailed', `ipcache: ${(err as Error).message}`, { cause: err });
    }
    // The writer's view of each prefix: a remote entry, or an engine entry the engine no longer states.
    const cur = (prefix: string): IpcacheEntry | undefined => {
      const v = now.get(prefix);
      if (v === undefined || (v.flags & IPCACHE_F_REMOTE) !== 0) return v;
      return this.#engineOwns?.(prefix) === false ? undefined : v;
    };
    // Each prefix's outcome against the map as it is: a value to write, a delete, or nothing to do.
    const want = new Map<string, IpcacheEntry | 'delete'>();
    for (const c of plan) {
      const v = cur(c.prefix);
      if (c.op === 'upsert') {
        if (v !== undefined && (v.flags & IPCACHE_F_REMOTE) === 0) throw conflict(c.prefix, v);
        if (v !== undefined && same(v, c.value)) want.delete(c.prefix);
        else want.set(c.prefix, c.value);
      } else if (v !== undefined && (v.flags & IPCACHE_F_REMOTE) !== 0) want.set(c.prefix, 'delete');
      else want.delete(c.prefix);
    }
    if (exclusive) {
      const named = new Set(plan.map((c) => c.prefix));
      for (const [prefix, v] of now)
        if ((v.flags & IPCACHE_F_REMOTE) !== 0 && !named.has(prefix)) want.set(prefix, 'delete');
    }
    const sets: [string, IpcacheEntry][] = [];
    const dels: string[] = [];
    for (const [prefix, v] of want) {
      if (v === 'delete') dels.push(prefix);
      else sets.push([prefix, v]);
    }
    const out: IpcacheWrites = { updated: 0, deleted: 0, revision: 0 };
    try {
      if (sets.length > 0) map.setMany(sets);
      out.updated = sets.length;
      if (dels.length > 0) out.deleted = map.deleteMany(dels);
    } catch (err) {
      this.#dp.bumpPolicyRevision();
      throw new AgentError('DatapathFailed', `ipcache: ${(err as Error).message}`, { cause: err });
    }
    out.revision = out.updated + out.deleted > 0 ? this.#dp.bumpPolicyRevision() : this.#dp.policyRevision();
    return out;
  }

  /** The cluster's entry of exactly this prefix, if any (not a longest-prefix match). */
  get(prefix: string): RemoteIpcacheEntry | undefined {
    const p = canonicalPrefix(prefix);
    const v = this.#dp.ipcache.get(p);
    return v === undefined || (v.flags & IPCACHE_F_REMOTE) === 0 ? undefined : toEntry(p, v);
  }

  /**
   * Every entry this writer owns (those flagged `IPCACHE_F_REMOTE`), read from the kernel: what a restarted
   * control plane compares with the cluster state to resync.
   * @example
   * ```ts
   * for (const e of ipc.list()) console.log(e.prefix, e.identity, e.node ?? '-');
   * ```
   */
  list(): RemoteIpcacheEntry[] {
    const out: RemoteIpcacheEntry[] = [];
    for (const [prefix, v] of this.#dp.ipcache.dump())
      if ((v.flags & IPCACHE_F_REMOTE) !== 0) out.push(toEntry(prefix, v));
    return out;
  }
}

function toEntry(prefix: string, v: IpcacheEntry): RemoteIpcacheEntry {
  return v.tunnelEndpoint === undefined
    ? { prefix, identity: v.identity }
    : { prefix, identity: v.identity, node: v.tunnelEndpoint };
}
