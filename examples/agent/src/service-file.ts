/**
 * Service files for `agent service apply`: YAML or JSON holding one service, a list of them, several YAML
 * documents, or a scenario (its `services`), validated as the agent API validates a service body; and the
 * merge of applied services into the agent's own, checked as a whole before anything is sent or written.
 * Pure apart from reading the file.
 */
import { readFileSync } from 'node:fs';
import { isDatapathError } from '@datapath/errors';
import { parseAllDocuments } from 'yaml';
import { AgentError } from './errors.js';
import { checkPlan, lbInputs, parseServices, type ServiceSpec, serviceKey } from './services.js';

/**
 * The services of a service file's text: every YAML document (JSON is YAML) is a service, a list of
 * services, or an object with `services` (a scenario). Checked with the agent's own rules (schema, addresses,
 * duplicate names and ports, frontends two services of the file share).
 * @throws AgentError `InvalidScenario` naming every problem with its path.
 */
export function parseServiceFile(text: string, source = 'service file'): ServiceSpec[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const raw: unknown[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0)
      throw new AgentError('InvalidScenario', `${source}: not YAML or JSON: ${doc.errors[0]!.message}`);
    const v: unknown = doc.toJS({ maxAliasCount: 100 });
    if (v === null || v === undefined) continue;
    if (Array.isArray(v)) raw.push(...(v as unknown[]));
    else if (typeof v === 'object' && 'services' in v && !('ports' in v))
      raw.push(...(Array.isArray(v.services) ? (v.services as unknown[]) : [v.services]));
    else raw.push(v);
  }
  if (raw.length === 0) throw new AgentError('InvalidScenario', `${source}: no service in it`);
  try {
    return parseServices(raw, undefined);
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    throw new AgentError('InvalidScenario', `${source}: ${err.message}`, { cause: err });
  }
}

/**
 * Reads and checks a service file (see {@link parseServiceFile}).
 * @throws AgentError `NotFound` (unreadable), `InvalidScenario`.
 */
export function loadServices(path: string): ServiceSpec[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError('NotFound', `cannot read service file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseServiceFile(text, path);
}

/**
 * The agent's services with `applied` put in (a service of the same `ns/name` replaced in place, a new one
 * appended), planned as a whole so that a frontend of an applied service that another service already has is
 * refused before anything is written.
 * @throws AgentError `ServiceConflict` (a frontend or node port of another service), `InvalidScenario`.
 */
export function mergeServices(
  current: readonly ServiceSpec[],
  applied: readonly ServiceSpec[],
): { services: ServiceSpec[]; created: string[]; replaced: string[] } {
  const services = [...current];
  const created: string[] = [];
  const replaced: string[] = [];
  for (const s of applied) {
    const key = serviceKey(s);
    const i = services.findIndex((x) => serviceKey(x) === key);
    if (i < 0) {
      services.push(s);
      created.push(key);
    } else {
      services[i] = s;
      replaced.push(key);
    }
  }
  try {
    checkPlan(services.flatMap((s) => lbInputs(s, [], new Set(), '198.18.0.1')));
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (err instanceof AgentError && isDatapathError(cause) && cause.code === 'AlreadyExists')
      throw new AgentError('ServiceConflict', err.message, { cause });
    throw err;
  }
  return { services, created, replaced };
}
