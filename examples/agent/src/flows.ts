/**
 * `agent observe`: the last N events as flows, Hubble-like. `agent serve` keeps them in a FlowLog (a
 * fixed ring of the newest records); the CLI asks for them with filters and prints a table. Pure.
 */

import { AgentError } from './errors.js';
import { type AgentEvent, hasPorts } from './events.js';
import { table } from './format.js';

/** A flow as `agent observe` shows it: an event with its wall-clock time and Hubble's verdict. */
export interface Flow extends AgentEvent {
  /** Wall-clock time (ISO 8601) of the packet. */
  time: string;
  /** Hubble's verdict: FORWARDED (allowed verdicts, traces) or DROPPED (drops, denied verdicts). */
  flowVerdict: 'FORWARDED' | 'DROPPED';
}

/** Filters of `agent observe` (all must match). */
export interface FlowFilter {
  /** Source: `ns/name`, `ns/` (a namespace), an IP, `host` or `world`. */
  from?: string;
  /** Destination, as `from`. */
  to?: string;
  verdict?: 'FORWARDED' | 'DROPPED';
  /** Destination port. */
  port?: number;
  /** Newest flows to return (after filtering); default all kept. */
  last?: number;
}

/** Parses `--verdict` and `--port` values. */
export function parseFlowFilter(v: {
  from?: string | undefined;
  to?: string | undefined;
  verdict?: string | undefined;
  port?: string | undefined;
  last?: string | undefined;
}): FlowFilter {
  const f: FlowFilter = {};
  if (v.from !== undefined) f.from = v.from;
  if (v.to !== undefined) f.to = v.to;
  if (v.verdict !== undefined) {
    const verdict = v.verdict.toUpperCase();
    if (verdict !== 'FORWARDED' && verdict !== 'DROPPED')
      throw new AgentError('InvalidArgument', `--verdict must be FORWARDED or DROPPED, got ${v.verdict}`);
    f.verdict = verdict;
  }
  if (v.port !== undefined) {
    const port = Number(v.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new AgentError('InvalidArgument', `--port must be a port number, got ${v.port}`);
    f.port = port;
  }
  if (v.last !== undefined) {
    const last = Number(v.last);
    if (!Number.isInteger(last) || last < 1)
      throw new AgentError('InvalidArgument', `--last must be a positive integer, got ${v.last}`);
    f.last = last;
  }
  return f;
}

const peerMatches = (want: string, p: AgentEvent['source']) =>
  p.ip === want || p.name === want || (want.endsWith('/') && (p.name ?? '').startsWith(want));

/** Whether a flow passes a filter. */
export function flowMatches(flow: Flow, f: FlowFilter): boolean {
  if (f.from !== undefined && !peerMatches(f.from, flow.source)) return false;
  if (f.to !== undefined && !peerMatches(f.to, flow.destination)) return false;
  if (f.verdict !== undefined && flow.flowVerdict !== f.verdict) return false;
  if (f.port !== undefined && flow.destination.port !== f.port) return false;
  return true;
}

/** Turns an event into a flow, with the wall-clock time of a `bpf_ktime_get_ns` stamp. */
export function toFlow(e: AgentEvent, monoNowNs: bigint, wallNowMs: number): Flow {
  const ageMs = Number(monoNowNs - BigInt(e.timeNs)) / 1e6;
  const dropped = e.type === 'drop' || (e.type === 'policy-verdict' && e.verdict === 'denied');
  return {
    ...e,
    time: new Date(wallNowMs - ageMs).toISOString(),
    flowVerdict: dropped ? 'DROPPED' : 'FORWARDED',
  };
}

/** The newest `capacity` flows, oldest first. */
export class FlowLog {
  readonly capacity: number;
  readonly #ring: (Flow | undefined)[];
  #next = 0;
  /** Flows added since the log was made (also those that fell out). */
  seen = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new AgentError(
        'InvalidArgument',
        `flow log capacity must be a positive integer, got ${capacity}`,
      );
    this.capacity = capacity;
    this.#ring = new Array(capacity);
  }

  add(flow: Flow): void {
    this.#ring[this.#next] = flow;
    this.#next = (this.#next + 1) % this.capacity;
    this.seen++;
  }

  /** The kept flows that pass `filter`, oldest first (the newest `filter.last` of them). */
  query(filter: FlowFilter = {}): Flow[] {
    const out: Flow[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const f = this.#ring[(this.#next + i) % this.capacity];
      if (f !== undefined && flowMatches(f, filter)) out.push(f);
    }
    return filter.last === undefined ? out : out.slice(-filter.last);
  }
}

/** A peer as Hubble shows it: a pod or reserved name, else the address (with its CIDR identity's prefix). */
const endpointText = (p: AgentEvent['source'], protocol: string) => {
  const port = hasPorts(protocol) ? `:${p.port}` : '';
  if (p.name !== undefined && p.name !== p.identityName) return `${p.name}${port}`;
  return `${p.ip}${port}${p.identityName === undefined ? '' : ` (${p.identityName})`}`;
};

/** Hubble's SUMMARY column. */
function summary(f: Flow): string {
  const proto = `${f.protocol}${f.tcpFlags === undefined ? '' : ` Flags: ${f.tcpFlags}`}`;
  switch (f.type) {
    case 'drop':
      return `${proto} (${f.reason}, ${f.endpoint.direction} of endpoint ${f.endpoint.id})`;
    case 'policy-verdict':
      return `${proto} (policy ${f.endpoint.direction} of endpoint ${f.endpoint.id}, match ${f.match})`;
    case 'trace':
      return `${proto} (${f.endpoint.direction} of endpoint ${f.endpoint.id})`;
  }
}

/** The flows as a Hubble-like table. */
export function renderFlows(flows: readonly Flow[]): string {
  return table(
    ['TIMESTAMP', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'],
    flows.map((f) => [
      f.time.replace('T', ' ').replace('Z', ''),
      endpointText(f.source, f.protocol),
      endpointText(f.destination, f.protocol),
      f.type === 'drop' ? `drop:${f.reason}` : f.type,
      f.flowVerdict,
      summary(f),
    ]),
  );
}
