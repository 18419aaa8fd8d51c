import { parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import type { NodeCidrAllocation, StoreClusterPool } from './cluster-pool.js';
import { closedError, invalidArgument, KvError } from './errors.js';
import { ChangeListeners, PrefixMirror } from './mirror.js';
import type { NodeSession } from './session.js';
import type { KvStore, KvWatchEvent } from './types.js';

/** One node of the cluster as the registry holds it. */
export interface ClusterNode {
  /** The node name (the {@link NodeSession} name). */
  readonly name: string;
  /** The node's underlay address: where other nodes route (native) or tunnel (VXLAN) to its pods. */
  readonly address: string;
  /** The node's pod CIDRs. */
  readonly podCidrs: NodeCidrAllocation;
  /** A random id of the node agent's boot: it changes when the agent restarts. */
  readonly bootId: string;
}

/** Options of {@link NodeRegistry.open}. */
export interface NodeRegistryOptions {
  /** Key prefix of the registry; default `registry/`. */
  readonly prefix?: string;
}

/** What a node registers: its underlay address, its boot id and (optionally) fixed pod CIDRs. */
export interface NodeRegistration {
  /** The underlay address (IPv4 or IPv6, no prefix length). */
  readonly address: string;
  /** The agent's boot id. */
  readonly bootId: string;
  /**
   * Pod CIDRs chosen by the operator instead of the cluster pool; each must not overlap another node's
   * CIDR. Without it the node's CIDRs come from the pool (the same ones again after a restart).
   */
  readonly podCidrs?: NodeCidrAllocation;
}

/** A change of the cluster's node set. */
export type ClusterNodeChange =
  | {
      /** A node registered or changed (new boot, new address). */
      readonly type: 'upsert';
      /** The node now. */
      readonly node: ClusterNode;
    }
  | {
      /** A node left or its lease expired. */
      readonly type: 'delete';
      /** The node as it was last seen. */
      readonly node: ClusterNode;
    };

function parseNode(value: string): ClusterNode | undefined {
  try {
    const v = JSON.parse(value) as ClusterNode;
    if (typeof v.name !== 'string' || typeof v.address !== 'string' || typeof v.bootId !== 'string')
      return undefined;
    return { name: v.name, address: v.address, podCidrs: v.podCidrs ?? {}, bootId: v.bootId };
  } catch {
    return undefined;
  }
}

function checkClash(
  op: string,
  name: string,
  address: string,
  nodeValue: string | undefined,
  addrOwner: string | undefined,
): void {
  const prev = nodeValue === undefined ? undefined : parseNode(nodeValue);
  if (prev !== undefined && prev.address !== address) {
    throw new KvError(
      'AlreadyExists',
      `${op}: node name ${name} is registered by a live node with address ${prev.address}`,
      { op, target: name },
    );
  }
  if (addrOwner !== undefined && addrOwner !== name) {
    throw new KvError(
      'AlreadyExists',
      `${op}: underlay address ${address} is registered by node ${addrOwner}`,
      {
        op,
        target: address,
      },
    );
  }
}

function overlaps(a: string, b: string): boolean {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  return prefixContains(pa, pb) || prefixContains(pb, pa);
}

/**
 * The cluster's node registry: every node puts `<prefix>nodes/<name>` (name, underlay address, pod CIDRs,
 * boot id) and `<prefix>addresses/<address>` (→ name) under its {@link NodeSession} lease, so both vanish
 * when the node dies; every node mirrors the whole registry (list, then watch from the listing's revision,
 * reloading after a compaction). A node that registers again with the same name and address (an agent
 * restart, even before its old lease expired) takes its entry over and keeps its pod CIDRs; another
 * node's name or address is refused with a typed error, before anything is written.
 *
 * @example Two nodes see each other
 * ```ts
 * import { MemoryStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const pool = await StoreClusterPool.open(store, { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } });
 * const a = await NodeRegistry.open(await NodeSession.open(store, { node: 'a' }), pool);
 * const b = await NodeRegistry.open(await NodeSession.open(store, { node: 'b' }), pool);
 * await a.register({ address: '198.18.0.1', bootId: 'x' });
 * await b.register({ address: '198.18.0.2', bootId: 'y' });
 * console.log(a.nodes().get('b')?.podCidrs.ipv4); // '10.244.1.0/24'
 * ```
 */
export class NodeRegistry implements AsyncDisposable {
  /** The session the registration lives under. */
  readonly session: NodeSession;
  readonly #pool: StoreClusterPool;
  readonly #prefix: string;
  readonly #nodes = new Map<string, ClusterNode>();
  readonly #listeners = new ChangeListeners<ClusterNodeChange>();
  readonly #mirror: PrefixMirror;
  #self: ClusterNode | undefined;
  #closed = false;

  private constructor(session: NodeSession, pool: StoreClusterPool, prefix: string) {
    this.session = session;
    this.#pool = pool;
    this.#prefix = prefix;
    this.#mirror = new PrefixMirror(
      session.store,
      `${prefix}nodes/`,
      (ev, notify) => this.#apply(ev, notify),
      () => [...this.#nodes.keys()].map((n) => `${prefix}nodes/${n}`),
    );
  }

  /**
   * Loads the registry and starts watching it (this node is not registered yet: call
   * {@link NodeRegistry.register}).
   *
   * @throws {@link KvError} `InvalidArgument` (bad prefix), `Unavailable`, `TimedOut`.
   * @example Opening
   * ```ts
   * import { MemoryStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const pool = await StoreClusterPool.open(store, { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } });
   * const registry = await NodeRegistry.open(await NodeSession.open(store, { node: 'a' }), pool);
   * ```
   */
  static async open(
    session: NodeSession,
    pool: StoreClusterPool,
    options: NodeRegistryOptions = {},
  ): Promise<NodeRegistry> {
    const prefix = options.prefix ?? 'registry/';
    if (!prefix.endsWith('/')) throw invalidArgument('NodeRegistry.open', "prefix must end with '/'");
    const r = new NodeRegistry(session, pool, prefix);
    await r.#mirror.start();
    session.onRenew((lease) => r.#republish(lease));
    return r;
  }

  /**
   * Checks, before a node opens its session, that its name and underlay address are free (or its own
   * from before a restart), so a refused node never touches the cluster's keys (not even the liveness key).
   *
   * @throws {@link KvError} `AlreadyExists` (as {@link NodeRegistry.register}), `Unavailable`, `TimedOut`.
   * @example Checking first
   * ```ts
   * import { MemoryStore, NodeRegistry } from '@datapath/kvstore';
   * await NodeRegistry.precheck(new MemoryStore(), 'a', '198.18.0.1');
   * ```
   */
  static async precheck(
    store: KvStore,
    node: string,
    address: string,
    options: NodeRegistryOptions = {},
  ): Promise<void> {
    const prefix = options.prefix ?? 'registry/';
    const [cur, addrOwner] = await Promise.all([
      store.get(`${prefix}nodes/${node}`),
      store.get(`${prefix}addresses/${address}`),
    ]);
    checkClash('NodeRegistry.precheck', node, address, cur?.value, addrOwner?.value);
  }

  /**
   * Registers this node (idempotent: the same call after a restart keeps the pod CIDRs). The CIDRs come
   * from the cluster pool unless `podCidrs` is given.
   *
   * @throws {@link KvError} `InvalidArgument` (bad address or CIDR), `AlreadyExists` (another live node has
   * this name with another address, or this address, or a CIDR overlapping `podCidrs`), `Exhausted` (pool
   * full), `Unavailable`, `TimedOut`, `InvalidState` (closed).
   * @example Registering
   * ```ts
   * import { MemoryStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const pool = await StoreClusterPool.open(store, { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } });
   * const registry = await NodeRegistry.open(await NodeSession.open(store, { node: 'a' }), pool);
   * const me = await registry.register({ address: '198.18.0.1', bootId: 'boot-1' });
   * console.log(me.podCidrs.ipv4); // '10.244.0.0/24'
   * ```
   */
  async register(reg: NodeRegistration): Promise<ClusterNode> {
    const op = 'NodeRegistry.register';
    if (this.#closed) throw closedError(op, 'registry');
    if (typeof reg.address !== 'string' || tryParseIp(reg.address) === undefined)
      throw invalidArgument(op, `underlay address must be an IP address, got ${String(reg.address)}`);
    if (typeof reg.bootId !== 'string' || reg.bootId.length === 0)
      throw invalidArgument(op, 'bootId must be a non-empty string');
    for (const c of Object.values(reg.podCidrs ?? {})) {
      try {
        parsePrefix(c as string);
      } catch (err) {
        throw new KvError('InvalidArgument', `${op}: bad pod CIDR ${String(c)}`, { op, cause: err });
      }
    }
    const name = this.session.node;
    const store = this.session.store;
    const nodeKey = `${this.#prefix}nodes/${name}`;
    const addrKey = `${this.#prefix}addresses/${reg.address}`;
    for (let round = 0; round < 8; round++) {
      const [cur, addrOwner, all] = await Promise.all([
        store.get(nodeKey),
        store.get(addrKey),
        store.list(`${this.#prefix}nodes/`),
      ]);
      checkClash(op, name, reg.address, cur?.value, addrOwner?.value);
      if (reg.podCidrs !== undefined) {
        for (const e of all.entries) {
          const other = parseNode(e.value);
          if (other === undefined || other.name === name) continue;
          for (const mine of Object.values(reg.podCidrs))
            for (const theirs of [
              ...Object.values(other.podCidrs),
              ...Object.values(this.#pool.allocations().get(other.name) ?? {}),
            ])
              if (mine !== undefined && theirs !== undefined && overlaps(mine, theirs))
                throw new KvError(
                  'AlreadyExists',
                  `${op}: pod CIDR ${mine} overlaps ${theirs} of node ${other.name}`,
                  { op, target: mine },
                );
        }
        for (const [owner, cidrs] of this.#pool.allocations()) {
          if (owner === name) continue;
          for (const mine of Object.values(reg.podCidrs))
            for (const theirs of Object.values(cidrs))
              if (mine !== undefined && theirs !== undefined && overlaps(mine, theirs))
                throw new KvError(
                  'AlreadyExists',
                  `${op}: pod CIDR ${mine} overlaps ${theirs} of node ${owner} (cluster pool)`,
                  { op, target: mine },
                );
        }
      }
      const podCidrs = reg.podCidrs ?? (await this.#pool.allocate(name));
      const node: ClusterNode = { name, address: reg.address, podCidrs, bootId: reg.bootId };
      const lease = this.session.leaseId;
      const r = await store.txn(
        [
          cur === undefined
            ? { key: nodeKey, target: 'version', op: '==', value: 0 }
            : { key: nodeKey, target: 'modRevision', op: '==', value: cur.modRevision },
          addrOwner === undefined
            ? { key: addrKey, target: 'version', op: '==', value: 0 }
            : { key: addrKey, target: 'modRevision', op: '==', value: addrOwner.modRevision },
        ],
        [
          { type: 'put', key: nodeKey, value: JSON.stringify(node), lease },
          { type: 'put', key: addrKey, value: name, lease },
        ],
      );
      if (r.succeeded) {
        this.#self = node;
        return node;
      }
    }
    throw new KvError('Busy', `${op}: lost the registration race too often`, {
      op,
      target: name,
      reason: 'Conflict',
    });
  }

  /**
   * Removes this node's registration now (its pod CIDRs stay in the pool until released or reaped).
   *
   * @throws {@link KvError} `Unavailable`, `TimedOut`.
   * @example Leaving
   * ```ts
   * import { MemoryStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const pool = await StoreClusterPool.open(store, { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } });
   * const registry = await NodeRegistry.open(await NodeSession.open(store, { node: 'a' }), pool);
   * await registry.register({ address: '198.18.0.1', bootId: 'b' });
   * await registry.deregister();
   * ```
   */
  async deregister(): Promise<void> {
    const self = this.#self;
    if (self === undefined) return;
    this.#self = undefined;
    await this.session.store.txn(
      [],
      [
        { type: 'delete', key: `${this.#prefix}nodes/${self.name}` },
        { type: 'delete', key: `${this.#prefix}addresses/${self.address}` },
      ],
    );
  }

  /** Every registered node (this one included once registered), by name, from the watched copy. */
  nodes(): Map<string, ClusterNode> {
    return new Map(this.#nodes);
  }

  /** This node's registration, once {@link NodeRegistry.register} succeeded. */
  get self(): ClusterNode | undefined {
    return this.#self;
  }

  /**
   * Calls `listener` for every change of the node set seen by the watch (not for the initial load; read
   * {@link NodeRegistry.nodes} for that). Returns the function that unregisters it.
   *
   * @example Following nodes
   * ```ts
   * import { MemoryStore, NodeRegistry, NodeSession, StoreClusterPool } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const pool = await StoreClusterPool.open(store, { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } });
   * const registry = await NodeRegistry.open(await NodeSession.open(store, { node: 'a' }), pool);
   * const stop = registry.onChange((c) => console.log(c.type, c.node.name));
   * stop();
   * ```
   */
  onChange(listener: (change: ClusterNodeChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  /** Stops watching (the registration stays until the session ends). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#mirror.close();
  }

  /** Same as {@link NodeRegistry.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #republish(lease: string): Promise<void> {
    const self = this.#self;
    if (self === undefined || this.#closed) return;
    await this.session.store.txn(
      [],
      [
        { type: 'put', key: `${this.#prefix}nodes/${self.name}`, value: JSON.stringify(self), lease },
        { type: 'put', key: `${this.#prefix}addresses/${self.address}`, value: self.name, lease },
      ],
    );
  }

  #apply(ev: KvWatchEvent, notify: boolean): void {
    const base = `${this.#prefix}nodes/`;
    if (ev.type === 'put') {
      const node = parseNode(ev.entry.value);
      if (node === undefined) return;
      const old = this.#nodes.get(node.name);
      this.#nodes.set(node.name, node);
      if (notify && JSON.stringify(old) !== JSON.stringify(node))
        this.#listeners.emit({ type: 'upsert', node });
      return;
    }
    const name = ev.key.slice(base.length);
    const old = this.#nodes.get(name);
    if (old === undefined) return;
    this.#nodes.delete(name);
    if (notify) this.#listeners.emit({ type: 'delete', node: old });
  }
}
