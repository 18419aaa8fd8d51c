/**
 * A typed client of the agent's local API (see server.ts for the paths): kept-alive connections on the
 * agent's unix socket (transport.ts), every answer checked for its status; an error answer becomes an
 * {@link AgentApiError} with the agent's code and message.
 */
import { DatapathError, type ErrorCode, isErrorCode } from '@datapath/errors';
import type { PolicySync } from '../agent.js';
import type {
  ApiErrorBody,
  EndpointCreateRequest,
  EndpointInfo,
  ServiceInfo,
  ServiceRequest,
  StatusInfo,
} from './schema.js';
import { type TransportError, UnixHttpTransport } from './transport.js';

/** Where an agent named `name` serves its API by default. */
export function defaultSocketPath(name = 'demo'): string {
  return `/run/datapath-agent/${name}/api.sock`;
}

/** An error answer of the agent (`status` ≥ 400), or an agent that cannot be reached (`status` 0). */
export class AgentApiError extends DatapathError {
  /** Always `'AgentApiError'`. */
  override readonly name: string = 'AgentApiError';
  /** The HTTP status; 0 when the agent did not answer (code `Unavailable`). */
  readonly status: number;
  /** Validation problems the agent listed. */
  readonly issues: { path: string; message: string }[];

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    options: { reason?: string; issues?: { path: string; message: string }[]; cause?: unknown } = {},
  ) {
    super(code, message, { reason: options.reason, cause: options.cause });
    this.status = status;
    this.issues = options.issues ?? [];
  }
}

/** What a forwarded CNI invocation returned. */
export interface CniReply {
  exitCode: number;
  stdout: string;
  /** The confirmation to send after printing (ADD). */
  confirm?: string;
}

/** Options of {@link AgentClient}. */
export interface AgentClientOptions {
  /** The agent's socket; default {@link defaultSocketPath}(). */
  socketPath?: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

/** A client of one agent. `close()` ends its idle connections. */
export class AgentClient {
  readonly socketPath: string;
  readonly #timeoutMs: number;
  readonly #transport: UnixHttpTransport;

  constructor(options: AgentClientOptions = {}) {
    this.socketPath = options.socketPath ?? defaultSocketPath();
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#transport = new UnixHttpTransport(this.socketPath);
  }

  /** Ends its keep-alive connections (requests in flight fail). */
  close(): void {
    this.#transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * One raw request: method, path (with query), optional body and content type. Resolves with the status,
   * headers and body text whatever the status; rejects only when the agent cannot be reached.
   */
  raw(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/json',
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return this.#raw(method, path, body, contentType, true);
  }

  async #raw(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string,
    retry: boolean,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    try {
      return await this.#transport.request(method, path, body, contentType, this.#timeoutMs);
    } catch (err) {
      const e = err as TransportError;
      // A kept-alive connection the agent closed meanwhile (it restarted, or timed the connection out):
      // the request never reached it, so sending it once more on a new connection is safe.
      if (retry && e.reused && (e.code === 'ECONNRESET' || e.code === 'EPIPE'))
        return this.#raw(method, path, body, contentType, false);
      throw new AgentApiError(
        0,
        'Unavailable',
        `the agent at ${this.socketPath} is not reachable: ${e.message}`,
        { reason: e.code, cause: err },
      );
    }
  }

  async #call<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const r = await this.raw(method, path, text, contentType);
    let json: unknown;
    try {
      json = r.body === '' ? undefined : JSON.parse(r.body);
    } catch {
      throw new AgentApiError(
        r.status,
        'Protocol',
        `${method} ${path}: the agent answered non-JSON: ${r.body.slice(0, 200)}`,
      );
    }
    if (r.status >= 400) {
      const e = (json as ApiErrorBody | undefined)?.error;
      const code = e !== undefined && isErrorCode(e.code) ? e.code : 'Unknown';
      throw new AgentApiError(r.status, code, `${method} ${path}: ${e?.message ?? `status ${r.status}`}`, {
        ...(e?.reason === undefined ? {} : { reason: e.reason }),
        ...(e?.issues === undefined ? {} : { issues: e.issues }),
      });
    }
    return json as T;
  }

  /** `GET /v1/health`: whether the agent is ready (false when it answers 503). */
  async health(): Promise<boolean> {
    const r = await this.raw('GET', '/v1/health');
    return r.status === 200;
  }

  /** `GET /v1/status`. */
  status(): Promise<StatusInfo> {
    return this.#call('GET', '/v1/status');
  }

  /** `POST /v1/ipam/allocate`: an address for `owner`, released by the agent after `expiresInMs` unless confirmed. */
  allocate(
    owner: string,
    options: { family?: 4 | 6; expiresInMs?: number } = {},
  ): Promise<{
    ip: string;
    owner: string;
    expiresAt: number | null;
  }> {
    return this.#call('POST', '/v1/ipam/allocate', { owner, ...options });
  }

  /** `POST /v1/ipam/confirm`: stops the address's expiration. */
  confirm(ip: string): Promise<{ ip: string; owner: string }> {
    return this.#call('POST', '/v1/ipam/confirm', { ip });
  }

  /** `POST /v1/ipam/release`. */
  release(ip: string): Promise<{ ip: string; released: boolean }> {
    return this.#call('POST', '/v1/ipam/release', { ip });
  }

  /** `GET /v1/ipam`: IP → owner, and the leases still pending. */
  allocations(): Promise<{
    allocations: Record<string, string>;
    pending: Record<string, { owner: string; expiresAt: number }>;
  }> {
    return this.#call('GET', '/v1/ipam');
  }

  /** `POST /v1/endpoints`: wires a pod into an existing network namespace. */
  createEndpoint(spec: EndpointCreateRequest): Promise<EndpointInfo> {
    return this.#call('POST', '/v1/endpoints', spec);
  }

  /** `GET /v1/endpoints`. */
  endpoints(): Promise<EndpointInfo[]> {
    return this.#call('GET', '/v1/endpoints');
  }

  /** `GET /v1/endpoints/<id>`. */
  endpoint(id: number): Promise<EndpointInfo> {
    return this.#call('GET', `/v1/endpoints/${id}`);
  }

  /** `DELETE /v1/endpoints/<id>`. */
  deleteEndpoint(id: number): Promise<{ removed: boolean }> {
    return this.#call('DELETE', `/v1/endpoints/${id}`);
  }

  /** `DELETE /v1/endpoints?containerId=&ifname=`: idempotent. */
  deleteAttachment(containerId: string, ifname = 'eth0'): Promise<{ removed: boolean }> {
    const q = new URLSearchParams({ containerId, ifname });
    return this.#call('DELETE', `/v1/endpoints?${q}`);
  }

  /** `GET /v1/policies`. */
  policies(): Promise<{ policies: unknown[]; enforcement: string; revision: number }> {
    return this.#call('GET', '/v1/policies');
  }

  /** `PUT /v1/policies`: policy objects (JSON), or YAML/JSON policy documents as text. */
  applyPolicies(
    policies: readonly object[] | { yaml: string },
    enforcement?: 'default' | 'always' | 'never',
  ): Promise<PolicySync> {
    if ('yaml' in policies) return this.#call('PUT', '/v1/policies', policies.yaml, 'application/yaml');
    return this.#call('PUT', '/v1/policies', {
      policies,
      ...(enforcement === undefined ? {} : { enforcement }),
    });
  }

  /** `GET /v1/services`: every service with its frontends and backends. */
  services(): Promise<ServiceInfo[]> {
    return this.#call('GET', '/v1/services');
  }

  /** `GET /v1/services/<ns>/<name>`. */
  service(key: string): Promise<ServiceInfo> {
    return this.#call('GET', `/v1/services/${servicePath(key)}`);
  }

  /** `POST /v1/services`: creates a service (an existing one is a conflict, status 409). */
  createService(spec: ServiceRequest): Promise<ServiceInfo> {
    return this.#call('POST', '/v1/services', spec);
  }

  /** `PUT /v1/services/<ns>/<name>`: creates or replaces a service. */
  putService(spec: ServiceRequest): Promise<ServiceInfo> {
    return this.#call('PUT', `/v1/services/${servicePath(`${spec.namespace}/${spec.name}`)}`, spec);
  }

  /** `DELETE /v1/services/<ns>/<name>`. */
  deleteService(key: string): Promise<{ removed: boolean; service: string }> {
    return this.#call('DELETE', `/v1/services/${servicePath(key)}`);
  }

  /** `POST /v1/cni`: one CNI invocation (what datapath-cni's Node client sends). */
  async cni(env: Record<string, string>, stdin: string): Promise<CniReply> {
    const r = await this.raw('POST', '/v1/cni', JSON.stringify({ env, stdin }));
    const exit = r.headers['x-cni-exit'];
    if (r.status !== 200 || typeof exit !== 'string') {
      let msg = r.body;
      try {
        msg = (JSON.parse(r.body) as ApiErrorBody).error.message;
      } catch {
        // not an error body
      }
      throw new AgentApiError(r.status, 'Protocol', `POST /v1/cni: status ${r.status}: ${msg}`);
    }
    const confirm = r.headers['x-cni-confirm'];
    return { exitCode: Number(exit), stdout: r.body, ...(typeof confirm === 'string' ? { confirm } : {}) };
  }
}

/** `ns/name` as a path (each part escaped). */
function servicePath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
