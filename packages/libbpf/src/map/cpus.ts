import { readFileSync } from 'node:fs';
import { BpfError } from '../errors.js';

let cached: number | undefined;

/** Parses a kernel CPU list such as `0-3,8-11` and returns how many CPUs it names. */
export function parseCpuList(text: string): number {
  let n = 0;
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) {
      throw new BpfError('InvalidArgument', `possibleCpus: cannot parse CPU list ${JSON.stringify(text)}`, {
        op: 'possibleCpus',
      });
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    n += hi - lo + 1;
  }
  return n;
}

/**
 * Returns the number of possible CPUs, the count per-CPU map values are sized by (not the online count).
 *
 * Equivalent to: `cat /sys/devices/system/cpu/possible`.
 *
 * @throws {@link BpfError} `InvalidArgument` when the kernel's CPU list cannot be parsed.
 * @example Sizing a per-CPU value buffer
 * ```ts
 * import { possibleCpus } from '@datapath/libbpf';
 * const bytes = 8 * possibleCpus(); // one u64 per possible CPU
 * ```
 */
export function possibleCpus(): number {
  cached ??= parseCpuList(readFileSync('/sys/devices/system/cpu/possible', 'utf8'));
  return cached;
}
