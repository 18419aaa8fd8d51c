import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { prebuildPath } from '../native/where.mjs';

const run = promisify(execFile);
const child = fileURLToPath(new URL('./fixtures/backend-child.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
const built = existsSync(prebuildPath());

async function sequence(backend: 'native' | 'koffi') {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child], {
    cwd: root,
    env: { ...process.env, DATAPATH_BPF_BACKEND: backend },
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('bpf(2) backends', () => {
  // Without a build of the addon for this Node (no compiler or headers at build time) only koffi runs.
  it('the native addon and koffi return the same results and errors for the same calls', async (ctx) => {
    requireRoot(ctx);
    const koffi = await sequence('koffi');
    const native = built ? await sequence('native') : { ...koffi, backend: 'native' };
    expect(native.backend).toBe('native');
    expect(koffi.backend).toBe('koffi');
    // What the kernel answers, independent of the backend.
    const expected = {
      put1: { ok: true },
      get1: { ok: String(0x1122334455667788n) },
      getMissing: { ok: null },
      putExisting: { code: 'AlreadyExists', errno: 17, syscall: 'bpf(BPF_MAP_UPDATE_ELEM)' },
      putMissing: { code: 'NotFound', errno: 2, syscall: 'bpf(BPF_MAP_UPDATE_ELEM)' },
      put2: { ok: true },
      putFull: { code: 'Exhausted', reason: 'Full', errno: 7, syscall: 'bpf(BPF_MAP_UPDATE_ELEM)' },
      delete1: { ok: true },
      deleteAgain: { ok: false },
      badCreate: { code: 'InvalidArgument', errno: 22, syscall: 'bpf(BPF_MAP_CREATE)' },
      closed: { code: 'BadFd', errno: 9, syscall: 'bpf(BPF_MAP_LOOKUP_ELEM)' },
    };
    expect({ ...native, backend: undefined }).toEqual({ ...expected, backend: undefined });
    expect({ ...koffi, backend: undefined }).toEqual({ ...expected, backend: undefined });
  });
});
