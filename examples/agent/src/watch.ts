/**
 * The agent watches its own devices: a netlink link subscription in the node namespace (the
 * subscription of @datapath/netlink: listing first, then every change, a resync after an overrun). A
 * pod's host-side veth that goes away behind the agent's back (deleted with `ip link del`, its pod
 * namespace removed by someone else) is reported and its endpoint cleaned up. Run by `agent serve`.
 */
import { Handle, type LinkEvent, Netns, type Subscription } from '@datapath/netlink';
import type { PodRecord } from './state.js';

/** A pod whose host-side veth is gone. */
export interface DeviceGone {
  pod: string;
  ifname: string;
  ifindex: number;
  lxcId: number;
  /** `notify`: the kernel announced the deletion; `list`/`resync`: missing from a listing. */
  seen: 'notify' | 'list' | 'resync';
}

/** Options of {@link watchDevices}. */
export interface WatchOptions {
  /** Named network namespace of the node (where the host-side veths live). */
  nodeNetns: string;
  /** The agent's pods now (read again at every check: pods come and go). */
  pods: () => readonly PodRecord[];
  /** Called once per pod whose device is gone. */
  onGone: (gone: DeviceGone) => void | Promise<void>;
  /** Failures of the watch itself. */
  onError?: (err: unknown) => void;
}

/** A running device watch; `close()` ends it. */
export interface DeviceWatch {
  close(): void;
  /** Resolves once the initial listing was compared with the pods. */
  readonly ready: Promise<void>;
}

/**
 * Starts watching the node namespace's links.
 * @throws NetlinkError when the namespace or the subscription cannot be opened.
 */
export function watchDevices(o: WatchOptions): DeviceWatch {
  const ns = Netns.open({ name: o.nodeNetns });
  let sub: Subscription;
  try {
    const h = Handle.open(ns);
    try {
      // Removals only once listed: the new and changed links of every endpoint create are not even decoded.
      sub = h.subscribe(['link'], { list: true, actions: ['del'] });
    } finally {
      h.close();
    }
  } finally {
    ns.close();
  }
  const reported = new Set<number>();
  let listing = new Set<number>();
  let resolveReady = () => {};
  const ready = new Promise<void>((r) => {
    resolveReady = r;
  });
  const gone = async (p: PodRecord, seen: DeviceGone['seen']) => {
    if (reported.has(p.hostIfindex)) return;
    reported.add(p.hostIfindex);
    await o.onGone({ pod: p.key, ifname: p.hostIfname, ifindex: p.hostIfindex, lxcId: p.lxcId, seen });
  };
  const run = async () => {
    for await (const ev of sub) {
      if (ev.kind === 'overrun') {
        listing = new Set();
      } else if (ev.kind === 'synced') {
        // A listing is complete: every pod whose veth it did not show is gone.
        for (const p of o.pods()) if (!listing.has(p.hostIfindex)) await gone(p, ev.source);
        if (ev.source === 'list') resolveReady();
      } else if (ev.kind === 'link') {
        const link = (ev as LinkEvent).link;
        if (link.index === undefined) continue;
        if (ev.source !== 'notify') {
          listing.add(link.index);
          continue;
        }
        if (ev.action !== 'del') continue;
        const p = o.pods().find((x) => x.hostIfindex === link.index);
        if (p !== undefined) await gone(p, 'notify');
      }
    }
  };
  run().catch((err) => {
    o.onError?.(err);
    resolveReady();
  });
  return {
    ready,
    close: () => sub.close(),
  };
}
