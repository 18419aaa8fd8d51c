/**
 * `agent serve`: the agent's long-running observer. The other commands are short-lived processes that
 * change the pinned maps and the state file; this one is the single consumer of the pinned `events`
 * ring buffer (a ring has one consumer position: two readers would split the records), and serves,
 * on a unix socket in the agent's state directory (mode 0600, like cilium's monitor socket):
 *
 *   GET /metrics   Prometheus text (metrics.ts; also on a loopback TCP port with `--metrics-port`)
 *   GET /flows     the newest flows as JSON, filtered (`from`, `to`, `verdict`, `port`, `last`): `agent observe`
 *   GET /events    the live event stream as JSON lines, filtered (`type`, `pod`): `agent monitor`
 *
 * It also watches the agent's own devices (watch.ts): a pod whose host-side veth disappears behind the
 * agent's back is reported (a log line, `datapath_agent_devices_removed_total`) and removed like
 * `agent pod del` would (endpoint maps, programs, address, namespace, policy, state).
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { EventSubscription, RingBuf } from '@datapath/bpf-maps';
import { Agent } from './agent.js';
import { Datapath } from './datapath.js';
import { AgentError } from './errors.js';
import {
  type AgentEvent,
  decodeRecord,
  EVENT_TYPES,
  type EventFilter,
  type EventKind,
  EventNamer,
  matchesFilter,
} from './events.js';
import { FlowLog, parseFlowFilter, toFlow } from './flows.js';
import { AgentMetrics } from './metrics.js';
import { type AgentState, loadState } from './state.js';
import { type DeviceGone, type DeviceWatch, watchDevices } from './watch.js';

/** Path of the observer's unix socket in a state directory. */
export function observerSocket(stateDir: string): string {
  return join(stateDir, 'observer.sock');
}

/** Options of {@link Observer.start}. */
export interface ObserverOptions {
  stateDir: string;
  /** Flows kept for `agent observe` (default 4096, as Hubble's default buffer). */
  flows?: number;
  /** Also serve /metrics on 127.0.0.1:<port> (0: any free port; default: the unix socket only). */
  metricsPort?: number;
  /** Watch the agent's devices (default true). */
  watchDevices?: boolean;
  /**
   * What to do with a pod whose host-side veth is gone: default, restore the agent in this process and
   * remove the pod (`agent pod del`). A process that holds the agent (a resident agent) passes its own.
   */
  onDeviceGone?: (gone: DeviceGone) => Promise<void>;
  /**
   * The agent's state, when the agent runs in this process (a resident agent): events are named and devices
   * checked from it instead of reading the state files again (a re-read per second while events name a new
   * endpoint, and one per removed device).
   */
  state?: () => AgentState;
  log?: (line: string) => void;
}

/** Whether something answers on a unix socket. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Parses the `type` and `pod` query parameters of /events. */
export function eventFilterFromQuery(q: URLSearchParams): EventFilter {
  const types = q.getAll('type');
  for (const t of types)
    if (!(EVENT_TYPES as readonly string[]).includes(t))
      throw new AgentError('InvalidArgument', `--type must be one of ${EVENT_TYPES.join(', ')}, got ${t}`);
  const pod = q.get('pod');
  return { types: types as EventKind[], ...(pod === null ? {} : { pod }) };
}

/** The running observer: ring buffer consumer, flow log, metrics and their servers. */
export class Observer {
  readonly socketPath: string;
  readonly metrics: AgentMetrics;
  readonly flows: FlowLog;
  readonly datapath: Datapath;
  /** The loopback TCP port of /metrics, when asked for. */
  metricsPort: number | undefined;
  readonly #ring: RingBuf;
  readonly #sub: EventSubscription;
  readonly #namer: EventNamer;
  readonly #servers: Server[] = [];
  readonly #streams = new Set<{ filter: EventFilter; res: ServerResponse }>();
  readonly #log: (line: string) => void;
  #watch: DeviceWatch | undefined;
  #cleanups: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(state: AgentState, o: ObserverOptions) {
    this.socketPath = observerSocket(o.stateDir);
    this.#log = o.log ?? (() => undefined);
    this.flows = new FlowLog(o.flows ?? 4096);
    this.datapath = Datapath.attachPinned(state.pinDir);
    try {
      const current = o.state;
      this.#namer = new EventNamer(
        state,
        current ??
          (() => {
            try {
              return loadState(o.stateDir);
            } catch {
              return undefined;
            }
          }),
        { live: current !== undefined },
      );
      this.metrics = new AgentMetrics({
        datapath: this.datapath,
        stateDir: o.stateDir,
        podOf: (id) => this.#namer.pod(id),
      });
      this.#ring = this.datapath.openEvents();
      this.#sub = this.#ring.subscribe((view, off, len) => {
        const raw = decodeRecord(view, off, len);
        if (raw !== undefined) this.#publish(this.#namer.describe(raw));
      });
    } catch (err) {
      this.datapath.close();
      throw err;
    }
  }

  /**
   * Starts the observer of the agent whose state is in `stateDir`.
   * @throws AgentError `NotRunning` without agent state, `AlreadyRunning` when another observer answers on the socket.
   */
  static async start(o: ObserverOptions): Promise<Observer> {
    const state = loadState(o.stateDir);
    const path = observerSocket(o.stateDir);
    if (await socketAnswers(path))
      throw new AgentError('AlreadyRunning', `an observer already serves ${path} (agent serve)`);
    rmSync(path, { force: true });
    const obs = new Observer(state, o);
    try {
      await obs.#listen(o);
      if (o.watchDevices !== false) await obs.#watchDevices(state, o);
    } catch (err) {
      await obs.close();
      throw err;
    }
    return obs;
  }

  async #listen(o: ObserverOptions): Promise<void> {
    const unix = createServer((req, res) => void this.#handle(req, res, true));
    this.#servers.push(unix);
    await new Promise<void>((resolve, reject) => {
      unix.once('error', reject);
      unix.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    if (o.metricsPort !== undefined) {
      const tcp = createServer((req, res) => void this.#handle(req, res, false));
      this.#servers.push(tcp);
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(o.metricsPort, '127.0.0.1', () => resolve());
      });
      const addr = tcp.address();
      this.metricsPort = typeof addr === 'object' && addr !== null ? addr.port : undefined;
    }
  }

  async #watchDevices(state: AgentState, o: ObserverOptions): Promise<void> {
    const remove =
      o.onDeviceGone ??
      (async (g: DeviceGone) => {
        const agent = await Agent.restore({ name: state.name, prefix: state.prefix, stateDir: o.stateDir });
        try {
          await agent.removePodAsync(g.pod);
        } finally {
          agent.close();
        }
      });
    this.#watch = watchDevices({
      nodeNetns: state.nodeNetns,
      pods: () => {
        try {
          return Object.values((o.state ?? (() => loadState(o.stateDir)))().pods);
        } catch {
          return [];
        }
      },
      onGone: (g) => {
        this.#log(
          `device ${g.ifname} (ifindex ${g.ifindex}) of pod ${g.pod}, endpoint ${g.lxcId}, is gone (${g.seen === 'notify' ? 'deleted' : `missing from the ${g.seen} listing`}): removing the endpoint`,
        );
        this.metrics.deviceGone(g.pod);
        // One removal at a time, in the order the devices went.
        this.#cleanups = this.#cleanups.then(() =>
          remove(g).then(
            () => this.#log(`pod ${g.pod} removed`),
            (err) => this.#log(`pod ${g.pod}: cleanup failed: ${(err as Error).message}`),
          ),
        );
        return this.#cleanups;
      },
      onError: (err) => this.#log(`device watch stopped: ${(err as Error).message}`),
    });
    await this.#watch.ready;
  }

  #publish(e: AgentEvent): void {
    this.metrics.observeEvent(e);
    this.flows.add(toFlow(e, process.hrtime.bigint(), Date.now()));
    if (this.#streams.size === 0) return;
    const line = `${JSON.stringify(e)}\n`;
    for (const s of this.#streams) if (matchesFilter(e, s.filter)) s.res.write(line);
  }

  async #handle(req: IncomingMessage, res: ServerResponse, unix: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    try {
      if (req.method !== 'GET') throw new AgentError('InvalidArgument', `${req.method} not supported`);
      if (url.pathname === '/metrics') {
        const text = await this.metrics.text();
        res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text);
        return;
      }
      // The event stream and the flows stay on the socket the agent owns (the TCP port is for scrapes).
      if (!unix) {
        res.writeHead(404).end('only /metrics is served on this port\n');
        return;
      }
      if (url.pathname === '/flows') {
        const q = url.searchParams;
        const filter = parseFlowFilter({
          from: q.get('from') ?? undefined,
          to: q.get('to') ?? undefined,
          verdict: q.get('verdict') ?? undefined,
          port: q.get('port') ?? undefined,
          last: q.get('last') ?? undefined,
        });
        const body = {
          seen: this.flows.seen,
          capacity: this.flows.capacity,
          flows: this.flows.query(filter),
        };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        return;
      }
      if (url.pathname === '/events') {
        const stream = { filter: eventFilterFromQuery(url.searchParams), res };
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.flushHeaders();
        this.#streams.add(stream);
        req.socket.once('close', () => this.#streams.delete(stream));
        return;
      }
      res.writeHead(404).end(`no ${url.pathname}: /metrics, /flows, /events\n`);
    } catch (err) {
      const e = err as Error & { code?: string };
      res.writeHead(e instanceof AgentError ? 400 : 500).end(`${e.message}${e.code ? ` [${e.code}]` : ''}\n`);
    }
  }

  /** Stops serving, ends the event streams, closes the ring and the maps, removes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    await this.#cleanups;
    for (const s of this.#streams) s.res.end();
    this.#streams.clear();
    await Promise.all(
      this.#servers.map(
        (srv) =>
          new Promise<void>((resolve) => {
            srv.close(() => resolve());
            srv.closeAllConnections();
          }),
      ),
    );
    this.#sub?.close();
    this.#ring?.close();
    this.datapath.close();
    rmSync(this.socketPath, { force: true });
    this.#log('observer stopped');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
