/**
 * Listeners and probers inside network namespaces, in this process: Node's own sockets created inside
 * a pod's (or the node's, or the world's) namespace through `@datapath/netlink`'s `Netns.createServer`,
 * `Netns.connect` and `Netns.createSocket`. No child process, no `nsenter`; the agent's own thread never
 * leaves its namespace. (It replaced an `nsenter` + Node worker per probe batch.)
 */
import { Handle, Netns } from '@datapath/netlink';

type Socket = ReturnType<Netns['connect']>;

import { AgentError } from '../errors.js';

/** A transport protocol a listener or a probe can use on this kernel. */
export type SocketProtocol = 'TCP' | 'UDP';

/** One probe to send from inside a namespace. */
export interface ProbeRequest {
  id: number;
  host: string;
  port: number;
  protocol: SocketProtocol;
  timeoutMs: number;
  localAddress?: string;
}

/** What happened to one probe. */
export interface ProbeOutcome {
  id: number;
  result: 'connected' | 'refused' | 'timeout' | 'error';
  reply?: string;
  message?: string;
  ms: number;
}

/** A running listener; `close()` stops every socket it opened. */
export interface Listener {
  close(): Promise<void>;
}

/** Closable things a listener keeps. */
interface Closable {
  close(cb?: () => void): unknown;
}

/** Every IPv4 address configured inside the namespace. */
async function localIpv4Addresses(ns: Netns): Promise<string[]> {
  using h = Handle.open(ns);
  const addrs = await h.addrDumpAsync(2);
  return [...new Set(addrs.map((a) => a.local ?? a.address).filter((a): a is string => a !== undefined))];
}

/**
 * Node runs expired timers before it polls for I/O: on a starved CPU an answer that arrived in time
 * would lose against its own timeout. Polling once more (setImmediate runs after the poll phase)
 * lets it win.
 */
function lateTimeout(fn: () => void): void {
  setImmediate(fn);
}

/**
 * Starts every planned listener at once. Those that started are added to `started` (for the caller to close)
 * even when another failed; then the first failure is thrown.
 * @throws AgentError `ListenerFailed` (see {@link startListener}).
 */
export async function startListeners(
  plans: readonly { netnsPath: string; label: string; ports: { port: number; protocol: SocketProtocol }[] }[],
  started: Listener[],
): Promise<void> {
  const all = await Promise.allSettled(
    plans.map((plan) => startListener(plan.netnsPath, plan.label, plan.ports)),
  );
  for (const s of all) if (s.status === 'fulfilled') started.push(s.value);
  for (const s of all) if (s.status === 'rejected') throw s.reason;
}

/**
 * Starts a listener inside the namespace at `netnsPath` answering on every port with `label` (TCP sends
 * the label on each connection and then echoes what it receives; UDP answers every datagram with the
 * label); resolves once every socket is bound.
 * @throws AgentError `ListenerFailed` when the namespace cannot be opened or a port cannot be bound.
 */
export async function startListener(
  netnsPath: string,
  label: string,
  ports: readonly { port: number; protocol: SocketProtocol }[],
): Promise<Listener> {
  const closers: Closable[] = [];
  const closeAll = () =>
    Promise.all(closers.map((c) => new Promise<void>((resolve) => c.close(() => resolve())))).then(() => {});
  let ns: Netns | undefined;
  try {
    ns = Netns.open({ path: netnsPath });
    const reply = Buffer.from(`${label}\n`);
    for (const { port, protocol } of ports) {
      if (protocol === 'TCP') {
        const open = new Set<Socket>();
        const server = ns.createServer((sock) => {
          open.add(sock);
          sock.on('close', () => open.delete(sock));
          sock.on('error', () => sock.destroy());
          sock.write(reply);
          sock.pipe(sock);
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host: '0.0.0.0', backlog: 512 }, () => resolve());
        });
        // Closing stops listening and drops the flows still open (a flow cut by policy never ends).
        closers.push({
          close(cb) {
            for (const sock of open) sock.destroy();
            return server.close(cb);
          },
        });
      } else {
        // One socket per local address: a socket bound to 0.0.0.0 answers from the address the route
        // picks (the world namespace's own address, not the world IP that was asked), and the
        // client's connected socket would ignore that reply. Node cannot read IP_PKTINFO.
        for (const address of await localIpv4Addresses(ns)) {
          const sock = ns.createSocket('udp4');
          sock.on('message', (_msg, rinfo) => sock.send(reply, rinfo.port, rinfo.address));
          await new Promise<void>((resolve, reject) => {
            sock.once('error', reject);
            sock.bind(port, address, () => resolve());
          });
          sock.on('error', () => undefined);
          closers.push(sock);
        }
      }
    }
  } catch (err) {
    await closeAll();
    throw new AgentError(
      'ListenerFailed',
      `listener ${label} in ${netnsPath}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  } finally {
    ns?.close(); // the sockets keep the namespace they were made in
  }
  return { close: closeAll };
}

function probeTcp(ns: Netns, p: ProbeRequest): Promise<ProbeOutcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let reply = '';
    const finish = (o: Omit<ProbeOutcome, 'id' | 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ id: p.id, ms: performance.now() - start, ...o });
    };
    const timer = setTimeout(() => lateTimeout(() => finish({ result: 'timeout' })), p.timeoutMs);
    const sock = ns.connect({
      host: p.host,
      port: p.port,
      ...(p.localAddress === undefined ? {} : { localAddress: p.localAddress }),
    });
    sock.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.includes('\n')) finish({ result: 'connected', reply: reply.trim() });
    });
    sock.on('end', () => finish({ result: 'connected', reply: reply.trim() }));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? { result: 'refused' } : { result: 'error', message: err.message }),
    );
  });
}

function probeUdp(ns: Netns, p: ProbeRequest): Promise<ProbeOutcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    const sock = ns.createSocket('udp4');
    let done = false;
    let resend: NodeJS.Timeout | undefined;
    const finish = (o: Omit<ProbeOutcome, 'id' | 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      try {
        sock.close();
      } catch {
        // never bound: nothing to close
      }
      resolve({ id: p.id, ms: performance.now() - start, ...o });
    };
    const timer = setTimeout(() => lateTimeout(() => finish({ result: 'timeout' })), p.timeoutMs);
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address === p.host && rinfo.port === p.port)
        finish({ result: 'connected', reply: msg.toString().trim() });
    });
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? { result: 'refused' } : { result: 'error', message: err.message }),
    );
    const payload = Buffer.from('probe');
    const send = (): void => {
      if (done) return;
      try {
        sock.send(payload, p.port, p.host);
      } catch (err) {
        finish({ result: 'error', message: err instanceof Error ? err.message : String(err) });
      }
    };
    sock.bind(0, p.localAddress ?? '0.0.0.0', () => {
      send();
      // a datagram may be lost to a not-yet-resolved neighbour: resend a few times
      resend = setInterval(send, Math.max(100, Math.floor(p.timeoutMs / 4)));
    });
  });
}

/**
 * Sends every probe concurrently from inside the namespace at `netnsPath` and returns one outcome per
 * probe, in request order.
 * @throws AgentError `ProbeFailed` when the namespace cannot be opened.
 */
export async function runProbes(netnsPath: string, probes: readonly ProbeRequest[]): Promise<ProbeOutcome[]> {
  if (probes.length === 0) return [];
  let ns: Netns;
  try {
    ns = Netns.open({ path: netnsPath });
  } catch (err) {
    throw new AgentError('ProbeFailed', `prober in ${netnsPath}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return await Promise.all(probes.map((p) => (p.protocol === 'TCP' ? probeTcp(ns, p) : probeUdp(ns, p))));
  } finally {
    ns.close();
  }
}
