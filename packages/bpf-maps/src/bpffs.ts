import { statfsSync } from 'node:fs';
import { basename, dirname, isAbsolute, normalize } from 'node:path';
import { BpfError } from '@datapath/libbpf';

const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * Checks that `path` can name a pin: absolute, no `..` segment, and its directory on a bpffs mount.
 * Throws `InvalidArgument` before any syscall otherwise.
 */
export function checkPinPath(path: string, op: string): void {
  const fail = (why: string, cause?: unknown) =>
    new BpfError('InvalidArgument', `${op}: pin path ${JSON.stringify(path)} ${why}`, {
      op,
      target: String(path),
      ...(cause === undefined ? {} : { cause }),
    });
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw fail('is not a path');
  if (!isAbsolute(path)) throw fail('must be absolute');
  if (path.split('/').includes('..')) throw fail('must not contain ".."');
  if (basename(path).includes('.')) throw fail('must not have a dot in its last part (bpffs reserves those)');
  if (normalize(path) !== path.replace(/\/+$/, '') && normalize(path) !== path)
    throw fail('must be normalized');
  let type: number;
  try {
    type = Number(statfsSync(dirname(path)).type);
  } catch (cause) {
    throw fail('has no existing parent directory', cause);
  }
  if (type !== BPF_FS_MAGIC) throw fail('is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)');
}
