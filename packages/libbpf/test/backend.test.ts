import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { prebuildPath, whyNotBuildable } from '../native/where.mjs';
import { bpfBackend } from '../src/index.js';

const prebuild = prebuildPath();

describe('native bpf(2) backend', () => {
  it('is built by the package build wherever this Node has headers and a C++ compiler is present', () => {
    expect(existsSync(prebuild)).toBe(whyNotBuildable() === undefined);
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
