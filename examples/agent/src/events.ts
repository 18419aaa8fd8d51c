/**
 * The datapath's event records (`struct dp_event`, `struct trace_event` in bpf/datapath.h, codecs
 * generated from the object's BTF) decoded into what an operator reads: pods by name, identities,
 * reasons and verdicts in words. Pure: the ring buffer is read by monitor.ts and serve.ts.
 */
import { dpEvent, EventType, PolicyMatch } from './datapath.gen.js';
import { dirName, protoName, reasonName } from './maps.js';
import type { AgentState } from './state.js';

/** Size of the record header; a trace record carries `cap_len` packet bytes after it. */
export const EVENT_HEADER_SIZE = dpEvent.size;

/** Event kinds as the CLI names them (`--type`). */
export const EVENT_TYPES = ['drop', 'policy-verdict', 'trace'] as const;
/** An event kind. */
export type EventKind = (typeof EVENT_TYPES)[number];

const KIND_BY_CODE: Record<number, EventKind> = {
  [EventType.EVENT_DROP]: 'drop',
  [EventType.EVENT_POLICY_VERDICT]: 'policy-verdict',
  [EventType.EVENT_TRACE]: 'trace',
};

/** Names of `enum policy_match` (Cilium's match types), by code. */
const MATCHES: Record<number, string> = Object.fromEntries(
  Object.entries(PolicyMatch).map(([name, code]) => [
    code,
    name
      .replace(/^MATCH_/, '')
      .toLowerCase()
      .replaceAll('_', '-'),
  ]),
);

/** One side of a flow, named. */
export interface Peer {
  ip: string;
  port: number;
  /** Security identity (0: not resolved for this packet). */
  identity: number;
  /** A CIDR identity as its prefix (`cidr:10.244.9.0/24`): what the text output shows instead of the number. */
  identityName?: string;
  /** `ns/name` of a local pod, `host`, `world`, the `cidr:` prefix of a CIDR identity, or undefined. */
  name?: string;
  /** Endpoint id of a local pod. */
  endpoint?: number;
}

/** A decoded, named event: what `agent monitor --json` prints, one per line. */
export interface AgentEvent {
  type: EventKind;
  /** Kernel monotonic time of the packet (ns, `bpf_ktime_get_ns`). */
  timeNs: string;
  /** Drop reason in words (`policy-denied`, …); `forwarded` for allowed verdicts and traces. */
  reason: string;
  /** Policy verdict: `allowed` or `denied`. */
  verdict?: 'allowed' | 'denied';
  /** Policy verdict: which kind of policy entry decided (`l3-l4`, `all`, `none`, …). */
  match?: string;
  /** The endpoint that decided (drop, verdict) or observed the packet (trace), and its direction. */
  endpoint: { id: number; pod?: string; direction: 'ingress' | 'egress' | 'unknown' };
  source: Peer;
  destination: Peer;
  protocol: string;
  /** Packet length in bytes. */
  length: number;
  /** TCP flags of a trace whose packet bytes show them (`SYN`, `ACK`, …). */
  tcpFlags?: string;
  /** Trace: the first bytes of the packet (hex, from its Ethernet header). */
  data?: string;
}

/** A record as the datapath wrote it, before naming. */
export interface RawEvent {
  type: number;
  reason: number;
  dir: number;
  match: number;
  srcLxc: number;
  dstLxc: number;
  srcId: number;
  dstId: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
  len: number;
  lxcId: number;
  tsNs: bigint;
  /** Trace: the packet bytes the record carries (a copy). */
  data?: Uint8Array;
}

/**
 * Decodes one ring buffer record (`len` bytes at `off`): the header, and for a trace the packet
 * bytes after it. Returns undefined for a record shorter than the header.
 */
export function decodeRecord(view: DataView, off: number, len: number): RawEvent | undefined {
  if (len < EVENT_HEADER_SIZE) return undefined;
  const h = dpEvent.decode(view, off);
  const ev: RawEvent = {
    type: h.type,
    reason: h.reason,
    dir: h.dir,
    match: h.match,
    srcLxc: h.srcLxc,
    dstLxc: h.dstLxc,
    srcId: h.srcId,
    dstId: h.dstId,
    saddr: h.tuple.saddr,
    daddr: h.tuple.daddr,
    sport: h.tuple.sport,
    dport: h.tuple.dport,
    proto: h.tuple.proto,
    len: h.len,
    lxcId: h.lxcId,
    tsNs: h.tsNs,
  };
  const cap = Math.min(h.capLen, len - EVENT_HEADER_SIZE);
  if (cap > 0)
    ev.data = new Uint8Array(
      view.buffer.slice(
        view.byteOffset + off + EVENT_HEADER_SIZE,
        view.byteOffset + off + EVENT_HEADER_SIZE + cap,
      ),
    );
  return ev;
}

const RESERVED: Record<number, string> = { 1: 'host', 2: 'world' };

/** First node-local identity: CIDR identities (Cilium's `LocalIdentityFlag`, as @datapath/policy numbers them). */
const LOCAL_IDENTITY = 1 << 24;

/**
 * The CIDR identities of the agent's identity table (`local:` label sets with a `cidr:` label, as the policy
 * engine allocates them for policy prefixes) by number, named by their prefix: `cidr:10.244.9.0/24`.
 */
export function cidrIdentityNames(identities: Readonly<Record<string, number>> = {}): Map<number, string> {
  const out = new Map<number, string>();
  for (const [key, id] of Object.entries(identities)) {
    if (!key.startsWith('local:')) continue;
    const cidrs = key
      .slice('local:'.length)
      .split(',')
      .filter((l) => l.startsWith('cidr:'));
    // The most specific prefix names the identity (a label set could carry its enclosing prefixes too).
    const best = cidrs.sort((a, b) => Number(b.split('/')[1]) - Number(a.split('/')[1]))[0];
    if (best !== undefined) out.set(id, best);
  }
  return out;
}

/** TCP flags of an Ethernet + IPv4 + TCP packet's first bytes, or undefined. */
function tcpFlags(data: Uint8Array): string | undefined {
  if (data.length < 14 + 20 || data[12] !== 0x08 || data[13] !== 0x00 || data[23] !== 6) return undefined;
  const ihl = (data[14]! & 0x0f) * 4;
  const at = 14 + ihl + 13;
  if (data.length <= at) return undefined;
  const f = data[at]!;
  const names = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'];
  return names.filter((_n, i) => f & (1 << i)).join(',') || 'none';
}

/**
 * Names the endpoints, pods and identities of raw events from the agent's state (re-read through
 * `reload` when an endpoint id it does not know shows up: a pod added after the monitor started).
 */
export class EventNamer {
  #byLxc = new Map<number, string>();
  #byIp = new Map<string, string>();
  #byIdentity = new Map<number, string>();
  #cidrs = new Map<number, string>();
  #reload: (() => AgentState | undefined) | undefined;
  #lastReload = 0;
  readonly #live: boolean;
  /** Live reloads: when each unknown endpoint id (`l<id>`) or identity (`i<id>`) last caused one. */
  readonly #tried = new Map<string, number>();

  /**
   * @param reload the agent's state again, asked for when an event names an endpoint or identity the namer does
   * not know yet.
   * @param options `live`: `reload` hands back the running agent's own state (a resident agent), no file read:
   * the first unknown id of each new endpoint or identity re-indexes at once (and each id again at most once a
   * second). Otherwise (the state files read again) there is one reload a second at most, whatever it was for.
   */
  constructor(state: AgentState, reload?: () => AgentState | undefined, options: { live?: boolean } = {}) {
    this.#reload = reload;
    this.#live = options.live === true;
    this.#index(state);
  }

  #index(state: AgentState): void {
    this.#byLxc.clear();
    this.#byIp.clear();
    this.#byIdentity.clear();
    this.#cidrs = cidrIdentityNames(state.identities);
    for (const p of Object.values(state.pods)) {
      this.#byLxc.set(p.lxcId, p.key);
      this.#byIp.set(p.ip, p.key);
      if (!this.#byIdentity.has(p.identity)) this.#byIdentity.set(p.identity, p.key);
    }
    this.#byIp.set(state.hostIp, 'host');
  }

  /** Reads the state again when an event names something it does not know yet (`key`), throttled. */
  #refresh(key: string): void {
    if (this.#reload === undefined) return;
    const now = Date.now();
    if (this.#live) {
      const at = this.#tried.get(key);
      if (at !== undefined && now - at <= 1000) return;
      if (this.#tried.size >= 4096) this.#tried.clear();
      this.#tried.set(key, now);
    } else {
      if (now - this.#lastReload <= 1000) return;
      this.#lastReload = now;
    }
    const s = this.#reload();
    if (s !== undefined) this.#index(s);
  }

  /** The pod of an endpoint id. */
  pod(lxcId: number): string | undefined {
    if (lxcId === 0) return undefined;
    if (!this.#byLxc.has(lxcId)) this.#refresh(`l${lxcId}`);
    return this.#byLxc.get(lxcId);
  }

  /** A CIDR identity's prefix (`cidr:10.244.9.0/24`), undefined for any other identity. */
  cidr(identity: number): string | undefined {
    if (identity < LOCAL_IDENTITY) return undefined;
    if (!this.#cidrs.has(identity)) this.#refresh(`i${identity}`);
    return this.#cidrs.get(identity);
  }

  #peer(ip: string, port: number, identity: number, lxc: number): Peer {
    const cidr = this.cidr(identity);
    const name = this.pod(lxc) ?? this.#byIp.get(ip) ?? RESERVED[identity] ?? cidr;
    return {
      ip,
      port,
      identity,
      ...(cidr === undefined ? {} : { identityName: cidr }),
      ...(name === undefined ? {} : { name }),
      ...(lxc === 0 ? {} : { endpoint: lxc }),
    };
  }

  /** The event in words. */
  describe(ev: RawEvent): AgentEvent {
    const type = KIND_BY_CODE[ev.type] ?? 'drop';
    const pod = this.pod(ev.lxcId);
    const out: AgentEvent = {
      type,
      timeNs: ev.tsNs.toString(),
      reason: reasonName(ev.reason),
      endpoint: { id: ev.lxcId, ...(pod === undefined ? {} : { pod }), direction: dirName(ev.dir) },
      source: this.#peer(ev.saddr, ev.sport, ev.srcId, ev.srcLxc),
      destination: this.#peer(ev.daddr, ev.dport, ev.dstId, ev.dstLxc),
      protocol: protoName(ev.proto),
      length: ev.len,
    };
    if (type === 'policy-verdict') {
      out.verdict = ev.reason === 0 ? 'allowed' : 'denied';
      out.match = MATCHES[ev.match] ?? `match-${ev.match}`;
    }
    if (ev.data !== undefined) {
      out.data = Buffer.from(ev.data).toString('hex');
      const flags = tcpFlags(ev.data);
      if (flags !== undefined) out.tcpFlags = flags;
    }
    return out;
  }
}

/** Which events a monitor shows. */
export interface EventFilter {
  /** Kinds to show (all when empty). */
  types?: readonly EventKind[];
  /** Show only events of which this pod (`ns/name`) is the source, destination or deciding endpoint. */
  pod?: string;
}

/** Whether an event passes a filter. */
export function matchesFilter(e: AgentEvent, f: EventFilter): boolean {
  if (f.types !== undefined && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (
    f.pod !== undefined &&
    e.endpoint.pod !== f.pod &&
    e.source.name !== f.pod &&
    e.destination.name !== f.pod
  )
    return false;
  return true;
}

/** Whether a protocol has ports (ICMP's `port` is the echo identifier: not shown). */
export const hasPorts = (protocol: string): boolean =>
  protocol === 'TCP' || protocol === 'UDP' || protocol === 'SCTP';

const side = (p: Peer, ports: boolean) => {
  const who = p.name === undefined ? '' : ` (${p.name})`;
  return `${p.ip}${ports ? `:${p.port}` : ''}${who}`;
};

/** An identity as the text output shows it: a CIDR identity as its prefix, any other as its number. */
export const identityText = (p: Peer): string => p.identityName ?? String(p.identity);

/**
 * One line per event, in the spirit of `cilium monitor` (a CIDR identity shows as `cidr:10.244.9.0/24`):
 *
 *     drop (policy-denied) ingress of endpoint 2 (demo/server), identity 1234->5678: 10.244.1.3:41234 (demo/client) -> 10.244.1.2:80 (demo/server) TCP, 74 bytes
 *     policy-verdict ingress of endpoint 2 (demo/server): action deny, match none, identity 1234->5678: …
 *     trace egress of endpoint 1 (demo/client), identity 1234->5678: … TCP SYN, 74 bytes
 */
export function formatEvent(e: AgentEvent): string {
  const ep =
    e.endpoint.id === 0
      ? 'no endpoint'
      : `${e.endpoint.direction} of endpoint ${e.endpoint.id}${e.endpoint.pod === undefined ? '' : ` (${e.endpoint.pod})`}`;
  const ids = `identity ${identityText(e.source)}->${identityText(e.destination)}`;
  const ports = hasPorts(e.protocol);
  const flow = `${side(e.source, ports)} -> ${side(e.destination, ports)} ${e.protocol}${e.tcpFlags === undefined ? '' : ` ${e.tcpFlags}`}, ${e.length} bytes`;
  switch (e.type) {
    case 'drop':
      return `drop (${e.reason}) ${ep}, ${ids}: ${flow}`;
    case 'policy-verdict':
      return `policy-verdict ${ep}: action ${e.verdict === 'allowed' ? 'allow' : 'deny'}${e.verdict === 'denied' ? ` (${e.reason})` : ''}, match ${e.match}, ${ids}: ${flow}`;
    case 'trace':
      return `trace ${ep}, ${ids}: ${flow}`;
  }
}
