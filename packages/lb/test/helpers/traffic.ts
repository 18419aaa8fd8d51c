/**
 * Test traffic: servers and clients as child Node processes inside the test's namespaces. A server
 * answers every TCP connection or UDP datagram with the peer address it saw (`addr:port`) and
 * records it; a client reports, per connection, the answer or the error.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const SERVER = `const [proto, port, host, name] = process.argv.slice(1);
const tag = name ? '@' + name : '';
const out = (s) => process.stdout.write(s + '\\n');
if (proto === 'tcp') {
  const srv = require('net').createServer((s) => {
    const peer = s.remoteAddress + ':' + s.remotePort;
    out('peer ' + peer);
    s.on('error', () => s.destroy());
    let held = false;
    s.on('data', (d) => {
      const m = String(d);
      if (m.startsWith('hold')) { held = true; s.write(peer + tag + '\\n'); return; }
      if (held) { s.write('pong ' + m.trim() + tag + '\\n'); return; }
      s.end(peer + tag + '\\n');
    });
  });
  srv.listen(Number(port), host, () => out('ready'));
} else {
  const sock = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (m, r) => { const peer = r.address + ':' + r.port; out('peer ' + peer); sock.send(peer + tag, r.port, r.address); });
  sock.bind(Number(port), host, () => out('ready'));
}`;

const CLIENT = `const [proto, host, port, count, conc, sport, timeout] = process.argv.slice(1).map((v, i) => i < 2 ? v : Number(v));
const net = require('net'), dgram = require('dgram');
const one = (i) => new Promise((resolve) => {
  const done = (r) => { resolve(r); };
  if (proto === 'tcp') {
    let data = '';
    const opts = { host, port };
    if (sport) { opts.localPort = sport; opts.localAddress = '0.0.0.0'; }
    const s = net.connect(opts);
    s.setTimeout(timeout, () => { s.destroy(); done('error timeout'); });
    s.on('connect', () => s.write('hi'));
    s.on('data', (d) => { data += d; });
    s.on('end', () => { done(data.trim() + ' ' + s.localPort + ' ' + s.remoteAddress + ':' + s.remotePort); s.end(); });
    s.on('error', (e) => done('error ' + e.code));
  } else {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { s.close(); done('error timeout'); }, timeout);
    s.on('message', (m, r) => { clearTimeout(t); const lp = s.address().port; s.close(); done(String(m) + ' ' + lp + ' ' + r.address + ':' + r.port); });
    s.bind(sport || 0, () => s.send('hi', port, host));
  }
});
(async () => {
  const res = new Array(count);
  let next = 0;
  const worker = async () => { while (next < count) { const i = next++; res[i] = await one(i); } };
  await Promise.all(Array.from({ length: Math.min(conc, count) }, worker));
  process.stdout.write(JSON.stringify(res));
})();`;

/** A server in a namespace; `peers` grows with every connection or datagram it saw. */
export interface Server {
  readonly peers: string[];
  stop(): Promise<void>;
}

/**
 * Starts a TCP or UDP server on `host:port` in the named namespace; with a `name`, its answers end
 * with `@name`.
 */
export async function startServer(
  netns: string,
  proto: 'tcp' | 'udp',
  port: number,
  host = '0.0.0.0',
  name = '',
): Promise<Server> {
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, '-e', SERVER, proto, String(port), host, name],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const peers: string[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') resolve();
        else if (line.startsWith('peer ')) peers.push(line.slice(5));
        nl = buf.indexOf('\n');
      }
    });
    child.once('exit', (code) => reject(new Error(`server in ${netns} exited ${code}`)));
  });
  return {
    peers,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

/** What one client run should do. */
export interface ClientRun {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  /** Connections (TCP) or request datagrams from fresh sockets (UDP); default 1. */
  count?: number;
  /** Concurrent ones; default 1. */
  concurrency?: number;
  /** Bind this source port (one connection at a time then). */
  sourcePort?: number;
  /** Per-connection timeout in ms; default 2000. */
  timeoutMs?: number;
}

/**
 * Runs a client in the named namespace; one answer per connection: `<addr:port the server saw>[@name]
 * <local port> <addr:port the answer came from>`, or `error …`.
 */
export function runClient(netns: string, r: ClientRun): Promise<string[]> {
  const args = [
    'netns',
    'exec',
    netns,
    process.execPath,
    '-e',
    CLIENT,
    r.proto,
    r.host,
    String(r.port),
    String(r.count ?? 1),
    String(r.concurrency ?? 1),
    String(r.sourcePort ?? 0),
    String(r.timeoutMs ?? 2000),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`client in ${netns} exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as string[]);
    });
  });
}

const HOLD = `const [host, port, sport] = process.argv.slice(1);
const opts = { host, port: Number(port) };
if (Number(sport)) { opts.localPort = Number(sport); opts.localAddress = '0.0.0.0'; }
const s = require('net').connect(opts, () => s.write('hold'));
let buf = '';
s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { process.stdout.write(buf.slice(0, i) + '\\n'); buf = buf.slice(i + 1); } });
s.on('error', (e) => { process.stdout.write('error ' + e.code + '\\n'); process.exit(1); });
process.stdin.on('data', (d) => s.write(String(d).trim()));
process.stdin.on('end', () => s.end());`;

/** An open TCP connection held by a client process until `close()`. */
export interface HeldConnection {
  /** The server's first answer (`<peer it saw>[@name]`). */
  readonly greeting: string;
  /** Sends `msg` on the connection and returns the server's answer (`pong <msg>[@name]`). */
  exchange(msg: string): Promise<string>;
  close(): Promise<void>;
}

/** Opens a TCP connection from the named namespace and keeps it open (the server is told `hold`). */
export async function holdConnection(
  netns: string,
  host: string,
  port: number,
  sourcePort = 0,
): Promise<HeldConnection> {
  const child = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, '-e', HOLD, host, String(port), String(sourcePort)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
      i = buf.indexOf('\n');
    }
  });
  const next = (timeoutMs = 3000) =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      const t = setTimeout(
        () => reject(new Error(`holdConnection: no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiters.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill();
    });
  let greeting: string;
  try {
    greeting = await next();
  } catch (err) {
    await stop();
    throw err;
  }
  if (greeting.startsWith('error')) {
    await stop();
    throw new Error(`holdConnection: ${greeting}`);
  }
  return {
    greeting,
    exchange: (msg) => {
      child.stdin.write(`${msg}\n`);
      return next();
    },
    close: stop,
  };
}
