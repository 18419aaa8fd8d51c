/**
 * The prefilter lab: a client and a server namespace joined by a veth, the XDP prefilter on the
 * server's end, a deny list of CIDRs in an LPM trie and counters read back per rule.
 */
import { fileURLToPath } from 'node:url';
import {
  type Codec,
  type LpmKey,
  LpmTrieMap,
  lpmKeyCodec,
  PerCpuArrayMap,
  PerCpuHashMap,
  u32,
  u64,
} from '@datapath/bpf-maps';
import { type Collection, compile, type Link, loadAsync, openObject, xdpAttachAsync } from '@datapath/loader';
import { addrAdd, linkAdd, linkSetUp } from '@datapath/netdev';
import { Handle, type Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { pingFrom } from './sys/ping.js';

const SOURCE = fileURLToPath(new URL('../bpf/prefilter.c', import.meta.url));
const cidrKey: Codec<LpmKey> = lpmKeyCodec({ family: 'ipv4' });

/** The server's address; every client source address is in the same /24. */
export const SERVER_IP = '10.244.9.1';

/** What one source saw. */
export interface SourceResult {
  source: string;
  sent: number;
  received: number;
}

/** Counters of the XDP program, summed over CPUs. */
export interface PrefilterCounters {
  passed: bigint;
  dropped: bigint;
  notIp: bigint;
  /** Packets dropped per deny-list CIDR. */
  hits: Record<string, bigint>;
}

function tryDelete(name: string): void {
  try {
    netnsDelete(name);
  } catch {
    // not created
  }
}

/** Namespaces, veth and the attached program; `close()` removes all of it. */
export class PrefilterLab implements Disposable {
  readonly client: Netns;
  readonly server: Netns;
  readonly mode: 'driver' | 'generic';
  readonly #names: string[];
  readonly #coll: Collection;
  readonly #link: Link;
  readonly #deny: LpmTrieMap<LpmKey, number>;
  /** Stable rule id per CIDR (never reused), so counters stay attributed across updates. */
  readonly #ids = new Map<string, number>();

  private constructor(
    names: string[],
    client: Netns,
    server: Netns,
    coll: Collection,
    link: Link,
    mode: 'driver' | 'generic',
  ) {
    this.#names = names;
    this.client = client;
    this.server = server;
    this.#coll = coll;
    this.#link = link;
    this.mode = mode;
    this.#deny = denyMap(coll);
  }

  /**
   * Builds the lab: namespaces `<prefix>-c` and `<prefix>-s`, a veth between them, the client's
   * `sources` on its end, the prefilter attached to the server's end (native XDP, generic as fallback).
   */
  static async create(
    prefix: string,
    sources: readonly string[],
    mode: 'auto' | 'driver' | 'generic' = 'auto',
  ): Promise<PrefilterLab> {
    const names = [`${prefix}-c`, `${prefix}-s`];
    const opened: Netns[] = [];
    try {
      const client = netnsAdd(names[0]!);
      opened.push(client);
      const server = netnsAdd(names[1]!);
      opened.push(server);
      const ch = Handle.open(client);
      const sh = Handle.open(server);
      try {
        linkAdd({ name: 'eth0', kind: 'veth', peer: { name: 'eth0', netns: server } }, { handle: ch });
        for (const ip of sources) addrAdd('eth0', `${ip}/24`, { handle: ch });
        addrAdd('eth0', `${SERVER_IP}/24`, { handle: sh });
        for (const [h, dev] of [
          [ch, 'eth0'],
          [ch, 'lo'],
          [sh, 'eth0'],
          [sh, 'lo'],
        ] as const)
          linkSetUp(dev, { handle: h });
      } finally {
        ch.close();
        sh.close();
      }
      const obj = await compile({ files: [SOURCE] });
      const coll = await loadAsync(openObject(obj.path, 'prefilter'));
      let link: Link | undefined;
      let used: 'driver' | 'generic' = 'driver';
      for (const m of mode === 'auto' ? (['driver', 'generic'] as const) : [mode]) {
        try {
          link = await xdpAttachAsync(coll.program('prefilter'), { ifname: 'eth0', netns: server, mode: m });
          used = m;
          break;
        } catch (err) {
          if (mode !== 'auto' || m === 'generic') {
            coll.close();
            throw err;
          }
        }
      }
      return new PrefilterLab(names, client, server, coll, link!, used);
    } catch (err) {
      for (const ns of opened) ns.close();
      for (const n of names) tryDelete(n);
      throw err;
    }
  }

  /**
   * Replaces the deny list with the fewest map writes; each CIDR keeps its rule id (and its drop
   * counter) for as long as the lab lives. Returns how many entries were written or deleted.
   */
  setDenyList(cidrs: readonly string[]): number {
    const want = new Map<string, LpmKey>();
    for (const cidr of cidrs) {
      const [addr, len] = cidr.split('/') as [string, string | undefined];
      want.set(cidr, { addr, prefixLen: len === undefined ? 32 : Number(len) });
    }
    let changes = 0;
    for (const [k] of this.#deny.entries()) {
      if (want.has(`${k.addr}/${k.prefixLen}`)) continue;
      this.#deny.delete(k);
      changes++;
    }
    for (const [cidr, key] of want) {
      let id = this.#ids.get(cidr);
      if (id === undefined) {
        id = this.#ids.size;
        this.#ids.set(cidr, id);
      }
      if (this.#deny.get(key) === id) continue;
      this.#deny.set(key, id);
      changes++;
    }
    return changes;
  }

  /** Sends `count` echoes from `source` to the server and counts the replies. */
  ping(source: string, count: number): SourceResult {
    return { source, sent: count, received: pingFrom(this.client.path, source, SERVER_IP, count) };
  }

  /** Reads the program's counters. */
  counters(): PrefilterCounters {
    const verdicts = verdictMap(this.#coll);
    const perRule = hitsMap(this.#coll);
    const sum = (xs: readonly bigint[]) => xs.reduce((a, b) => a + b, 0n);
    const hits: Record<string, bigint> = {};
    const names = new Map([...this.#ids].map(([cidr, id]) => [id, cidr]));
    for (const [id, per] of perRule.entries()) hits[names.get(id) ?? `rule ${id}`] = sum(per);
    const out = {
      passed: sum(verdicts.get(0) ?? []),
      dropped: sum(verdicts.get(1) ?? []),
      notIp: sum(verdicts.get(2) ?? []),
      hits,
    };
    verdicts.close();
    perRule.close();
    return out;
  }

  /** Detaches the program and deletes both namespaces. */
  close(): void {
    this.#deny.close();
    this.#link.close();
    this.#coll.close();
    this.client.close();
    this.server.close();
    for (const n of this.#names) tryDelete(n);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function denyMap(coll: Collection): LpmTrieMap<LpmKey, number> {
  return LpmTrieMap.fromFd(coll.map('deny4').fd, { key: cidrKey, value: u32 });
}

function verdictMap(coll: Collection): PerCpuArrayMap<bigint> {
  return PerCpuArrayMap.fromFd(coll.map('verdicts').fd, { value: u64 });
}

function hitsMap(coll: Collection): PerCpuHashMap<number, bigint> {
  return PerCpuHashMap.fromFd(coll.map('hits').fd, { key: u32, value: u64 });
}
