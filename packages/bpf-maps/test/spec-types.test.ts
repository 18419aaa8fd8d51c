// What an editor shows a first-time user writing a map spec: createMap's `type` completes every map
// kind, and a wrong or missing field is reported by name (not as "not assignable to progArray").
// Runs the TypeScript language service over small snippets that import the package's source.
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const options: ts.CompilerOptions = {
  ...ts.parseJsonConfigFileContent(
    ts.readConfigFile(`${root}tsconfig.base.json`, ts.sys.readFile).config,
    ts.sys,
    root,
  ).options,
  baseUrl: root,
};

// One language service for every snippet (a fresh one per snippet costs seconds): the snippet file's
// version changes with its text, so the program is rebuilt incrementally.
const file = `${root}packages/bpf-maps/test/__snippet__.ts`;
let text = '';
let version = 0;
const ls = ts.createLanguageService({
  getCompilationSettings: () => options,
  getScriptFileNames: () => [file],
  getScriptVersion: (f) => (f === file ? String(version) : '0'),
  getScriptSnapshot: (f) => {
    const body = f === file ? text : ts.sys.readFile(f);
    return body === undefined ? undefined : ts.ScriptSnapshot.fromString(body);
  },
  getCurrentDirectory: () => root,
  getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
  fileExists: (f) => f === file || ts.sys.fileExists(f),
  readFile: (f) => (f === file ? text : ts.sys.readFile(f)),
});

function service(body: string): void {
  text = body;
  version += 1;
}

const header = "import { createMap, openPinned, u32, u64 } from '@datapath/bpf-maps';\n";

function errors(body: string): string[] {
  service(header + body);
  return ls.getSemanticDiagnostics(file).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('createMap / openPinned spec types', () => {
  it('completes every map kind for `type`', () => {
    for (const call of ["createMap({ type: '", "openPinned('/sys/fs/bpf/x', { type: '"]) {
      const snippet = `${header}${call}`;
      service(snippet);
      const names = ls.getCompletionsAtPosition(file, snippet.length, {})?.entries.map((e) => e.name) ?? [];
      expect(names.sort()).toEqual(
        [
          'array',
          'hash',
          'lpmTrie',
          'lruHash',
          'lruPerCpuHash',
          'perCpuArray',
          'perCpuHash',
          'progArray',
        ].sort(),
      );
    }
  });

  it('names the wrong field of a spec', () => {
    const wrong = errors("createMap({ type: 'hash', key: u32, value: u64, maxEntires: 10 });");
    expect(wrong).toHaveLength(1);
    expect(wrong[0]).toContain("'maxEntires'");
    expect(wrong[0]).not.toContain('progArray');

    const missing = errors("createMap({ type: 'hash', value: u64, maxEntries: 10 });");
    expect(missing).toHaveLength(1);
    expect(missing[0]).toMatch(/Property 'key' is missing/);
    expect(missing[0]).not.toContain('progArray');

    const badType = errors("createMap({ type: 'hashh', key: u32, value: u64, maxEntries: 10 });");
    expect(badType.join('\n')).toContain('"hashh"');
  });

  it('types the client by kind, and lets array specs name their u32 key as the loader does', () => {
    expect(
      errors(`
        const h = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 1 });
        h.set(1, 2n);
        const k: 'hash' | 'lruHash' = h.kind;
        const a = createMap({ type: 'array', key: u32, value: u64, maxEntries: 1 });
        const b = createMap({ type: 'array', value: u64, maxEntries: 1 });
        const n: bigint | undefined = a.get(0) ?? b.get(0);
        const p = createMap({ type: 'progArray', maxEntries: 4 });
        const q: 'progArray' = p.kind;
        const o = openPinned('/sys/fs/bpf/x', { type: 'perCpuArray', value: u64 });
        const c: number = o.cpus;
        void k, n, q, c;
      `),
    ).toEqual([]);
  });
});
