/**
 * The agent's in-namespace helper: a standalone script the agent runs inside a pod's (or the
 * node's, or the world's) network namespace with `nsenter --net=<path> node netns-worker.ts …`.
 * Node runs it with its built-in type stripping, so it imports nothing but `node:` modules.
 *
 *   listen '{"label":"x/a","ports":[{"port":80,"protocol":"TCP"}]}'
 *       binds every port (TCP sends the label on each connection and then echoes what it receives,
 *       UDP answers every datagram with the label),
 *       prints {"event":"ready"} and serves until its stdin closes.
 *   probe '{"probes":[{"id":0,"host":"10.244.0.7","port":80,"protocol":"TCP","timeoutMs":1500}]}'
 *       opens every probe concurrently and prints one JSON line per probe:
 *       {"id":0,"result":"connected"|"refused"|"timeout"|"error","reply"?:"y/b","ms":1.2}
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';

type Protocol = 'TCP' | 'UDP';
interface ListenSpec {
  label: string;
  ports: { port: number; protocol: Protocol }[];
}
interface ProbeSpec {
  id: number;
  host: string;
  port: number;
  protocol: Protocol;
  timeoutMs: number;
  localAddress?: string;
}
interface ProbeOutcome {
  id: number;
  result: 'connected' | 'refused' | 'timeout' | 'error';
  reply?: string;
  message?: string;
  ms: number;
}

function emit(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Every IPv4 address of this namespace (the worker runs inside it). */
function localIpv4Addresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  return [...new Set(all.filter((a) => a.family === 'IPv4').map((a) => a.address))];
}

async function listen(spec: ListenSpec): Promise<void> {
  const closers: (() => void)[] = [];
  const reply = Buffer.from(`${spec.label}\n`);
  for (const { port, protocol } of spec.ports) {
    if (protocol === 'TCP') {
      // Sends the label, then echoes whatever the client sends until it closes (long-lived flows).
      const server: Server = createServer((sock) => {
        sock.on('error', () => sock.destroy());
        sock.write(reply);
        sock.pipe(sock);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: '0.0.0.0', backlog: 512 }, resolve);
      });
      closers.push(() => server.close());
    } else {
      // One socket per local address: a socket bound to 0.0.0.0 answers from the address the route
      // picks (the world namespace's own address, not the world IP that was asked), and the
      // client's connected socket would ignore that reply. Node cannot read IP_PKTINFO.
      for (const address of localIpv4Addresses()) {
        const sock = createSocket('udp4');
        sock.on('message', (_msg, rinfo) => sock.send(reply, rinfo.port, rinfo.address));
        sock.on('error', () => undefined);
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind(port, address, resolve);
        });
        closers.push(() => sock.close());
      }
    }
  }
  emit({ event: 'ready' });
  const stop = (): void => {
    for (const c of closers) c();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

/**
 * Node runs expired timers before it polls for I/O: on a starved CPU an answer that arrived in time
 * would lose against its own timeout. Polling once more (setImmediate runs after the poll phase)
 * lets it win.
 */
function lateTimeout(fn: () => void): void {
  setImmediate(fn);
}

function probeTcp(p: ProbeSpec): Promise<ProbeOutcome> {
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
    const sock = connect({
      host: p.host,
      port: p.port,
      ...(p.localAddress === undefined ? {} : { localAddress: p.localAddress }),
    });
    const timer = setTimeout(() => lateTimeout(() => finish({ result: 'timeout' })), p.timeoutMs);
    sock.on('data', (d) => {
      reply += d.toString();
      if (reply.includes('\n')) finish({ result: 'connected', reply: reply.trim() });
    });
    sock.on('end', () => finish({ result: 'connected', reply: reply.trim() }));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? { result: 'refused' } : { result: 'error', message: err.message }),
    );
  });
}

function probeUdp(p: ProbeSpec): Promise<ProbeOutcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    let done = false;
    let resend: NodeJS.Timeout | undefined;
    const finish = (o: Omit<ProbeOutcome, 'id' | 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      sock.close();
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

async function probe(spec: { probes: ProbeSpec[] }): Promise<void> {
  await Promise.all(
    spec.probes.map(async (p) => emit(await (p.protocol === 'TCP' ? probeTcp(p) : probeUdp(p)))),
  );
}

const [mode, json] = process.argv.slice(2);
try {
  const spec = JSON.parse(json ?? '{}');
  if (mode === 'listen') await listen(spec as ListenSpec);
  else if (mode === 'probe') await probe(spec as { probes: ProbeSpec[] });
  else throw new Error(`unknown mode ${mode}: expected listen or probe`);
} catch (err) {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
