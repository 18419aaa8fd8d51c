import { type BpfErrnoOptions, errnoError } from '../errors.js';
import { CMD_NAMES } from './bpf-attr.js';
import { type Pinned, sysBpf } from './libc.js';

/** Runs bpf(2) and throws the mapped BpfError on failure; returns the non-negative result. */
export function bpfOrThrow(cmd: number, attr: Pinned, size: number, op: string, target?: string): number {
  const r = sysBpf(cmd, attr, size);
  if (r < 0) throw syscallError(-r, cmd, op, target);
  return r;
}

/** The BpfError for a failed bpf(2) command; `meaning` gives errnos their meaning for this command. */
export function syscallError(
  errno: number,
  cmd: number,
  op: string,
  target?: string,
  meaning?: BpfErrnoOptions['meaning'],
) {
  const syscall = CMD_NAMES[cmd] ?? `bpf(${cmd})`;
  return errnoError(errno, { op, syscall, target, meaning });
}
