/**
 * Test traffic: servers and clients as child Node processes inside the test's namespaces. A server
 * answers every TCP connection or UDP datagram with the peer address it saw (`addr:port`) and
 * records it; a client reports, per connection, the answer or the error.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const SERVER = `const [proto, port, host] = process.argv.slice(1);
const out = (s) => process.stdout.write(s + '\\n');
if (proto === 'tcp') {
  const srv = require('net').createServer((s) => {
    const peer = s.remoteAddress + ':' + s.remotePort;
    out('peer ' + peer);
    s.on('error', () => s.destroy());
    s.on('data', (d) => { if (String(d).includes('hold')) return; s.end(peer + '\\n'); });
  });
  srv.listen(Number(port), host, () => out('ready'));
} else {
  const sock = require('dgram').createSocket('udp4');
  sock.on('message', (m, r) => { const peer = r.address + ':' + r.port; out('peer ' + peer); sock.send(peer, r.port, r.address); });
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
    s.on('end', () => { done(data.trim() + ' ' + s.localPort); s.end(); });
    s.on('error', (e) => done('error ' + e.code));
  } else {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); done('error timeout'); }, timeout);
    s.on('message', (m) => { clearTimeout(t); const lp = s.address().port; s.close(); done(String(m) + ' ' + lp); });
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

/** Starts a TCP or UDP server on `host:port` in the named namespace. */
export async function startServer(
  netns: string,
  proto: 'tcp' | 'udp',
  port: number,
  host = '0.0.0.0',
): Promise<Server> {
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, '-e', SERVER, proto, String(port), host],
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
 * Runs a client in the named namespace; one answer per connection: `<addr:port the server saw> <local port>`,
 * or `error …`.
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
const s = require('net').connect(opts, () => { s.write('hold'); process.stdout.write(s.localPort + '\\n'); });
s.on('error', (e) => { process.stdout.write('error ' + e.code + '\\n'); process.exit(1); });`;

/** An open TCP connection held by a client process until `close()`. */
export interface HeldConnection {
  readonly localPort: number;
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
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`client in ${netns} exited ${code}`)));
  });
  if (line.startsWith('error')) throw new Error(`holdConnection: ${line}`);
  return {
    localPort: Number(line),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}
