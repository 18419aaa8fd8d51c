import { closeSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeFds, leakedFds, openFds, processLifetime } from '../src/fds.js';

describe('fd leak check', () => {
  it('sees a descriptor opened after the first snapshot, and not one closed again', () => {
    const before = openFds();
    const fd = openSync('/proc/version', 'r');
    let leaked = leakedFds(before, openFds());
    expect(leaked).toEqual([{ fd, target: '/proc/version' }]);
    expect(describeFds(leaked)).toBe(`fd ${fd} → /proc/version`);
    closeSync(fd);
    leaked = leakedFds(before, openFds());
    expect(leaked).toEqual([]);
  });

  it('ignores what the runtime opens for itself, and a number reused for another file counts', () => {
    const before = [
      { fd: 3, target: 'anon_inode:[eventpoll]' },
      { fd: 9, target: '/tmp/a' },
    ];
    const after = [
      ...before,
      { fd: 10, target: 'anon_inode:[eventfd]' },
      { fd: 11, target: 'anon_inode:[signalfd]' },
      { fd: 12, target: '/dev/null' },
      { fd: 13, target: 'anon_inode:bpf-map' },
      { fd: 14, target: 'net:[4026532301]' },
      { fd: 15, target: 'socket:[123]' },
    ];
    expect(leakedFds(before, after).map((f) => f.fd)).toEqual([13, 14, 15]);
    expect(leakedFds(before, [{ fd: 9, target: '/tmp/b' }])).toEqual([{ fd: 9, target: '/tmp/b' }]);
  });

  it('does not count what a test declared process-lifetime', () => {
    const before = openFds();
    const fd = processLifetime(() => openSync('/proc/version', 'r'));
    try {
      expect(leakedFds(before, openFds())).toEqual([]);
    } finally {
      closeSync(fd);
    }
  });
});
