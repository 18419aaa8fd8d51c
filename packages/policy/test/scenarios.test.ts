import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { evaluateScenario, PolicyError, type ScenarioInput } from '../src/index.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const dir = join(pkg, 'scenarios');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('the scenario library', () => {
  it('has at least 40 scenarios, each with an expectation on every probe', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
    for (const f of files) {
      const s = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      expect(s.probes.length, f).toBeGreaterThan(0);
      for (const p of s.probes) expect(p.expect, `${f} ${JSON.stringify(p)}`).toMatch(/^(allow|deny)$/);
    }
  });

  it.each(files)('%s: every verdict matches its expect', (f) => {
    const { results, mismatches } = evaluateScenario(JSON.parse(readFileSync(join(dir, f), 'utf8')));
    const bad = results.filter((r) => r.verdict !== r.expect);
    expect(bad).toEqual([]);
    expect(mismatches).toBe(0);
  });

  it('includes the Kubernetes e2e 3 namespaces × 3 pods layout', () => {
    const s = JSON.parse(readFileSync(join(dir, files.find((f) => f.includes('e2e-no-policy'))!), 'utf8'));
    expect(Object.keys(s.namespaces).sort()).toEqual(['x', 'y', 'z']);
    expect(s.pods.map((p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`).sort()).toEqual(
      ['x', 'y', 'z'].flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}/${p}`)),
    );
  });
});

describe('evaluateScenario rejects bad input with every problem and its path', () => {
  it('lists policy, pod and probe problems together', () => {
    const bad = {
      namespaces: { x: {} },
      pods: [
        { ns: 'x', name: 'a', ip: '10.244.0.1' },
        { ns: 'nope', name: 'b', ip: '10.244.0.1' },
      ],
      policies: [
        {
          kind: 'NetworkPolicy',
          metadata: { name: 'p', namespace: 'x' },
          spec: { podSelector: {}, ingress: [{ ports: [{ port: 80 }, { port: 90, endPort: 85 }] }] },
        },
      ],
      probes: [{ from: 'x/zz', to: 'x/a', port: 80 }],
    };
    let err: unknown;
    try {
      evaluateScenario(bad as ScenarioInput);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const e = err as PolicyError;
    expect([e.code, e.reason]).toEqual(['InvalidArgument', 'InvalidScenario']);
    expect(e.problems).toEqual(
      expect.arrayContaining([
        { path: 'policies[0].spec.ingress[0].ports[1].endPort', message: 'must be ≥ port' },
        { path: 'pods[1].ns', message: 'namespace nope is not declared' },
        { path: 'pods[1].ip', message: 'IP is also used by x/a' },
        { path: 'probes[0].from', message: 'unknown pod x/zz' },
      ]),
    );
  });

  it('rejects a structurally wrong scenario', () => {
    expect(() =>
      evaluateScenario({ namespaces: {}, pods: [], probes: [{ from: 'a', to: 'host', port: 0 }] }),
    ).toThrow(/probes\[0\]\.from[\s\S]*probes\[0\]\.port/);
  });
});

describe('datapath-policy CLI', () => {
  const tsx = join(pkg, '../../node_modules/.bin/tsx');
  const cli = join(pkg, 'src/cli.ts');
  const run = (...args: string[]) => spawnSync(tsx, [cli, ...args], { encoding: 'utf8' });

  it('prints one JSON line per probe and exits 0 when every expect holds', () => {
    const f = join(dir, files.find((x) => x.includes('cnp-l4-deny-beats-l3-allow'))!);
    const r = run('verdicts', f);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const s = JSON.parse(readFileSync(f, 'utf8'));
    expect(lines).toHaveLength(s.probes.length);
    expect(Object.keys(lines[0])).toEqual(['from', 'to', 'port', 'protocol', 'verdict', 'expect']);
    expect(lines[0]).toEqual({
      from: 'x/b',
      to: 'x/a',
      port: 80,
      protocol: 'TCP',
      verdict: 'deny',
      expect: 'deny',
    });
  });

  it('exits 1 when a verdict differs from its expect, 2 on invalid input', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'dpt-policy-'));
    try {
      const wrong = join(tmp, 'wrong.json');
      writeFileSync(
        wrong,
        JSON.stringify({
          namespaces: { x: {} },
          pods: [{ ns: 'x', name: 'a', ip: '10.244.0.1' }],
          policies: [
            { kind: 'NetworkPolicy', metadata: { name: 'd', namespace: 'x' }, spec: { podSelector: {} } },
          ],
          probes: [{ from: 'world:8.8.8.8', to: 'x/a', port: 80, expect: 'allow' }],
        }),
      );
      const r = run('verdicts', wrong);
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ verdict: 'deny', expect: 'allow' });
      const invalid = join(tmp, 'invalid.json');
      writeFileSync(
        invalid,
        JSON.stringify({ namespaces: {}, pods: [], probes: [{ from: 'x/a', to: 'host', port: 80 }] }),
      );
      const r2 = run('verdicts', invalid);
      expect(r2.status).toBe(2);
      expect(r2.stderr).toMatch(/probes\[0\]\.from: unknown pod x\/a/);
      expect(run('bogus', invalid).status).toBe(2);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('validates policy files', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'dpt-policy-'));
    try {
      const good = join(tmp, 'good.yaml');
      writeFileSync(
        good,
        'kind: NetworkPolicy\nmetadata: { name: a, namespace: x }\nspec: { podSelector: {} }\n',
      );
      const r = run('validate', good);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('1 valid policy object(s)\n');
      const bad = join(tmp, 'bad.yaml');
      writeFileSync(
        bad,
        'kind: NetworkPolicy\nmetadata: { name: a }\nspec: { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 85 }] }] }\n',
      );
      const r2 = run('validate', bad);
      expect(r2.status).toBe(2);
      expect(r2.stderr).toContain('spec.ingress[0].ports[0].endPort: must be ≥ port');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('explains a probe', () => {
    const f = join(dir, files.find((x) => x.includes('cnp-l4-deny-beats-l3-allow'))!);
    const r = run('explain', f, '0');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /CiliumNetworkPolicy x\/mixed ingressDeny\[0\]: Denies — peer matched, port matched/,
    );
    expect(r.stdout).toMatch(/Final verdict: DENIED/);
  });
});
