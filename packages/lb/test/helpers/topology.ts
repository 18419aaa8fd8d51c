/**
 * The test topology: pods —veth— node —veth— world, every namespace created by the test and named
 * with the run's prefix. The node forwards; the world knows only its own link (no route to pods).
 *
 *   pod<i>  eth0 10.244.1.<4i+2>/30, default via 10.244.1.<4i+1>
 *   node    p<i> 10.244.1.<4i+1>/30 (one per pod), ext0 198.18.0.1/24, ip_forward on
 *   world   eth0 198.18.0.2/24
 * and IPv6 beside it: pod<i> fd00:1:0:<i+1>::2/64 (default via fd00:1:0:<i+1>::1), node ext0 fd00:ff::1/64,
 * world fd00:ff::2/64 (no route to fd00:1::/48).
 */
import { Netns } from '@datapath/netlink';
import { createNetns, deleteNetns, inNetns, run } from '@datapath/testutils';

export const NODE_ADDR = '198.18.0.1';
export const WORLD_ADDR = '198.18.0.2';
export const POD_CIDR = '10.244.1.0/24';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_ADDR6 = 'fd00:ff::1';
export const WORLD_ADDR6 = 'fd00:ff::2';
export const POD_CIDR6 = 'fd00:1::/48';

/** The namespaces of one test, and helpers bound to them. */
export interface Topology {
  readonly prefix: string;
  readonly node: string;
  readonly world: string;
  readonly pods: {
    readonly ns: string;
    readonly ip: string;
    readonly ip6: string;
    readonly hostIf: string;
  }[];
  /** A Netns handle of the node namespace (close it with the topology). */
  readonly nodeNetns: Netns;
  close(): void;
}

function ip(ns: string, ...args: string[]): void {
  run('ip', ['-n', ns, ...args]);
}

/** Builds the topology with `pods` pods. */
export function buildTopology(prefix: string, pods: number): Topology {
  const names = [
    `${prefix}-node`,
    `${prefix}-world`,
    ...Array.from({ length: pods }, (_, i) => `${prefix}-pod${i}`),
  ];
  const made: string[] = [];
  let nodeNetns: Netns | undefined;
  try {
    for (const n of names) {
      createNetns(n);
      made.push(n);
    }
    const [node, world] = names as [string, string];
    ip(node, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', world);
    ip(node, 'addr', 'add', `${NODE_ADDR}/24`, 'dev', 'ext0');
    ip(world, 'addr', 'add', `${WORLD_ADDR}/24`, 'dev', 'eth0');
    ip(node, 'link', 'set', 'ext0', 'up');
    ip(world, 'link', 'set', 'eth0', 'up');
    ip(node, 'addr', 'add', `${NODE_ADDR6}/64`, 'dev', 'ext0', 'nodad');
    ip(world, 'addr', 'add', `${WORLD_ADDR6}/64`, 'dev', 'eth0', 'nodad');
    inNetns(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    inNetns(node, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    const podList = names.slice(2).map((ns, i) => {
      const podIp = `10.244.1.${4 * i + 2}`;
      const gw = `10.244.1.${4 * i + 1}`;
      const hostIf = `p${i}`;
      ip(node, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip(node, 'addr', 'add', `${gw}/30`, 'dev', hostIf);
      ip(ns, 'addr', 'add', `${podIp}/30`, 'dev', 'eth0');
      ip(node, 'link', 'set', hostIf, 'up');
      ip(ns, 'link', 'set', 'eth0', 'up');
      ip(ns, 'route', 'add', 'default', 'via', gw);
      const pod6 = `fd00:1:0:${i + 1}::2`;
      ip(node, 'addr', 'add', `fd00:1:0:${i + 1}::1/64`, 'dev', hostIf, 'nodad');
      ip(ns, 'addr', 'add', `${pod6}/64`, 'dev', 'eth0', 'nodad');
      ip(ns, '-6', 'route', 'add', 'default', 'via', `fd00:1:0:${i + 1}::1`);
      return { ns, ip: podIp, ip6: pod6, hostIf };
    });
    nodeNetns = Netns.open({ name: node });
    const handle = nodeNetns;
    return {
      prefix,
      node,
      world,
      pods: podList,
      nodeNetns: handle,
      close() {
        handle.close();
        for (const n of made.reverse()) deleteNetns(n);
      },
    };
  } catch (err) {
    nodeNetns?.close();
    for (const n of made.reverse()) deleteNetns(n);
    throw err;
  }
}
