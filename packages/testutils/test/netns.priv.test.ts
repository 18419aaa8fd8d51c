import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ipJson, requireRoot, runPrefix, withNetns } from '../src/index.js';

describe('withNetns', () => {
  it('creates visible namespaces and deletes them afterwards', async (ctx) => {
    requireRoot(ctx);
    let names: string[] = [];
    await withNetns(2, (a, b) => {
      names = [a.name, b.name];
      const listed = ipJson<{ name: string }[]>(['netns', 'list']).map((n) => n.name);
      expect(listed).toEqual(expect.arrayContaining(names));
      expect(a.name.startsWith(runPrefix())).toBe(true);
      const links = ipJson<{ ifname: string; operstate: string }[]>(['link', 'show', 'lo'], a.name);
      expect(links[0]?.ifname).toBe('lo');
    });
    for (const n of names) expect(existsSync(`/run/netns/${n}`)).toBe(false);
  });

  it('deletes the namespace even when the body throws', async (ctx) => {
    requireRoot(ctx);
    let name = '';
    await expect(
      withNetns((ns) => {
        name = ns.name;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(existsSync(`/run/netns/${name}`)).toBe(false);
  });
});
