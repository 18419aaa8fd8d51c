import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeLeaks, scanLeaks } from '../src/leaks.js';

const made: string[] = [];
afterEach(() => {
  for (const root of made.splice(0)) rmSync(root, { recursive: true, force: true });
});

function fakeRoots() {
  const root = mkdtempSync(join(tmpdir(), 'leaks-'));
  made.push(root);
  const roots = { netnsDir: join(root, 'netns'), sysClassNet: join(root, 'net'), bpffs: join(root, 'bpf') };
  for (const d of Object.values(roots)) mkdirSync(d);
  return roots;
}

describe('scanLeaks', () => {
  it('reports nothing for a clean machine', () => {
    const roots = fakeRoots();
    writeFileSync(join(roots.netnsDir, 'other'), '');
    mkdirSync(join(roots.sysClassNet, 'eth0'));
    const report = scanLeaks('dpt1234', roots);
    expect(report).toEqual({ netns: [], links: [], pins: [] });
    expect(describeLeaks(report)).toBeUndefined();
  });

  it('finds prefixed namespaces, links and nested pins, and only those of this run', () => {
    const roots = fakeRoots();
    writeFileSync(join(roots.netnsDir, 'dpt1234aa'), '');
    writeFileSync(join(roots.netnsDir, 'dpt9999aa'), '');
    mkdirSync(join(roots.sysClassNet, 'dpt1234bb'));
    mkdirSync(join(roots.bpffs, 'tc', 'globals'), { recursive: true });
    writeFileSync(join(roots.bpffs, 'tc', 'globals', 'dpt1234cc'), '');
    const report = scanLeaks('dpt1234', roots);
    expect(report.netns).toEqual(['dpt1234aa']);
    expect(report.links).toEqual(['dpt1234bb']);
    expect(report.pins).toEqual([join(roots.bpffs, 'tc', 'globals', 'dpt1234cc')]);
    expect(describeLeaks(report)).toMatch(/namespaces: dpt1234aa.*links.*dpt1234bb.*pins/);
  });
});
