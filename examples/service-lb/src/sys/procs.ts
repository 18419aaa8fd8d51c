/**
 * The example's child processes: backends (a TCP server answering with its name) and a client that
 * runs inside a cgroup, so the connect4 hook applies to it and to nothing else on the machine.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

const SERVER = `const [name, port] = process.argv.slice(1);
require('net').createServer((s) => { s.on('error', () => s.destroy()); s.end(name + '\\n'); })
  .listen(Number(port), '0.0.0.0', () => process.stdout.write('ready\\n'));`;

const CLIENT = `const [host, port, count] = process.argv.slice(1);
const net = require('net');
const one = () => new Promise((resolve) => {
  let data = '';
  const s = net.connect(Number(port), host);
  s.setTimeout(1500, () => { s.destroy(); resolve('timeout'); });
  s.on('data', (d) => { data += d; });
  s.on('end', () => resolve(data.trim() + ' ' + s.remoteAddress));
  s.on('error', (e) => resolve('error ' + e.code));
});
(async () => { for (let i = 0; i < Number(count); i++) process.stdout.write((await one()) + '\\n'); })();`;

/** A backend server running in a namespace. */
export interface Backend {
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a TCP server in the namespace at `netnsPath` that answers every connection with `name`. */
export async function startBackend(netnsPath: string, name: string, port: number): Promise<Backend> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '-e', SERVER, name, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`backend ${name} exited ${code}`)));
  });
  return {
    process: child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

/**
 * Connects `count` times to `host:port` from a process placed in the cgroup `cgroupDir` before it
 * runs, inside the namespace at `netnsPath`; returns one line per connection (`<answer> <peer ip>`).
 */
export function connectMany(
  cgroupDir: string,
  netnsPath: string,
  host: string,
  port: number,
  count: number,
): string[] {
  const script = `echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" "$2" -e "$3" "$4" "$5" "$6"`;
  const r = spawnSync(
    'sh',
    ['-c', script, cgroupDir, netnsPath, process.execPath, CLIENT, host, String(port), String(count)],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`client exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}
