/**
 * The agent's local API: JSON over HTTP/1.1 on a unix socket the agent owns
 * (`/run/datapath-agent/<name>/api.sock`: directory 0700, socket 0600, and every connection's peer
 * credentials checked with SO_PEERCRED, uid 0 only by default). Paths are versioned (`/v1/...`), bodies are
 * size-limited and validated (unknown fields refused), slow clients time out. Every change goes through one
 * queue, so concurrent requests see the agent one operation at a time.
 *
 *   GET    /v1/health                     200 {status:"ok"} | 503
 *   GET    /v1/status                     the agent, its IPAM and policy in numbers
 *   POST   /v1/ipam/allocate              {owner, family?, expiresInMs?} → 201 {ip, owner, expiresAt}
 *   POST   /v1/ipam/confirm               {ip} → 200 {ip, owner} (stops the expiration)
 *   POST   /v1/ipam/release               {ip} → 200 {ip, released}
 *   GET    /v1/ipam                       {allocations, pending}
 *   POST   /v1/endpoints                  {containerId, netns, ifname?, podNamespace, podName, labels?, ip?, ip6?, families?} → 201
 *   GET    /v1/endpoints                  [endpoint]
 *   GET    /v1/endpoints/<id>             endpoint
 *   DELETE /v1/endpoints/<id>             200 {removed}
 *   DELETE /v1/endpoints?containerId=&ifname=   idempotent removal of an attachment
 *   GET    /v1/policies                   {policies, enforcement, revision}
 *   PUT    /v1/policies                   JSON {policies, enforcement?} or YAML/JSON policy documents
 *   POST   /v1/cni                        one CNI invocation {env, stdin} (see cni.ts)
 *   GET    /v1/services                   [service]: spec, frontends, backends
 *   POST   /v1/services                   {namespace, name, type?, clusterIP(s), ports, selector?, backends?, …} → 201 (409 if it exists)
 *   GET    /v1/services/<ns>/<name>       service
 *   PUT    /v1/services/<ns>/<name>       create or replace → 201 | 200
 *   DELETE /v1/services/<ns>/<name>       200 {removed}
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { isDatapathError } from '@datapath/errors';
import { type PolicyObject, parsePolicies } from '@datapath/policy';
import type * as z from 'zod';
import type { Agent } from '../agent.js';
import { AgentError } from '../errors.js';
import { policyFailure } from '../policy.js';
import { parseServices, type ServiceSpec, serviceKey } from '../services.js';
import type { PodRecord } from '../state.js';
import { peerCredentials } from '../sys/peercred.js';
import { type CniAnswer, handleCni } from './cni.js';
import {
  AddressRequest,
  AllocateRequest,
  API_PREFIX,
  type ApiErrorBody,
  CniRequest,
  EndpointCreateRequest,
  type EndpointInfo,
  PolicyApplyRequest,
  type ServiceInfo,
  ServiceRequest,
  type StatusInfo,
} from './schema.js';

/** Options of {@link ApiServer.listen}. */
export interface ApiServerOptions {
  /** The socket path; default `<stateDir>/api.sock`. */
  socketPath?: string;
  /** Largest accepted request body in bytes; default 1 MiB. */
  maxBodyBytes?: number;
  /** Time a client has to send the request headers; default 5 s. */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request; default 10 s. */
  requestTimeoutMs?: number;
  /** Peer uids allowed in; default `[0]` (root only). */
  allowedUids?: readonly number[];
  /**
   * How long an address handed out by a CNI ADD stays unconfirmed before the agent removes the pod again
   * (the plugin confirms it right after printing the result); default 30 s.
   */
  cniLeaseMs?: number;
}

/** An API failure: the HTTP status and the error body. */
class HttpError extends Error {
  readonly status: number;
  readonly body: ApiErrorBody;
  constructor(status: number, code: string, message: string, extra: Partial<ApiErrorBody['error']> = {}) {
    super(message);
    this.status = status;
    this.body = { error: { code, message, ...extra } };
  }
}

const STATUS_OF: Record<string, number> = {
  InvalidArgument: 400,
  NotFound: 404,
  AlreadyExists: 409,
  InvalidState: 409,
  Busy: 409,
  NotSupported: 422,
  PermissionDenied: 403,
  Exhausted: 503,
  TryAgain: 503,
};

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (isDatapathError(err)) {
    return new HttpError(STATUS_OF[err.code] ?? 500, err.code, err.message, {
      ...(err.reason === undefined ? {} : { reason: err.reason }),
    });
  }
  return new HttpError(500, 'Unknown', `internal error: ${(err as Error)?.message ?? String(err)}`);
}

/** The endpoint view of a pod record. */
export function endpointInfo(p: PodRecord): EndpointInfo {
  return {
    id: p.lxcId,
    pod: p.key,
    namespace: p.ns,
    name: p.name,
    ip: p.ip,
    ...(p.ip6 === undefined ? {} : { ip6: p.ip6 }),
    identity: p.identity,
    labels: p.labels,
    hostIfname: p.hostIfname,
    mac: p.mac,
    attach: p.attach,
    source: p.attachment ? 'cni' : 'scenario',
    ...(p.attachment ? { containerId: p.attachment.containerId, ifname: p.attachment.ifname } : {}),
    netns: p.attachment?.netnsPath ?? `/run/netns/${p.netns}`,
  };
}

function parseBody<T extends z.ZodType>(schema: T, raw: unknown): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({
    path: i.path.map(String).join('.') || '(body)',
    message:
      i.code === 'unrecognized_keys'
        ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`
        : i.message,
  }));
  const unknown = r.error.issues.some((i) => i.code === 'unrecognized_keys');
  throw new HttpError(
    400,
    'InvalidArgument',
    `invalid request body: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    { reason: unknown ? 'UnknownField' : 'InvalidBody', issues },
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'InvalidArgument', `malformed JSON: ${(err as Error).message}`, {
      reason: 'MalformedJson',
    });
  }
}

type Handler = (req: IncomingMessage, body: string, query: URLSearchParams) => Promise<Answer> | Answer;
type Routes = Record<string, Handler>;

const NO_QUERY = new URLSearchParams();
/**
 * A request target made of plain path characters (no percent-encoding, dot segment, backslash or fragment) and
 * an optional query, not starting with `//`: split as it is, which is what the URL parser would make of it.
 * Anything else (e.g. a service name with dots, an absolute-form target) goes through `new URL`.
 */
const PLAIN_TARGET = /^\/(?!\/)[A-Za-z0-9_/-]*(?:\?[^#]*)?$/;

/** @internal The path and query of a request target, as `new URL(target, base)` gives them. */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  if (PLAIN_TARGET.test(target)) {
    const q = target.indexOf('?');
    if (q < 0) return { path: target, query: NO_QUERY };
    return { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
  }
  const url = new URL(target, 'http://agent');
  return { path: url.pathname, query: url.searchParams };
}
interface Answer {
  status?: number;
  json?: unknown;
  /** A non-JSON body (the CNI answer) with its headers. */
  raw?: { text: string; headers: Record<string, string> };
}

/** A running API server; `close()` stops it and removes the socket. */
export class ApiServer {
  readonly socketPath: string;
  readonly #agent: Agent;
  readonly #server: Server;
  readonly #o: Required<Omit<ApiServerOptions, 'socketPath'>>;
  readonly #peers = new WeakMap<Socket, { uid: number; pid: number } | Error>();
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The fixed paths under the API prefix, by method (made once: a request only looks its handler up). */
  readonly #routes: Record<string, Routes>;
  /** Requests answered, by status class, for status output and tests. */
  readonly counts = { ok: 0, clientError: 0, serverError: 0, refusedPeers: 0 };

  private constructor(agent: Agent, socketPath: string, o: ApiServerOptions) {
    this.#agent = agent;
    this.socketPath = socketPath;
    this.#o = {
      maxBodyBytes: o.maxBodyBytes ?? 1 << 20,
      headersTimeoutMs: o.headersTimeoutMs ?? 5_000,
      requestTimeoutMs: o.requestTimeoutMs ?? 10_000,
      allowedUids: o.allowedUids ?? [0],
      cniLeaseMs: o.cniLeaseMs ?? 30_000,
    };
    this.#routes = this.#routeTable();
    this.#server = createServer(
      {
        maxHeaderSize: 16 * 1024,
        headersTimeout: this.#o.headersTimeoutMs,
        requestTimeout: this.#o.requestTimeoutMs,
        keepAliveTimeout: 5_000,
      },
      (req, res) => void this.#handle(req, res),
    );
    this.#server.on('connection', (socket: Socket) => {
      try {
        const cred = peerCredentials(socket);
        this.#peers.set(socket, cred);
      } catch (err) {
        this.#peers.set(socket, err as Error);
      }
    });
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      this.counts.clientError++;
      if (socket.writable) {
        const status =
          err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
        const body = JSON.stringify({
          error: { code: 'InvalidArgument', message: `bad HTTP request: ${err.message}` },
        });
        socket.end(
          `HTTP/1.1 ${status} Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    });
  }

  /**
   * Serves the API of `agent` on its unix socket: the directory is made 0700, a stale socket (nobody
   * answering) is replaced, the socket is made 0600.
   * @throws AgentError `AlreadyRunning` when another process answers on the socket; `DatapathFailed` for a
   * listen failure.
   */
  static async listen(agent: Agent, options: ApiServerOptions = {}): Promise<ApiServer> {
    const socketPath = options.socketPath ?? `${agent.options.stateDir}/api.sock`;
    const dir = dirname(socketPath);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    if (existsSync(socketPath)) {
      if (!lstatSync(socketPath).isSocket())
        throw new AgentError('InvalidArgument', `${socketPath} exists and is not a socket`);
      if (await answers(socketPath))
        throw new AgentError('AlreadyRunning', `an agent already serves ${socketPath}`);
      unlinkSync(socketPath);
    }
    const s = new ApiServer(agent, socketPath, options);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', (err) =>
        reject(new AgentError('DatapathFailed', `listen on ${socketPath}: ${err.message}`, { cause: err })),
      );
      s.#server.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o600);
    return s;
  }

  /** Stops accepting, ends open connections and removes the socket file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Runs `fn` after every change queued before it (one agent operation at a time). */
  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let answer: Answer;
    try {
      const peer = this.#peers.get(req.socket);
      if (peer === undefined || peer instanceof Error || !this.#o.allowedUids.includes(peer.uid)) {
        this.counts.refusedPeers++;
        res.shouldKeepAlive = false;
        throw new HttpError(
          403,
          'PermissionDenied',
          peer === undefined || peer instanceof Error
            ? `peer credentials unavailable: ${peer?.message ?? 'no credentials'}`
            : `uid ${peer.uid} may not use the agent API (allowed: ${this.#o.allowedUids.join(', ')})`,
        );
      }
      const { path, query } = splitTarget(req.url ?? '/');
      const handler = this.#route(req.method ?? 'GET', path);
      // No Content-Length and no Transfer-Encoding: no body (RFC 9112 6.3), nothing to wait for.
      const h = req.headers;
      const body =
        h['content-length'] === undefined && h['transfer-encoding'] === undefined
          ? ''
          : await this.#readBody(req);
      answer = await handler(req, body, query);
    } catch (err) {
      const e = toHttpError(err);
      if (e.status === 413 || e.status === 403) res.shouldKeepAlive = false;
      if (e.status >= 500) this.counts.serverError++;
      else this.counts.clientError++;
      send(res, e.status, e.body);
      return;
    }
    this.counts.ok++;
    if (answer.raw !== undefined) {
      const headers: string[] = [];
      for (const [k, v] of Object.entries(answer.raw.headers)) headers.push(k, v);
      headers.push('Content-Length', String(Buffer.byteLength(answer.raw.text)));
      res.writeHead(answer.status ?? 200, headers);
      res.end(answer.raw.text);
    } else send(res, answer.status ?? 200, answer.json ?? {});
  }

  #readBody(req: IncomingMessage): Promise<string> {
    const max = this.#o.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      return Promise.reject(
        new HttpError(413, 'TooBig', `request body of ${declared} bytes: at most ${max} are accepted`),
      );
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(new HttpError(413, 'TooBig', `request body over ${max} bytes`));
          req.pause();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () =>
        resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')),
      );
      req.on('error', reject);
    });
  }

  #route(method: string, path: string): Handler {
    if (!path.startsWith(`${API_PREFIX}/`)) {
      throw new HttpError(404, 'NotFound', `no such path ${path}: the API lives under ${API_PREFIX}/`);
    }
    const rest = path.slice(API_PREFIX.length);
    const table = Object.hasOwn(this.#routes, rest) ? this.#routes[rest] : this.#dynamicRoutes(rest);
    if (table === undefined) throw new HttpError(404, 'NotFound', `no such path ${path}`);
    const h = Object.hasOwn(table, method) ? table[method] : undefined;
    if (h === undefined)
      throw new HttpError(
        405,
        'InvalidArgument',
        `${method} ${path}: allowed ${Object.keys(table).join(', ')}`,
        {
          reason: 'MethodNotAllowed',
        },
      );
    return h;
  }

  /** The handlers of the fixed paths (under {@link API_PREFIX}), by path and method. */
  #routeTable(): Record<string, Routes> {
    return {
      '/health': { GET: () => this.#health() },
      '/status': { GET: () => ({ json: this.#status() }) },
      '/ipam': {
        GET: () => ({
          json: { allocations: this.#agent.pool.allocations(), pending: this.#agent.pendingLeases() },
        }),
      },
      '/ipam/allocate': {
        POST: (req, body) => {
          const b = parseBody(AllocateRequest, this.#json(req, body));
          return this.#serial(() => {
            const r = this.#agent.allocateIp(b.owner, {
              ...(b.family === undefined ? {} : { family: b.family }),
              ...(b.expiresInMs === undefined ? {} : { expiresInMs: b.expiresInMs }),
            });
            return { status: 201, json: { ip: r.ip, owner: b.owner, expiresAt: r.expiresAt ?? null } };
          });
        },
      },
      '/ipam/confirm': {
        POST: (req, body) => {
          const b = parseBody(AddressRequest, this.#json(req, body));
          return this.#serial(() => ({ json: this.#agent.confirmIp(b.ip) }));
        },
      },
      '/ipam/release': {
        POST: (req, body) => {
          const b = parseBody(AddressRequest, this.#json(req, body));
          return this.#serial(() => ({ json: { ip: b.ip, released: this.#agent.releaseIp(b.ip) } }));
        },
      },
      '/endpoints': {
        GET: () => ({ json: this.#agent.pods().map(endpointInfo) }),
        POST: (req, body) => {
          const b = parseBody(EndpointCreateRequest, this.#json(req, body));
          return this.#serial(async () => {
            const rec = await this.#agent.addAttachedPodAsync({
              namespace: b.podNamespace,
              name: b.podName,
              labels: b.labels ?? {},
              ...(b.ip === undefined ? {} : { ip: b.ip }),
              ...(b.ip6 === undefined ? {} : { ip6: b.ip6 }),
              ...(b.families === undefined ? {} : { families: b.families }),
              attachment: { containerId: b.containerId, ifname: b.ifname, netnsPath: b.netns },
            });
            return { status: 201, json: endpointInfo(rec) };
          });
        },
        DELETE: (_req, body, query) => {
          noBody(body);
          const containerId = query.get('containerId');
          const ifname = query.get('ifname') ?? 'eth0';
          if (containerId === null || containerId === '')
            throw new HttpError(
              400,
              'InvalidArgument',
              'DELETE /v1/endpoints needs ?containerId=…[&ifname=…]',
            );
          return this.#serial(async () => ({
            json: { removed: await this.#agent.removeAttachmentAsync(containerId, ifname) },
          }));
        },
      },
      '/policies': {
        GET: () => ({
          json: {
            policies: this.#agent.state.policies,
            enforcement: this.#agent.state.enforcement,
            revision: this.#agent.datapath.policyRevision(),
          },
        }),
        PUT: (req, body) => {
          const { policies, enforcement } = this.#policies(req, body);
          return this.#serial(() => ({ json: this.#agent.setPolicies(policies, enforcement) }));
        },
      },
      '/services': {
        GET: () => ({ json: this.#services() }),
        POST: (req, body) => {
          const spec = this.#serviceBody(req, body);
          return this.#serial(async () => {
            await this.#agent.upsertService(spec, { mustBeNew: true });
            return { status: 201, json: this.#service(serviceKey(spec)) };
          });
        },
      },
      '/cni/confirm': {
        POST: (_req, body, query) => {
          noBody(body);
          const ip = query.get('ip') ?? '';
          const owner = query.get('owner') ?? '';
          // Not queued: a confirmation only clears a lease, and must not wait behind other ADDs past it.
          return { json: this.#agent.confirmIp(ip, owner) };
        },
      },
      '/cni': {
        POST: async (req, body) => {
          const b = parseBody(CniRequest, this.#json(req, body));
          const a: CniAnswer = await this.#serial(() =>
            handleCni(this.#agent, b, { leaseMs: this.#o.cniLeaseMs }),
          );
          const headers: Record<string, string> = {
            'Content-Type': 'application/json',
            'X-Cni-Exit': String(a.exitCode),
          };
          if (a.confirm !== undefined) headers['X-Cni-Confirm'] = a.confirm;
          return { raw: { text: a.stdout, headers } };
        },
      },
    };
  }

  /** The handlers of `/endpoints/<id>` and `/services/<ns>/<name>`, or undefined for any other path. */
  #dynamicRoutes(rest: string): Routes | undefined {
    const svc = /^\/services\/([^/]{1,253})\/([^/]{1,63})$/.exec(rest);
    if (svc) return this.#serviceRoutes(decodeURIComponent(svc[1]!), decodeURIComponent(svc[2]!));
    const id = /^\/endpoints\/(\d{1,9})$/.exec(rest);
    if (id === null) return undefined;
    return {
      GET: () => ({ json: endpointInfo(this.#pod(Number(id[1]))) }),
      DELETE: (_r, body) => {
        noBody(body);
        return this.#serial(async () => {
          const pod = this.#pod(Number(id[1]));
          await this.#agent.removePodAsync(pod.key);
          return { json: { removed: true, id: pod.lxcId, pod: pod.key } };
        });
      },
    };
  }

  /** GET, PUT and DELETE of `/v1/services/<ns>/<name>`. */
  #serviceRoutes(namespace: string, name: string): Routes {
    const key = `${namespace}/${name}`;
    return {
      GET: () => ({ json: this.#service(key) }),
      PUT: (req, body) => {
        const spec = this.#serviceBody(req, body);
        if (spec.namespace !== namespace || spec.name !== name)
          throw new HttpError(
            400,
            'InvalidArgument',
            `the body names service ${serviceKey(spec)}, the path ${key}`,
            { reason: 'InvalidBody' },
          );
        return this.#serial(async () => {
          const { created } = await this.#agent.upsertService(spec);
          return { status: created ? 201 : 200, json: this.#service(key) };
        });
      },
      DELETE: (_req, body) => {
        noBody(body);
        return this.#serial(async () => {
          await this.#agent.deleteService(key);
          return { json: { removed: true, service: key } };
        });
      },
    };
  }

  /** A service request body: the schema (400 with every issue), then the agent's own checks (addresses, ports). */
  #serviceBody(req: IncomingMessage, body: string): ServiceSpec {
    const b = parseBody(ServiceRequest, this.#json(req, body));
    return parseServices([b], undefined)[0]!;
  }

  #services(): ServiceInfo[] {
    const specs = new Map(this.#agent.services().map((s) => [serviceKey(s), s]));
    return this.#agent.serviceViews().map((v) => ({ ...v, spec: specs.get(v.service)! }));
  }

  #service(key: string): ServiceInfo {
    const s = this.#services().find((x) => x.service === key);
    if (s === undefined) throw new HttpError(404, 'NotFound', `no service ${key}`);
    return s;
  }

  #pod(id: number): PodRecord {
    const pod = this.#agent.pods().find((p) => p.lxcId === id);
    if (pod === undefined) throw new HttpError(404, 'NotFound', `no endpoint ${id}`);
    return pod;
  }

  #json(req: IncomingMessage, body: string): unknown {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json')
      throw new HttpError(
        415,
        'InvalidArgument',
        `Content-Type must be application/json, got ${type || 'none'}`,
      );
    return parseJson(body);
  }

  #policies(req: IncomingMessage, body: string): { policies: PolicyObject[]; enforcement?: string } {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json') {
      const b = parseBody(PolicyApplyRequest, parseJson(body));
      return {
        policies: b.policies as unknown as PolicyObject[],
        ...(b.enforcement === undefined ? {} : { enforcement: b.enforcement }),
      };
    }
    if (type === 'application/yaml' || type === 'application/x-yaml' || type === 'text/yaml') {
      try {
        return { policies: parsePolicies(body) };
      } catch (err) {
        throw policyFailure(err, 'request body');
      }
    }
    throw new HttpError(
      415,
      'InvalidArgument',
      `PUT /v1/policies: Content-Type application/json or application/yaml, got ${type || 'none'}`,
    );
  }

  #health(): Answer {
    let ready = true;
    try {
      this.#agent.datapath.policyRevision();
    } catch {
      ready = false;
    }
    return ready ? { json: { status: 'ok' } } : { status: 503, json: { status: 'not ready' } };
  }

  #status(): StatusInfo {
    const s = this.#agent.state;
    return {
      name: s.name,
      startedAt: s.startedAt,
      podCidr: s.podCidr,
      ...(s.podCidr6 === undefined ? {} : { podCidr6: s.podCidr6 }),
      hostIp: s.hostIp,
      nodeNetns: s.nodeNetns,
      enforcement: s.enforcement,
      endpoints: Object.keys(s.pods).length,
      policies: s.policies.length,
      policyRevision: this.#agent.datapath.policyRevision(),
      allocated: Object.keys(this.#agent.pool.allocations()).length,
      pendingLeases: Object.keys(this.#agent.pendingLeases()).length,
      ipam: this.#agent.pool.status(),
    };
  }
}

function noBody(body: string): void {
  if (body !== '') throw new HttpError(400, 'InvalidArgument', 'this request takes no body');
}

function send(res: ServerResponse, status: number, json: unknown): void {
  const text = JSON.stringify(json);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Headers as a flat list (no header object to copy); writeHead + end(body): one write of headers and body.
  res.writeHead(status, [
    'Content-Type',
    'application/json',
    'Content-Length',
    String(Buffer.byteLength(text)),
  ]);
  res.end(text);
}

/** Whether something accepts connections on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
