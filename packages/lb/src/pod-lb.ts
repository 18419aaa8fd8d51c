/**
 * Per-packet ClusterIP load balancing for pods that run without socket LB: bpf/lxc.c loaded once
 * and attached to the host side of each pod's veth.
 */

import { attachAsync, type Collection, compile, type Link, load, openObject } from '@datapath/loader';
import { type LbConfigOptions, lbConfig } from './datapath/config.js';
import { ServiceWriter } from './datapath/writer.js';
import { setConstants } from './netdev.gen.js';
import type { NetnsHandle } from './netdev.js';
import { type FlowTimeouts, netdevConstants } from './netdev-config.js';
import { LXC_SOURCES } from './netdev-layout.js';
import { ServiceTable } from './plan.js';

/** Where {@link PodLb.load} shares its maps and finds the object cache. */
export interface PodLbOptions {
  /**
   * bpffs directory of the pinned service maps (written by the service writer) and of the `nat4` and
   * `nat6` flow maps (shared with the outward device's programs when they are loaded from it too).
   */
  pinDir: string;
  /** Flow lifetimes. */
  timeouts?: FlowTimeouts;
  /** Seed of the Maglev flow hash, the same on every node of a cluster (see `NetdevConfig.hashSeed`). Default 0. */
  hashSeed?: number;
  /** The loader's object cache (default: the loader's). */
  cacheDir?: string;
  /** Sizes of the service maps (they must match the writer's, e.g. the Maglev table size). */
  lb?: Omit<LbConfigOptions, 'pinByName'>;
}

/** Where to attach: a pod's host-side veth. */
export interface PodDevice {
  /** Name of the host-side veth. */
  ifname: string;
  /** Namespace it lives in (default: the caller's). */
  netns?: NetnsHandle;
  /** `tcx` (Linux ≥ 6.6), legacy `tc`, or `auto` (default). */
  prefer?: 'auto' | 'tcx' | 'tc';
}

/**
 * bpf/lxc.c loaded: `from_container` (ingress of a pod's host-side veth) sends a pod's flows to a
 * service frontend (IPv4 or IPv6, TCP or UDP) to a backend; `to_container` (egress) gives the backend's replies the frontend's
 * address back. `close()` detaches every attachment and releases the object.
 */
export class PodLb implements Disposable {
  readonly #coll: Collection;
  readonly #links = new Map<string, Link[]>();
  readonly #lb: PodLbOptions['lb'];
  #closed = false;

  private constructor(coll: Collection, lb: PodLbOptions['lb']) {
    this.#coll = coll;
    this.#lb = lb;
  }

  /**
   * Compiles (cached) and loads bpf/lxc.c with its maps pinned by name in `pinDir`.
   *
   * @throws `LbError` (of `@datapath/lb`) `InvalidArgument` for bad timeouts or hash seed; the loader's errors otherwise.
   * @example Per-packet ClusterIP for one pod
   * ```ts
   * import { PodLb } from '@datapath/lb/datapath';
   * using lb = await PodLb.load({ pinDir: '/sys/fs/bpf/lb' });
   * await lb.attach({ ifname: 'lxc1234' });
   * ```
   */
  static async load(options: PodLbOptions): Promise<PodLb> {
    const constants = netdevConstants({
      nodeAddress: '127.0.0.1', // unused by lxc.c: only the timeouts matter here
      ...(options.timeouts === undefined ? {} : { timeouts: options.timeouts }),
      ...(options.hashSeed === undefined ? {} : { hashSeed: options.hashSeed }),
    });
    const compiled = await compile({
      files: LXC_SOURCES,
      config: lbConfig({ ...options.lb, pinByName: true }),
      ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    });
    const spec = openObject(compiled.path, 'lxc');
    const {
      ct_timeout_syn,
      ct_timeout_tcp,
      ct_timeout_close,
      ct_timeout_udp,
      ct_timeout_icmp,
      lb_hash_seed,
    } = constants;
    setConstants(spec, {
      ct_timeout_syn,
      ct_timeout_tcp,
      ct_timeout_close,
      ct_timeout_udp,
      ct_timeout_icmp,
      lb_hash_seed,
    });
    return new PodLb(load(spec, { pinDir: options.pinDir }), options.lb);
  }

  /**
   * Attaches both programs to a pod's host-side veth; nothing stays attached if the second fails.
   * Equivalent to: `tc filter add dev DEV ingress bpf da obj lxc.o sec tc` (and egress), with tcx.
   *
   * @throws BpfError `NotFound` for an unknown device, `InvalidState` once closed.
   * @example
   * ```ts
   * import { type PodLb } from '@datapath/lb/datapath';
   * declare const lb: PodLb;
   * await lb.attach({ ifname: 'lxc1234' });
   * lb.detach('lxc1234');
   * ```
   */
  async attach(device: PodDevice): Promise<void> {
    const dev = {
      ifname: device.ifname,
      ...(device.netns === undefined ? {} : { netns: device.netns }),
      prefer: device.prefer ?? 'auto',
    } as const;
    const links: Link[] = [];
    try {
      links.push(await attachAsync(this.#coll.program('from_container'), { ...dev, direction: 'ingress' }));
      links.push(await attachAsync(this.#coll.program('to_container'), { ...dev, direction: 'egress' }));
    } catch (err) {
      for (const l of links.reverse()) await l.detachAsync();
      throw err;
    }
    this.#links.set(device.ifname, [...(this.#links.get(device.ifname) ?? []), ...links]);
  }

  /**
   * A {@link ServiceWriter} over the service maps pinned in `pinDir` (through this object's
   * descriptors: use it while this handle is open).
   *
   * @param table the service table (default: an empty one with the object's Maglev table size).
   * @example
   * ```ts
   * import { type PodLb } from '@datapath/lb/datapath';
   * declare const lb: PodLb;
   * using services = lb.serviceWriter();
   * services.upsert({ name: 'web', protocol: 'TCP', frontends: [{ address: '10.96.0.10', port: 80 }], backends: [] });
   * ```
   */
  serviceWriter(table?: ServiceTable): ServiceWriter {
    return ServiceWriter.fromCollection(
      this.#coll,
      table ?? new ServiceTable({ tableSize: this.#lb?.maglevTableSize }),
    );
  }

  /** Detaches the programs from one pod's veth (no-op when not attached). */
  detach(ifname: string): void {
    for (const l of (this.#links.get(ifname) ?? []).reverse()) l.detach();
    this.#links.delete(ifname);
  }

  /** Detaches everywhere and releases the object (pinned maps stay in `pinDir`). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const name of [...this.#links.keys()]) this.detach(name);
    this.#coll.close();
  }

  /** Same as {@link PodLb.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
