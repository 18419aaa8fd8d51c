// Issue 16: "pure means pure". Imports each pure package's BUILT main entry point (dist/, as a user gets it)
// in a fresh Node process and checks, from inside that process, that the import loaded no native code, FFI,
// sockets or child processes: through process.moduleLoadList (Node built-ins and internal bindings), the
// CommonJS module cache (koffi or a `.node` addon loaded with require) and /proc/self/maps (any shared
// object mapped by the import). The package list is scripts/pure-packages.mjs, shared with check-graph.mjs.
// A control case proves the probe sees native code: @datapath/ipam/file-store locking a store loads koffi.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { IMPURE_RUNTIME, PURE_ENTRY_PACKAGES, PURE_PACKAGES } from './pure-packages.mjs';

const root = new URL('..', import.meta.url).pathname;

interface Probe {
  /** New entries of process.moduleLoadList that are impure. */
  impureBuiltins: string[];
  /** CommonJS modules loaded by the import that are native (`.node`) or koffi. */
  nativeModules: string[];
  /** Files newly mapped into the process by the import that are shared objects or addons. */
  newMappings: string[];
}

/** The built entry point of `name` (or of its subpath `sub`), from its package.json exports map. */
function builtEntry(name: string, sub = '.'): string {
  const dir = join(root, 'packages', name.replace('@datapath/', ''));
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const target = manifest.exports?.[sub]?.import;
  if (typeof target !== 'string') throw new Error(`${name}: no "${sub}" import in its exports map`);
  const file = join(dir, target);
  if (!existsSync(file)) throw new Error(`${file} is missing: build first (make build)`);
  return file;
}

/** Runs `body` (an ES module snippet; `await load()` imports the entries) in a fresh process, probing. */
function probe(entries: string[], body = 'await load();'): Probe {
  const script = `
    import { readFileSync } from 'node:fs';
    import { createRequire } from 'node:module';
    const impure = ${JSON.stringify(IMPURE_RUNTIME)};
    const maps = () => new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n')
      .map((l) => l.trim().split(/\\s+/)[5]).filter((f) => f !== undefined && f.startsWith('/')));
    const before = { list: new Set(process.moduleLoadList), maps: maps() };
    const entries = ${JSON.stringify(entries.map((e) => pathToFileURL(e).href))};
    const load = async () => { for (const e of entries) await import(e); };
    ${body}
    const cache = Object.keys(createRequire(import.meta.url).cache);
    // Computed before touching process.stdout: a piped stdout itself loads net and pipe_wrap.
    const result = JSON.stringify({
      impureBuiltins: process.moduleLoadList.filter((m) => !before.list.has(m) && impure.includes(m)),
      nativeModules: cache.filter((f) => f.endsWith('.node') || /[\\\\/]koffi[\\\\/]/.test(f)),
      newMappings: [...maps()].filter((f) => !before.maps.has(f) && /\\.(so(\\.\\d+)*|node)$|koffi|libbpf/.test(f)),
    });
    process.stdout.write(result);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`probe failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Probe;
}

const clean: Probe = { impureBuiltins: [], nativeModules: [], newMappings: [] };

describe('pure packages load no native code at import (issue 16)', () => {
  for (const name of [...PURE_PACKAGES, ...PURE_ENTRY_PACKAGES]) {
    it(`${name}: a fresh process importing the built entry point maps no shared object and loads no FFI`, () => {
      expect(probe([builtEntry(name)])).toEqual(clean);
    });
  }

  it('all of them together, and using the pure API (allocations, a MemoryStore) stays pure', () => {
    const ipam = builtEntry('@datapath/ipam');
    const entries = [...PURE_PACKAGES.map((n) => builtEntry(n))];
    const use = `await load();
      const { HostScope, hostLocalOwner } = await import(${JSON.stringify(pathToFileURL(ipam).href)});
      const s = new HostScope({ v4: ['10.244.0.0/24'], cooldownMs: 1000 });
      s.release(s.allocateNext(4, hostLocalOwner('c', 'eth0')));`;
    expect(probe(entries, use)).toEqual(clean);
  });

  const dir = mkdtempSync(join(tmpdir(), 'dp-purity-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('control: the probe does see native code (@datapath/ipam/file-store taking its flock loads koffi)', () => {
    const fileStore = builtEntry('@datapath/ipam', './file-store');
    const use = `await load();
      const { FileStore } = await import(${JSON.stringify(pathToFileURL(fileStore).href)});
      const store = new FileStore(${JSON.stringify(dir)}, { sync: false });
      store.transact((tx) => tx.ips());
      store.close();`;
    const got = probe([fileStore], use);
    expect(got.nativeModules.some((f) => f.includes('koffi'))).toBe(true);
    expect(got.newMappings.some((f) => f.includes('koffi'))).toBe(true);
  });
});
