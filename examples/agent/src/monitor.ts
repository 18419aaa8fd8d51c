/**
 * `agent monitor` and `agent observe` as clients. The monitor streams from `agent serve` when it runs
 * (the ring's single consumer; cilium monitor likewise reads the agent's monitor socket), otherwise it
 * reads the pinned ring buffer itself: the agent's other commands are short-lived, so a monitor must
 * work without a server too.
 */
import { request } from 'node:http';
import { Datapath } from './datapath.js';
import { AgentError } from './errors.js';
import { type AgentEvent, decodeRecord, type EventFilter, EventNamer, matchesFilter } from './events.js';
import type { Flow, FlowFilter } from './flows.js';
import { observerSocket, socketAnswers } from './serve.js';
import { type AgentState, loadState } from './state.js';

/** Where a monitor reads from. */
export type MonitorSource = 'observer' | 'ring';

/** Options of {@link monitor}. */
export interface MonitorOptions {
  state: AgentState;
  stateDir: string;
  filter: EventFilter;
  /** Called for each event that passes the filter; return false to stop. */
  onEvent: (e: AgentEvent) => boolean | undefined;
  /** Called once the monitor is reading (from which source). */
  onReady?: (source: MonitorSource) => void;
  signal?: AbortSignal;
}

/** Streams events until `onEvent` returns false or `signal` aborts; resolves with the source it read. */
export async function monitor(o: MonitorOptions): Promise<MonitorSource> {
  const socket = observerSocket(o.stateDir);
  if (await socketAnswers(socket)) {
    await fromObserver(socket, o);
    return 'observer';
  }
  await fromRing(o);
  return 'ring';
}

function fromObserver(socket: string, o: MonitorOptions): Promise<void> {
  const q = new URLSearchParams();
  for (const t of o.filter.types ?? []) q.append('type', t);
  if (o.filter.pod !== undefined) q.set('pod', o.filter.pod);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: `/events?${q}` }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => reject(new AgentError('InvalidArgument', body.trim())));
        return;
      }
      o.onReady?.('observer');
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line !== '' && o.onEvent(JSON.parse(line) as AgentEvent) === false) {
            req.destroy();
            return resolve();
          }
          nl = buf.indexOf('\n');
        }
      });
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', (err) => reject(err));
    o.signal?.addEventListener('abort', () => {
      req.destroy();
      resolve();
    });
    req.end();
  });
}

async function fromRing(o: MonitorOptions): Promise<void> {
  using dp = Datapath.attachPinned(o.state.pinDir);
  await using ring = dp.openEvents();
  const namer = new EventNamer(o.state, () => {
    try {
      return loadState(o.stateDir);
    } catch {
      return undefined;
    }
  });
  await new Promise<void>((resolve, reject) => {
    let sub: { close(): void } | undefined;
    const stop = () => {
      sub?.close();
      resolve();
    };
    try {
      sub = ring.subscribe((view, off, len) => {
        const raw = decodeRecord(view, off, len);
        if (raw === undefined) return;
        const e = namer.describe(raw);
        if (matchesFilter(e, o.filter) && o.onEvent(e) === false) stop();
      });
    } catch (err) {
      reject(err);
      return;
    }
    o.onReady?.('ring');
    if (o.signal?.aborted) stop();
    o.signal?.addEventListener('abort', stop);
  });
}

/**
 * The newest flows of the running `agent serve`, filtered.
 * @throws AgentError `NotRunning` when no observer serves the agent.
 */
export async function observe(
  stateDir: string,
  filter: FlowFilter,
): Promise<{ seen: number; capacity: number; flows: Flow[] }> {
  const socket = observerSocket(stateDir);
  if (!(await socketAnswers(socket)))
    throw new AgentError(
      'NotRunning',
      `no observer on ${socket}: start one with \`agent serve\` (it keeps the flows)`,
    );
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
  return JSON.parse(await get(socket, `/flows?${q}`));
}

/** GET over the observer's unix socket; rejects on a status other than 200 with the body as message. */
export function get(socket: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new AgentError('InvalidArgument', body.trim())),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
