// Hostile and oversized input: every failure is a typed PolicyError with a bounded message, and the CLI reports it
// in one line with exit code 2 (issue 17, defect 9).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  evaluateScenario,
  type NetworkPolicy,
  PolicyEngine,
  PolicyError,
  parsePolicies,
  parseScenario,
  validatePolicies,
  validateScenario,
} from '../src/index.js';

const BOMB = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'kind: NetworkPolicy',
].join('\n');

function thrown(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error('did not throw');
}

function deepObject(levels: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let cur = root;
  for (let i = 0; i < levels; i++) {
    const next: Record<string, unknown> = {};
    cur.a = next;
    cur = next;
  }
  return root;
}

function deepArray(levels: number): unknown[] {
  const root: unknown[] = [];
  let cur = root;
  for (let i = 0; i < levels; i++) {
    const next: unknown[] = [];
    cur.push(next);
    cur = next;
  }
  return root;
}

describe('hostile YAML and JSON give a typed PolicyError', () => {
  it('an unresolved alias', () => {
    const e = thrown(() => parsePolicies('kind: NetworkPolicy\nmetadata: *x\n'));
    expect([e.code, e.reason]).toEqual(['InvalidArgument', 'InvalidPolicy']);
    expect(e.problems[0]?.message).toMatch(/Unresolved alias/);
  });

  it('an alias bomb (billion laughs)', () => {
    const e = thrown(() => parsePolicies(BOMB));
    expect([e.code, e.reason]).toEqual(['InvalidArgument', 'InvalidPolicy']);
    expect(e.problems[0]?.message).toMatch(/too many alias expansions/);
    expect(thrown(() => parseScenario(BOMB)).reason).toBe('InvalidScenario');
  });

  it('very deep nesting: YAML text, decoded objects and nested lists', () => {
    const yaml = thrown(() => parsePolicies(`${'['.repeat(50_000)}${']'.repeat(50_000)}`));
    expect(yaml.problems.map((p) => p.message)).toContain('YAML: nested too deeply to parse');
    const obj = thrown(() =>
      validatePolicies({ kind: 'NetworkPolicy', metadata: { name: 'x' }, spec: deepObject(100_000) }),
    );
    expect(obj.problems[0]?.message).toMatch(/nested more than \d+ levels deep/);
    const list = thrown(() => validatePolicies(deepArray(100_000)));
    expect(list.problems[0]?.message).toMatch(/nested more than \d+ levels deep/);
    const scenario = thrown(() =>
      validateScenario({ namespaces: {}, pods: [], probes: [], extra: deepObject(100_000) }),
    );
    expect([scenario.code, scenario.reason]).toEqual(['InvalidArgument', 'InvalidScenario']);
  });

  it('10 000 bad policies: every problem kept, the message capped and summarised', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => ({
      kind: 'NetworkPolicy',
      metadata: { name: `p${i}` },
      spec: { podSelector: 5 },
    }));
    const e = thrown(() => validatePolicies(many));
    expect(e.problems).toHaveLength(10_000);
    expect(e.message.length).toBeLessThan(8_000);
    expect(e.message).toMatch(/… and 9980 more problems/);
  });
});

describe('pods say namespace in scenarios too, ns stays as a deprecated alias', () => {
  const base = {
    namespaces: { x: {} },
    probes: [{ from: 'x/a', to: 'x/b', port: 80, expect: 'allow' as const }],
  };
  it('namespace and ns give the same verdicts', () => {
    const a = evaluateScenario({
      ...base,
      pods: [
        { namespace: 'x', name: 'a', ip: '10.244.0.1' },
        { namespace: 'x', name: 'b', ip: '10.244.0.2' },
      ],
    });
    const b = evaluateScenario({
      ...base,
      pods: [
        { ns: 'x', name: 'a', ip: '10.244.0.1' },
        { ns: 'x', name: 'b', ip: '10.244.0.2' },
      ],
    });
    expect(a).toEqual(b);
    expect(
      validateScenario({ ...base, pods: [{ ns: 'x', name: 'a', ip: '10.244.0.1' }], probes: [] }).pods[0],
    ).toMatchObject({
      namespace: 'x',
    });
  });
  it('a pod with neither, or with two different ones, is refused with its path', () => {
    const e = thrown(() =>
      validateScenario({
        namespaces: { x: {}, y: {} },
        pods: [
          { name: 'a', ip: '10.244.0.1' },
          { namespace: 'x', ns: 'y', name: 'b', ip: '10.244.0.2' },
        ],
        probes: [],
      }),
    );
    expect(e.problems).toEqual(
      expect.arrayContaining([
        { path: 'pods[0].namespace', message: 'required' },
        { path: 'pods[1].ns', message: 'differs from namespace x' },
      ]),
    );
  });
  it('the engine takes typed policy objects', () => {
    const engine = new PolicyEngine();
    engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.1' }] });
    // A typo in a field is a compile error now (policies were `unknown`).
    const typo = { podSelectr: {} };
    // @ts-expect-error podSelectr is not a NetworkPolicy spec field
    const bad: NetworkPolicy = { kind: 'NetworkPolicy', metadata: { name: 'd', namespace: 'x' }, spec: typo };
    expect(() => engine.upsertPolicy(bad)).toThrow(PolicyError);
  });
});

describe('datapath-policy CLI on bad input: one line, no stack trace, exit 2', () => {
  const pkg = fileURLToPath(new URL('..', import.meta.url));
  const tsx = join(pkg, '../../node_modules/.bin/tsx');
  const cli = join(pkg, 'src/cli.ts');
  const run = (...args: string[]) => spawnSync(tsx, [cli, ...args], { encoding: 'utf8' });
  const tmp = mkdtempSync(join(tmpdir(), 'dpt-policy-hostile-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each([
    ['an alias bomb', 'validate', BOMB, /too many alias expansions/],
    ['an unresolved alias', 'validate', 'kind: NetworkPolicy\nmetadata: *x\n', /Unresolved alias/],
    ['deep nesting', 'verdicts', `${'['.repeat(50_000)}${']'.repeat(50_000)}`, /nested too deeply/],
  ])('%s', (_name, cmd, text, message) => {
    const f = join(tmp, `${cmd}-${text.length}.yaml`);
    writeFileSync(f, text);
    const r = run(cmd, f);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a directory argument', () => {
    const r = run('validate', tmp);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`datapath-policy: cannot read ${tmp}: is a directory, not a file\n`);
  });

  it('reads YAML scenarios', () => {
    const f = join(tmp, 'scenario.yaml');
    writeFileSync(
      f,
      'namespaces: { x: {} }\npods:\n  - { namespace: x, name: a, ip: 10.244.0.1 }\nprobes:\n  - { from: host, to: x/a, port: 80, expect: allow }\n',
    );
    const r = run('verdicts', f);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'allow' });
  });
});

describe('endpoint ids given by the caller', () => {
  it('are kept, never reused by allocation, and refused when taken or changed', () => {
    const engine = new PolicyEngine();
    engine.load({
      namespaces: { x: {} },
      pods: [
        { namespace: 'x', name: 'auto', ip: '10.244.0.1' },
        { namespace: 'x', name: 'a', ip: '10.244.0.2', endpointId: 1 },
      ],
    });
    const ids = engine.state().endpoints;
    expect(ids.get('x/a')?.endpointId).toBe(1);
    expect(ids.get('x/auto')?.endpointId).toBe(2);
    const changes = engine.upsertPod({ namespace: 'x', name: 'b', ip: '10.244.0.3', endpointId: 77 });
    expect(changes.filter((c) => c.map === 'policy').every((c) => c.endpointId === 77)).toBe(true);
    expect(() => engine.upsertPod({ namespace: 'x', name: 'c', ip: '10.244.0.4', endpointId: 77 })).toThrow(
      /endpoint id 77 is used by x\/b/,
    );
    expect(() => engine.upsertPod({ namespace: 'x', name: 'b', ip: '10.244.0.3', endpointId: 78 })).toThrow(
      /cannot change/,
    );
    expect(engine.upsertPod({ namespace: 'x', name: 'd', ip: '10.244.0.5' }).length).toBeGreaterThan(0);
    expect(engine.state().endpoints.get('x/d')?.endpointId).toBe(3);
    engine.deletePod('x', 'b');
    expect(
      engine.upsertPod({ namespace: 'x', name: 'c', ip: '10.244.0.4', endpointId: 77 }).length,
    ).toBeGreaterThan(0);
  });
});
