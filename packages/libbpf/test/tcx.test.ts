import { describe, expect, it } from 'vitest';
import { tcAttach, tcxAttach, tcxQuery, xdpAttach } from '../src/index.js';

const invalid = expect.objectContaining({ name: 'BpfError', code: 'InvalidArgument', errno: undefined });

describe('argument checks before any syscall', () => {
  it('tcxAttach rejects bad directions, anchors and revisions', () => {
    expect(() => tcxAttach(3, 1, 'sideways' as never)).toThrow(invalid);
    expect(() => tcxAttach(3, -1, 'ingress')).toThrow(invalid);
    expect(() => tcxAttach(3, 1, 'ingress', { anchor: { kind: 'before', linkId: -2 } })).toThrow(invalid);
    expect(() => tcxAttach(3, 1, 'ingress', { anchor: { kind: 'middle' } as never })).toThrow(invalid);
    expect(() => tcxAttach(3, 1, 'ingress', { expectedRevision: 0n })).toThrow(invalid);
    expect(() => tcxQuery(1, 'up' as never)).toThrow(invalid);
  });

  it('tcAttach and xdpAttach reject bad handles, priorities, devices and modes', () => {
    expect(() => tcAttach({ ifindex: 1, direction: 'ingress', handle: 0, priority: 1 }, 3)).toThrow(invalid);
    expect(() => tcAttach({ ifindex: 1, direction: 'ingress', handle: 1, priority: 70000 }, 3)).toThrow(
      invalid,
    );
    expect(() => tcAttach({ ifindex: 0, direction: 'ingress', handle: 1, priority: 1 }, 3)).toThrow(invalid);
    expect(() => tcAttach({ ifindex: 1, direction: 'ingress', handle: 1, priority: 1 }, -1)).toThrow(invalid);
    expect(() => xdpAttach(3, 1, 'offload' as never)).toThrow(invalid);
    expect(() => xdpAttach(3, 0, 'generic')).toThrow(invalid);
  });
});
