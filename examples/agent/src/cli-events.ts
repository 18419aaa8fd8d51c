/**
 * The agent's observability commands: `monitor`, `observe`, `serve` and `config` (the trace knob).
 * Called by cli.ts with its parsed options.
 */
import type { Agent } from './agent.js';
import { Datapath } from './datapath.js';
import { AgentError } from './errors.js';
import { EVENT_TYPES, type EventKind, formatEvent } from './events.js';
import { parseFlowFilter, renderFlows } from './flows.js';
import { table } from './format.js';
import { monitor, observe } from './monitor.js';
import { Observer } from './serve.js';
import { type AgentState, loadState } from './state.js';
import type { DeviceGone } from './watch.js';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** The options these commands read. */
export interface EventValues {
  json?: boolean | undefined;
  type?: string[] | undefined;
  pod?: string | undefined;
  count?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  verdict?: string | undefined;
  port?: string[] | undefined;
  last?: string | undefined;
  flows?: string | undefined;
  'metrics-port'?: string | undefined;
}

/** Resolves when SIGINT or SIGTERM arrives (the handlers are removed when `signal` aborts). */
function untilSignal(ac: AbortController): void {
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  ac.signal.addEventListener('abort', () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  });
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new AgentError('InvalidArgument', `--${name} must be an integer ≥ 0, got ${v}`);
  return n;
}

/** `agent monitor [--type drop|policy-verdict|trace]… [--pod ns/name] [--json] [--count N]`. */
export async function cmdMonitor(stateDir: string, v: EventValues, io: Io): Promise<number> {
  const types = v.type ?? [];
  for (const t of types)
    if (!(EVENT_TYPES as readonly string[]).includes(t))
      throw new AgentError('InvalidArgument', `--type must be one of ${EVENT_TYPES.join(', ')}, got ${t}`);
  if (v.pod !== undefined && !v.pod.includes('/'))
    throw new AgentError('InvalidArgument', `--pod ns/name, got ${v.pod}`);
  const count = positiveInt('count', v.count);
  const state = loadState(stateDir);
  const ac = new AbortController();
  untilSignal(ac);
  let n = 0;
  try {
    await monitor({
      state,
      stateDir,
      filter: { types: types as EventKind[], ...(v.pod === undefined ? {} : { pod: v.pod }) },
      signal: ac.signal,
      onReady: (source) =>
        io.err(
          source === 'observer'
            ? `monitor: streaming from agent serve (${stateDir}/observer.sock); Ctrl-C to quit`
            : `monitor: reading the ring buffer ${state.pinDir}/events; Ctrl-C to quit`,
        ),
      onEvent: (e) => {
        io.out(v.json ? JSON.stringify(e) : formatEvent(e));
        return count === undefined || ++n < count;
      },
    });
  } finally {
    ac.abort();
  }
  return 0;
}

/** `agent observe [--from x] [--to y] [--verdict FORWARDED|DROPPED] [--port n] [--last N] [--json]`. */
export async function cmdObserve(stateDir: string, v: EventValues, io: Io): Promise<number> {
  const filter = parseFlowFilter({
    from: v.from,
    to: v.to,
    verdict: v.verdict,
    port: v.port?.[0],
    last: v.last,
  });
  const r = await observe(stateDir, filter);
  io.out(v.json ? JSON.stringify(r.flows, null, 2) : renderFlows(r.flows));
  return 0;
}

/**
 * The observer half of `agent serve [--metrics-port N] [--flows N]` (the resident agent's API is the other
 * half, api/commands.ts): started once the agent is up, closed when `serve` stops.
 */
export async function startObserver(
  stateDir: string,
  v: EventValues,
  io: Io,
  agent?: Agent,
): Promise<{ close(): Promise<void> }> {
  const port = positiveInt('metrics-port', v['metrics-port']);
  const flows = positiveInt('flows', v.flows);
  const obs = await Observer.start({
    stateDir,
    // The resident agent removes a pod whose device went away itself (its state stays the one truth).
    ...(agent === undefined
      ? {}
      : {
          onDeviceGone: (g: DeviceGone) => agent.removePodAsync(g.pod),
          state: () => agent.state as AgentState,
        }),
    ...(port === undefined ? {} : { metricsPort: port }),
    ...(flows === undefined ? {} : { flows }),
    log: (l) => io.err(`serve: ${l}`),
  });
  io.out(
    `serving unix:${obs.socketPath} (/metrics /flows /events)${obs.metricsPort === undefined ? '' : `, http://127.0.0.1:${obs.metricsPort}/metrics`}`,
  );
  return obs;
}

/** `agent config [trace-rate <N>]`: shows the datapath's run-time settings, or sets the trace sampling. */
export function cmdConfig(stateDir: string, args: readonly string[], v: EventValues, io: Io): number {
  const state = loadState(stateDir);
  using dp = Datapath.attachPinned(state.pinDir);
  if (args.length > 0) {
    if (args[0] !== 'trace-rate' || args[1] === undefined)
      throw new AgentError(
        'InvalidArgument',
        'config trace-rate <N> (0 = off, N = about one forwarded packet in N)',
      );
    const rate = args[1] === 'off' ? 0 : positiveInt('trace-rate', args[1])!;
    dp.traceRate = rate;
  }
  const data = {
    events: state.events === false ? 'compiled out' : 'on',
    traceRate: dp.traceRate,
    delivery: dp.delivery,
    policyRevision: dp.policyRevision(),
    eventsLost: dp.eventsLostTotal().toString(),
  };
  io.out(
    v.json
      ? JSON.stringify(data, null, 2)
      : table(
          ['KEY', 'VALUE'],
          [
            ['events', data.events],
            ['trace', data.traceRate === 0 ? 'off' : `1 in ${data.traceRate} forwarded packets`],
            ['local delivery', data.delivery],
            ['policy revision', String(data.policyRevision)],
            ['events lost', data.eventsLost],
          ],
        ),
  );
  return 0;
}
