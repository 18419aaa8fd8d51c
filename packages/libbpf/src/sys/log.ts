// libbpf's own log lines (libbpf_set_print): kept in a small ring so errors can quote them, never printed.
import koffi from 'koffi';
import { libbpfFn } from './libbpf.js';
import { libc } from './libc.js';

type Fn<A extends unknown[], R> = (...args: A) => R;

const LOG_LINES = 64;
const logRing: string[] = [];
const vsnprintf = libc.func(
  'int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)',
) as Fn<[Uint8Array, number, string, unknown], number>;
const PrintFn = koffi.proto('int libbpf_print_fn_t(int level, const char *fmt, void *ap)');
const setPrint = libbpfFn<[unknown], unknown>('void *libbpf_set_print(libbpf_print_fn_t *fn)');
const scratch = new Uint8Array(4096);
setPrint(
  koffi.register((_level: number, fmt: string, ap: unknown) => {
    const n = vsnprintf(scratch, scratch.length, fmt, ap);
    const text = new TextDecoder().decode(scratch.subarray(0, Math.min(Math.max(n, 0), scratch.length - 1)));
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      logRing.push(line.replace(/^libbpf: /, ''));
      if (logRing.length > LOG_LINES) logRing.shift();
    }
    return 0;
  }, koffi.pointer(PrintFn)),
);

/** Marks the current end of libbpf's log; pass it to {@link libbpfLogSince}. */
export function libbpfLogMark(): number {
  logRing.push('\u0000mark');
  if (logRing.length > LOG_LINES) logRing.shift();
  return logRing.length;
}

/** libbpf's log lines written since the last {@link libbpfLogMark} (at most 64). */
export function libbpfLogSince(): string[] {
  const at = logRing.lastIndexOf('\u0000mark');
  return logRing.slice(at + 1).filter((l) => l !== '\u0000mark');
}
