import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bpfBackend } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const abi = process.versions.modules;
const prebuild = join(root, 'prebuilds', `${process.platform}-${process.arch}`, `bpf.abi${abi}.node`);
// Where native/build.mjs looks for this Node's headers; it builds unless DATAPATH_NATIVE=0.
const headerDirs = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
];
const hasHeaders = headerDirs.some(
  (dir) =>
    existsSync(join(dir, 'node.h')) &&
    existsSync(join(dir, 'node_version.h')) &&
    new RegExp(`#define NODE_MODULE_VERSION ${abi}\\b`).test(
      readFileSync(join(dir, 'node_version.h'), 'utf8'),
    ),
);
const canBuild =
  process.platform === 'linux' &&
  process.env.DATAPATH_NATIVE !== '0' &&
  hasHeaders &&
  spawnSync(process.env.CXX ?? 'c++', ['--version'], { stdio: 'ignore' }).status === 0;

describe('native bpf(2) backend', () => {
  it('is built by the package build wherever this Node has headers and a C++ compiler is present', () => {
    expect(existsSync(prebuild)).toBe(canBuild);
  });

  it('carries bpf(2) whenever it was built, unless DATAPATH_BPF_BACKEND says koffi', () => {
    const forced = process.env.DATAPATH_BPF_BACKEND;
    expect(bpfBackend()).toBe(forced === 'koffi' || !existsSync(prebuild) ? 'koffi' : 'native');
  });

  it.runIf(existsSync(prebuild))(
    'refuses arguments of the wrong type or range instead of calling the kernel',
    () => {
      const { bpf } = createRequire(import.meta.url)(prebuild) as { bpf: (...args: unknown[]) => number };
      expect(() => bpf('1', 4096)).toThrow(TypeError);
      expect(() => bpf(1)).toThrow(TypeError);
      expect(() => bpf(1.5, 4096)).toThrow(TypeError);
      expect(() => bpf(-1, 4096)).toThrow(RangeError);
      expect(() => bpf(1, 0)).toThrow(RangeError);
      expect(() => bpf(1, 2 ** 53)).toThrow(RangeError);
    },
  );
});
