/** The example's only child process: `ping` from inside a namespace, bound to one source address. */
import { spawnSync } from 'node:child_process';

/** Sends `count` ICMP echoes from `source` to `target` inside the namespace at `netnsPath`; returns the replies. */
export function pingFrom(netnsPath: string, source: string, target: string, count: number): number {
  const r = spawnSync(
    'nsenter',
    [
      `--net=${netnsPath}`,
      'ping',
      '-n',
      '-q',
      '-c',
      String(count),
      '-i',
      '0.01',
      '-W',
      '1',
      '-I',
      source,
      target,
    ],
    { encoding: 'utf8' },
  );
  if (r.error) throw r.error;
  const m = /(\d+) (?:packets )?received/.exec(r.stdout);
  if (!m) throw new Error(`ping from ${source}: unexpected output: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}
