/**
 * The agent's Prometheus metrics (prom-client): the datapath's own counters read from its pinned maps
 * at every scrape (drops by reason and endpoint, forwarded packets and bytes, map fill, lost events),
 * policy verdicts counted from the event stream, and the agent's latencies from its journal
 * (latency.ts). Served by `agent serve` (serve.ts).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Datapath } from './datapath.js';
import type { AgentEvent } from './events.js';
import { readLatencies } from './latency.js';
import { dirName, reasonName } from './maps.js';

/** Maps whose fill is reported (hash-like maps; the arrays are always full). */
const FILL_MAPS = ['endpoints', 'lxc', 'ipcache', 'ct', 'metrics', 'policy'] as const;
/** Their names in the object (`ct` is `ct4`). */
const MAP_NAMES: Record<(typeof FILL_MAPS)[number], string> = {
  endpoints: 'endpoints',
  lxc: 'lxc',
  ipcache: 'ipcache',
  ct: 'ct4',
  metrics: 'metrics',
  policy: 'policy',
};

/** Histogram buckets of the agent's operations (seconds): 1 ms to 10 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Where the metrics come from. */
export interface MetricsSources {
  datapath: Datapath;
  /** The agent's state directory (latency journal). */
  stateDir: string;
  /** Endpoint id → `ns/name`. */
  podOf: (lxcId: number) => string | undefined;
}

/** The agent's metrics registry; {@link AgentMetrics.observeEvent} feeds it the event stream. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly #verdicts: Counter<'endpoint' | 'pod' | 'direction' | 'verdict' | 'match'>;
  readonly #events: Counter<'type'>;
  readonly #devicesGone: Counter<'pod'>;
  readonly #podSetup: Histogram;
  readonly #policyApply: Histogram;
  readonly #stateDir: string;
  #journal = 0;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    const pod = (id: number) => src.podOf(id) ?? '';
    new Counter({
      name: 'datapath_drop_count_total',
      help: 'Packets dropped by the datapath, by reason, endpoint and direction (the metrics map)',
      labelNames: ['reason', 'endpoint', 'pod', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of src.datapath.counters())
          if (c.reason > 1)
            this.inc(
              {
                reason: reasonName(c.reason),
                endpoint: c.lxcId,
                pod: pod(c.lxcId),
                direction: dirName(c.dir),
              },
              Number(c.packets),
            );
      },
    });
    new Counter({
      name: 'datapath_drop_bytes_total',
      help: 'Bytes dropped by the datapath, by reason, endpoint and direction (the metrics map)',
      labelNames: ['reason', 'endpoint', 'pod', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of src.datapath.counters())
          if (c.reason > 1)
            this.inc(
              {
                reason: reasonName(c.reason),
                endpoint: c.lxcId,
                pod: pod(c.lxcId),
                direction: dirName(c.dir),
              },
              Number(c.bytes),
            );
      },
    });
    new Counter({
      name: 'datapath_forward_count_total',
      help: 'Packets forwarded by the datapath, by endpoint and direction (the fwd array)',
      labelNames: ['endpoint', 'pod', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of src.datapath.counters())
          if (c.reason === 0)
            this.inc({ endpoint: c.lxcId, pod: pod(c.lxcId), direction: dirName(c.dir) }, Number(c.packets));
      },
    });
    new Counter({
      name: 'datapath_forward_bytes_total',
      help: 'Bytes forwarded by the datapath, by endpoint and direction (the fwd array)',
      labelNames: ['endpoint', 'pod', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of src.datapath.counters())
          if (c.reason === 0)
            this.inc({ endpoint: c.lxcId, pod: pod(c.lxcId), direction: dirName(c.dir) }, Number(c.bytes));
      },
    });
    this.#verdicts = new Counter({
      name: 'datapath_policy_verdicts_total',
      help: 'Policy verdicts of new flows, by the endpoint and direction whose policy decided (event stream)',
      labelNames: ['endpoint', 'pod', 'direction', 'verdict', 'match'],
      registers,
    });
    this.#events = new Counter({
      name: 'datapath_events_total',
      help: 'Event records read from the events ring buffer, by type',
      labelNames: ['type'],
      registers,
    });
    new Counter({
      name: 'datapath_events_lost_total',
      help: 'Event records the events ring buffer had no room for (the events_lost map)',
      registers,
      collect() {
        this.reset();
        this.inc(Number(src.datapath.eventsLostTotal()));
      },
    });
    const fill = (name: string, help: string, value: (entries: number, max: number) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['map'],
        registers,
        collect() {
          for (const m of FILL_MAPS) {
            const map = src.datapath[m];
            this.set({ map: MAP_NAMES[m] }, value(map.count(), map.info().maxEntries));
          }
        },
      });
    fill('datapath_map_entries', 'Entries in each datapath map', (n) => n);
    fill('datapath_map_max_entries', 'Capacity (max_entries) of each datapath map', (_n, max) => max);
    fill('datapath_map_pressure', 'Fill of each datapath map: entries / max_entries', (n, max) => n / max);
    this.#podSetup = new Histogram({
      name: 'datapath_agent_pod_setup_seconds',
      help: 'Time to set up one pod (Agent.addPods: address, namespace, veth, attach, maps, policy)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#policyApply = new Histogram({
      name: 'datapath_agent_policy_apply_seconds',
      help: 'Time to apply a policy set (Agent.setPolicies: compile and map writes)',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#devicesGone = new Counter({
      name: 'datapath_agent_devices_removed_total',
      help: "Pods whose host-side veth went away behind the agent's back (their endpoints were removed)",
      labelNames: ['pod'],
      registers,
    });
    this.#stateDir = src.stateDir;
  }

  /** Counts a pod whose device went away. */
  deviceGone(pod: string): void {
    this.#devicesGone.inc({ pod });
  }

  /** Reads the latency journal lines written since the last call into the histograms. */
  #readJournal(): void {
    const r = readLatencies(this.#stateDir, this.#journal);
    this.#journal = r.offset;
    for (const s of r.samples)
      (s.kind === 'pod_setup' ? this.#podSetup : this.#policyApply).observe(s.seconds);
  }

  /** Counts one event of the stream (policy verdicts by endpoint, direction, verdict and match). */
  observeEvent(e: AgentEvent): void {
    this.#events.inc({ type: e.type });
    if (e.type === 'policy-verdict')
      this.#verdicts.inc({
        endpoint: e.endpoint.id,
        pod: e.endpoint.pod ?? '',
        direction: e.endpoint.direction,
        verdict: e.verdict ?? 'unknown',
        match: e.match ?? 'none',
      });
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    this.#readJournal();
    return this.registry.metrics();
  }

  /** Content type of {@link AgentMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
