import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathError, isErrorCode } from '@datapath/errors';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { loadScenario } from '../src/policy.js';

describe('AgentError shares the SDK error base', () => {
  it('a bad scenario is a DatapathError: InvalidArgument with reason InvalidScenario', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpa-errors-'));
    let err: unknown;
    try {
      const file = join(dir, 's.yaml');
      writeFileSync(file, 'namespaces: {}\npods: [{ namespace: x }]\nprobes: []\n');
      loadScenario(file);
    } catch (e) {
      err = e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toBeInstanceOf(DatapathError);
    const e = err as AgentError;
    expect([e.name, e.code, e.reason]).toEqual(['AgentError', 'InvalidArgument', 'InvalidScenario']);
  });

  it('takes the code of the SDK error a datapath failure wraps', () => {
    const cause = new DatapathError('PermissionDenied', 'no CAP_BPF');
    const e = new AgentError('DatapathFailed', 'loading', { cause });
    expect([e.code, e.reason, e.cause]).toEqual(['PermissionDenied', 'DatapathFailed', cause]);
    expect(new AgentError('DatapathFailed', 'x').code).toBe('Unknown');
    expect(isErrorCode(new AgentError('NotRunning', 'x').code)).toBe(true);
  });
});
