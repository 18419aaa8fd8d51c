/**
 * How much CPU other workloads used while a measurement ran (the machine is shared): the summed
 * utime + stime + cutime + cstime of every process in /proc except this one, its direct children (the
 * iperf3 client and server it spawns) and kernel threads (ksoftirqd runs our own network work), as
 * a share of the machine's CPU time over the same wall time. Children reaped during the window show
 * in their parent's cutime/cstime, so short-lived processes count too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

const PF_KTHREAD = 0x00200000;
const TICKS_PER_S = 100; // USER_HZ

/** A /proc snapshot: CPU ticks per foreign process, and when it was taken. */
export interface CpuSnapshot {
  at: number;
  ticks: Map<number, number>;
}

/** Reads every foreign process's CPU ticks (processes vanishing mid-read are skipped). */
export function snapshot(): CpuSnapshot {
  const ticks = new Map<number, number>();
  const self = process.pid;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === self) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // fields after "pid (comm) ": state(3) ppid(4) … flags(9) … utime(14) stime(15) cutime(16) cstime(17)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(f[1]);
    const flags = Number(f[6]);
    if (ppid === self || ppid === 2 || flags & PF_KTHREAD) continue;
    ticks.set(pid, Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]));
  }
  return { at: performance.now(), ticks };
}

/** Share (0–1) of the machine's CPU time other processes used between two snapshots. */
export function foreignShare(before: CpuSnapshot, after: CpuSnapshot): number {
  let ticks = 0;
  for (const [pid, t] of after.ticks) ticks += t - (before.ticks.get(pid) ?? 0);
  const seconds = (after.at - before.at) / 1000;
  return seconds > 0 ? Math.max(0, ticks / TICKS_PER_S / (seconds * availableParallelism())) : 0;
}
