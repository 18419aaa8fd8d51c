/**
 * The CLI commands that talk to a resident agent: `serve` itself, and `endpoint list`, `policy apply`,
 * `pod del`, `service list|apply|delete` and `status --api`, which go through the API whenever an agent serves on
 * the socket (two processes must never change the same agent's state).
 */

import type { Agent, AgentOptions } from '../agent.js';
import { AgentError } from '../errors.js';
import { table } from '../format.js';
import { loadPolicies, loadScenario } from '../policy.js';
import { loadServices, mergeServices } from '../service-file.js';
import { type ServiceSpec, type ServiceView, serviceKey } from '../services.js';
import { type AgentClient, defaultSocketPath } from './client.js';
import { residentClient, startResident } from './serve.js';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

interface ApiValues {
  name?: string | undefined;
  json?: boolean | undefined;
  socket?: string | undefined;
  'state-dir'?: string | undefined;
  'lease-ms'?: string | undefined;
}

const socketOf = (v: ApiValues) =>
  v.socket ??
  (v['state-dir'] === undefined ? defaultSocketPath(v.name ?? 'demo') : `${v['state-dir']}/api.sock`);

const out = (io: Io, json: boolean | undefined, data: unknown, text: () => string) =>
  io.out(json ? JSON.stringify(data, null, 2) : text());

/**
 * `agent serve [scenario]`: the resident agent with its API, and whatever `alongside` starts once it is up
 * (the observer: ring buffer, metrics, flows); runs until SIGINT or SIGTERM.
 */
export async function cmdServe(
  scenarioFile: string | undefined,
  options: AgentOptions,
  v: ApiValues,
  io: Io,
  alongside?: (stateDir: string, agent: Agent) => Promise<{ close(): Promise<void> }>,
): Promise<number> {
  const leaseMs = v['lease-ms'] === undefined ? undefined : Number(v['lease-ms']);
  if (leaseMs !== undefined && !(Number.isInteger(leaseMs) && leaseMs > 0))
    throw new AgentError('InvalidArgument', `--lease-ms must be a positive integer, got ${v['lease-ms']}`);
  const scenario = scenarioFile === undefined ? undefined : loadScenario(scenarioFile);
  const r = await startResident(options, scenario, {
    socketPath: socketOf(v),
    ...(leaseMs === undefined ? {} : { cniLeaseMs: leaseMs }),
  });
  io.err(`agent: ${r.agent.state.name} serves ${r.server.socketPath} (${r.agent.pods().length} pods)`);
  let extra: { close(): Promise<void> } | undefined;
  try {
    extra = await alongside?.(r.agent.options.stateDir, r.agent);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  } finally {
    await extra?.close();
    await r.close();
  }
  io.err('agent: stopped serving; pods, maps and state stay (`agent down` removes them)');
  return 0;
}

/**
 * Runs the command through the API when an agent serves and the command is one the API covers; undefined
 * otherwise (the command then runs on the state files).
 */
export async function viaApi(p: readonly string[], v: ApiValues, io: Io): Promise<number | undefined> {
  const [cmd, sub, arg] = p;
  const covered =
    (cmd === 'endpoint' && sub === 'list') ||
    (cmd === 'policy' && sub === 'apply') ||
    (cmd === 'pod' && sub === 'del') ||
    (cmd === 'service' && (sub === 'list' || sub === 'apply' || sub === 'delete'));
  if (!covered) return undefined;
  const client = await residentClient(socketOf(v));
  if (client === undefined) return undefined;
  try {
    if (cmd === 'endpoint') {
      const eps = await client.endpoints();
      out(io, v.json, eps, () =>
        table(
          ['ENDPOINT', 'POD', 'IP', 'IDENTITY', 'VETH', 'SOURCE', 'LABELS'],
          eps.map((e) => [
            String(e.id),
            e.pod,
            e.ip,
            String(e.identity),
            e.hostIfname,
            e.source === 'cni' ? `cni ${e.containerId}/${e.ifname}` : 'scenario',
            Object.entries(e.labels)
              .map(([k, x]) => `${k}=${x}`)
              .join(','),
          ]),
        ),
      );
      return 0;
    }
    if (cmd === 'service' && sub === 'apply') return await applyServicesApi(client, arg, v, io);
    if (cmd === 'service' && sub === 'delete') return await deleteServiceApi(client, arg, v, io);
    if (cmd === 'service') {
      const views = await client.services();
      out(io, v.json, views, () => serviceTable(views));
      return 0;
    }
    if (cmd === 'policy') {
      if (arg === undefined) throw new AgentError('InvalidArgument', 'policy apply <file.yaml|json>');
      const sync = await client.applyPolicies(loadPolicies(arg));
      out(
        io,
        v.json,
        sync,
        () => `policy applied through the agent API: ${sync.writes} writes, revision ${sync.revision}`,
      );
      return 0;
    }
    const eps = await client.endpoints();
    const ep = eps.find((e) => e.pod === arg);
    if (ep === undefined) throw new AgentError('NotFound', `no pod ${arg ?? '(none)'}`);
    await client.deleteEndpoint(ep.id);
    out(io, v.json, { removed: arg }, () => `pod ${arg} removed (through the agent API)`);
    return 0;
  } finally {
    client.close();
  }
}

/**
 * `agent service apply <file>` through the API: the file's services checked with the agent's (a frontend
 * another service has is refused before any request), then one `PUT /v1/services/<ns>/<name>` each.
 */
async function applyServicesApi(
  client: AgentClient,
  file: string | undefined,
  v: ApiValues,
  io: Io,
): Promise<number> {
  if (file === undefined) throw new AgentError('InvalidArgument', 'service apply <file.yaml|json>');
  const applied = loadServices(file);
  const current = (await client.services()).map((s) => s.spec);
  const plan = mergeServices(current, applied);
  const infos = [];
  for (const s of applied) infos.push(await client.putService(s));
  printApplied(io, v.json, plan, infos, 'through the agent API');
  return 0;
}

/** What `agent service apply` prints: one line per service applied. */
export function printApplied(
  io: Io,
  json: boolean | undefined,
  plan: { created: readonly string[] },
  views: readonly ServiceView[],
  how: string,
): void {
  const rows = views.map((s) => ({
    service: s.service,
    action: plan.created.includes(s.service) ? 'created' : 'replaced',
    frontends: s.frontends,
    backends: s.backends.length,
  }));
  out(io, json, rows, () =>
    [
      table(
        ['SERVICE', 'ACTION', 'FRONTENDS', 'BACKENDS'],
        rows.map((r) => [r.service, r.action, r.frontends.join(','), String(r.backends)]),
      ),
      `${rows.length} service(s) applied ${how}`,
    ].join('\n'),
  );
}

/**
 * The `ns/name` of `agent service delete <ns/name|name>`: a bare name must name exactly one service.
 * @throws AgentError `InvalidArgument` (none given, or a bare name several namespaces have), `NotFound`.
 */
export function serviceToDelete(arg: string | undefined, services: readonly ServiceSpec[]): string {
  if (arg === undefined || arg === '') throw new AgentError('InvalidArgument', 'service delete <ns/name>');
  const keys = services.map(serviceKey);
  if (arg.includes('/')) {
    if (!keys.includes(arg)) throw new AgentError('NotFound', `no service ${arg}`);
    return arg;
  }
  const hits = keys.filter((k) => k.endsWith(`/${arg}`));
  if (hits.length === 0) throw new AgentError('NotFound', `no service ${arg}`);
  if (hits.length > 1)
    throw new AgentError('InvalidArgument', `service ${arg} is in several namespaces: ${hits.join(', ')}`);
  return hits[0]!;
}

async function deleteServiceApi(
  client: AgentClient,
  arg: string | undefined,
  v: ApiValues,
  io: Io,
): Promise<number> {
  const key = serviceToDelete(
    arg,
    (await client.services()).map((s) => s.spec),
  );
  const r = await client.deleteService(key);
  out(io, v.json, r, () => `service ${key} deleted (through the agent API)`);
  return 0;
}

/** `agent service list`'s table: one line per backend of each service port. */
export function serviceTable(views: readonly ServiceView[]): string {
  return table(
    ['SERVICE', 'TYPE', 'FRONTEND', 'PORT', 'BACKEND', 'POD', 'NODE', 'STATE'],
    views.flatMap((s) => {
      const rows = s.ports.map((p) => {
        const bs = s.backends.filter((b) => b.servicePort === p.port && b.protocol === p.protocol);
        return [
          s.service,
          s.type,
          s.frontends.join(','),
          `${p.port}/${p.protocol}${p.nodePort === undefined ? '' : ` (node ${p.nodePort})`}`,
          bs.length === 0 ? '(none)' : bs.map((b) => `${b.address}:${b.port}`).join('\n'),
          bs.map((b) => b.pod || '(address)').join('\n'),
          bs.map((b) => b.node ?? 'local').join('\n'),
          bs.map((b) => b.state).join('\n'),
        ];
      });
      // one line per backend
      return rows.flatMap((r) => {
        const cols = r.map((c) => c.split('\n'));
        const n = Math.max(...cols.map((c) => c.length));
        return Array.from({ length: n }, (_, i) =>
          cols.map((c, j) => (i === 0 || j >= 4 ? (c[i] ?? '') : '')),
        );
      });
    }),
  );
}
