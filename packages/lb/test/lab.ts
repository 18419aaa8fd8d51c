// The socket-LB test lab: a client namespace and a "pods" namespace on one veth, backends as servers
// bound to their own addresses in the pods namespace (each answers with its address), a cgroup for the
// client process, which runs inside it and inside the client namespace and takes commands on stdin.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { addrAdd, linkAdd, linkSetUp } from '@datapath/netdev';
import { Handle, Netns } from '@datapath/netlink';
import { createNetns, deleteNetns, type TestNetns } from '@datapath/testutils';

export const CLIENT_V4 = '10.244.0.1';
export const CLIENT_V6 = 'fd00:0:0:1::1';
export const BACKENDS_V4 = ['10.244.1.1', '10.244.1.2', '10.244.1.3', '10.244.1.4'];
export const BACKENDS_V6 = ['fd00:0:0:1::11', 'fd00:0:0:1::12', 'fd00:0:0:1::13', 'fd00:0:0:1::14'];
export const PORT = 8080;

const SERVER = `const net = require('net'), dgram = require('dgram');
const [port, ...addrs] = process.argv.slice(1);
let ready = 0;
const up = () => { if (++ready === addrs.length * 2) process.stdout.write('ready\\n'); };
for (const a of addrs) {
  net.createServer((s) => { s.on('error', () => s.destroy()); s.on('data', () => s.write(a + '\\n')); })
    .listen(Number(port), a, up);
  const u = dgram.createSocket(a.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m, r) => u.send(a, r.port, r.address));
  u.bind(Number(port), a, up);
}`;

const CLIENT = `const net = require('net'), dgram = require('dgram'), rl = require('readline');
const held = new Map(); let nextId = 1;
const strip = (a) => (a && a.startsWith('::ffff:') ? a.slice(7) : a);
const ask = (s) => new Promise((resolve) => {
  let data = '';
  const onData = (d) => { data += d; if (data.includes('\\n')) { s.off('data', onData); resolve(data.trim()); } };
  s.on('data', onData);
  s.write('hi\\n');
});
const tcp = (host, port, keep) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  s.setTimeout(3000, () => { s.destroy(); resolve({ error: 'timeout' }); });
  s.on('error', (e) => resolve({ error: e.code }));
  s.on('connect', async () => {
    const answer = await ask(s);
    const peer = strip(s.remoteAddress);
    if (keep) { const id = nextId++; held.set(id, s); s.setTimeout(0); resolve({ id, answer, peer }); }
    else { s.end(); s.destroy(); resolve({ answer, peer }); }
  });
});
const udp = (host, port, connected) => new Promise((resolve) => {
  const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const t = setTimeout(() => { u.close(); resolve({ error: 'timeout' }); }, 3000);
  const done = (r) => { clearTimeout(t); u.close(); resolve(r); };
  u.on('error', (e) => done({ error: e.code }));
  u.on('message', (m, r) => done({ answer: m.toString(), from: strip(r.address), port: r.port,
    peer: connected ? strip(u.remoteAddress().address) : undefined }));
  const send = () => u.send('hi', (e) => { if (e) done({ error: e.code }); });
  if (connected) u.connect(port, host, (e) => (e ? done({ error: e.code }) : send()));
  else u.send('hi', port, host, (e) => { if (e) done({ error: e.code }); });
});
const ops = {
  async tcp(c) { const out = []; for (let i = 0; i < c.n; i++) out.push(await tcp(c.host, c.port, false)); return out; },
  async udp(c) { const out = []; for (let i = 0; i < c.n; i++) out.push(await udp(c.host, c.port, c.connected)); return out; },
  hold(c) { return tcp(c.host, c.port, true); },
  async again(c) { const s = held.get(c.id); return s ? { answer: await ask(s) } : { error: 'no such socket' }; },
  release(c) { const s = held.get(c.id); held.delete(c.id); s && s.destroy(); return {}; },
  async loop(c) {
    const answers = {}, errors = []; let ok = 0; const end = Date.now() + c.ms;
    while (Date.now() < end) {
      const r = await tcp(c.host, c.port, false);
      if (r.error) errors.push(r.error); else { ok++; answers[r.answer] = (answers[r.answer] || 0) + 1; }
    }
    return { ok, errors, answers };
  },
};
rl.createInterface({ input: process.stdin }).on('line', async (line) => {
  const c = JSON.parse(line);
  const result = await ops[c.op](c);
  process.stdout.write(JSON.stringify({ seq: c.seq, result }) + '\\n');
});
process.stdin.on('end', () => { for (const s of held.values()) s.destroy(); process.exit(0); });`;

/** The first cgroup v2 mount of this machine. */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, path, type] = line.split(' ');
    if (type === 'cgroup2' && path) return path;
  }
  throw new Error('no cgroup v2 mount');
}

/** A client process in the lab's cgroup and client namespace, driven by JSON commands. */
export class Client {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (r: unknown) => void>();
  #seq = 0;

  constructor(cgroupDir: string, netnsPath: string) {
    const script = `echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" "$2" -e "$3"`;
    this.#child = spawn('sh', ['-c', script, cgroupDir, netnsPath, process.execPath, CLIENT], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const { seq, result } = JSON.parse(line) as { seq: number; result: unknown };
      this.#waiting.get(seq)?.(result);
      this.#waiting.delete(seq);
    });
  }

  /** Sends one command and waits for its result. */
  run<T>(command: Record<string, unknown>): Promise<T> {
    const seq = ++this.#seq;
    return new Promise<T>((resolve) => {
      this.#waiting.set(seq, resolve as (r: unknown) => void);
      this.#child.stdin!.write(`${JSON.stringify({ ...command, seq })}\n`);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#child.exitCode !== null) return resolve();
      this.#child.once('exit', () => resolve());
      this.#child.stdin!.end();
    });
  }
}

/** Namespaces, link, addresses, backend servers and the cgroup; `close()` removes all of it. */
export class Lab implements AsyncDisposable {
  readonly client: TestNetns;
  readonly pods: TestNetns;
  readonly cgroupDir: string;
  readonly #server: ChildProcess;

  private constructor(client: TestNetns, pods: TestNetns, cgroupDir: string, server: ChildProcess) {
    this.client = client;
    this.pods = pods;
    this.cgroupDir = cgroupDir;
    this.#server = server;
  }

  static async create(prefix: string): Promise<Lab> {
    const client = createNetns(`${prefix}-c`);
    let pods: TestNetns | undefined;
    let server: ChildProcess | undefined;
    const cgroupDir = join(cgroup2Root(), prefix);
    try {
      pods = createNetns(`${prefix}-p`);
      using cns = Netns.open({ path: client.path });
      using pns = Netns.open({ path: pods.path });
      const ch = Handle.open(cns);
      const ph = Handle.open(pns);
      try {
        linkAdd({ name: 'eth0', kind: 'veth', peer: { name: 'eth0', netns: pns } }, { handle: ch });
        addrAdd('eth0', `${CLIENT_V4}/16`, { handle: ch });
        addrAdd('eth0', `${CLIENT_V6}/64`, { handle: ch, nodad: true });
        for (const a of BACKENDS_V4) addrAdd('eth0', `${a}/16`, { handle: ph });
        for (const a of BACKENDS_V6) addrAdd('eth0', `${a}/64`, { handle: ph, nodad: true });
        linkSetUp('eth0', { handle: ch });
        linkSetUp('eth0', { handle: ph });
      } finally {
        ch.close();
        ph.close();
      }
      server = spawn(
        'nsenter',
        [`--net=${pods.path}`, process.execPath, '-e', SERVER, String(PORT), ...BACKENDS_V4, ...BACKENDS_V6],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        server!.stdout!.once('data', () => resolve());
        server!.once('exit', (code) => reject(new Error(`backend server exited ${code}`)));
      });
      mkdirSync(cgroupDir);
      return new Lab(client, pods, cgroupDir, server);
    } catch (err) {
      server?.kill();
      if (pods) deleteNetns(pods.name);
      deleteNetns(client.name);
      throw err;
    }
  }

  /** A client process inside the lab's cgroup and client namespace. */
  clientProcess(): Client {
    return new Client(this.cgroupDir, this.client.path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.#server.exitCode !== null) return resolve();
      this.#server.once('exit', () => resolve());
      this.#server.kill();
    });
    try {
      rmdirSync(this.cgroupDir);
    } catch {
      // already gone
    }
    deleteNetns(this.pods.name);
    deleteNetns(this.client.name);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
