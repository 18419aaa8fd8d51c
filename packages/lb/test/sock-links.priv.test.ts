// SocketLb's pinned cgroup links (linkPinDir), against the real kernel with bpftool as the oracle: they stay
// attached after close(), a second attach adopts them (same links, the new programs), a pin whose link is for
// another cgroup is detached there and replaced, detach() removes links and pins.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { SocketLb } from '../src/datapath.js';
import { cgroup2Root } from './lab.js';

/** `bpftool cgroup show DIR`: program id per attach type. */
function attached(dir: string): Record<string, number> {
  const r = spawnSync('bpftool', ['-j', 'cgroup', 'show', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool cgroup show ${dir}: ${r.stderr}`);
  const out: Record<string, number> = {};
  for (const e of JSON.parse(r.stdout.trim() || '[]') as { id: number; attach_type: string }[]) {
    expect(out[e.attach_type], `${e.attach_type} attached twice`).toBeUndefined();
    out[e.attach_type] = e.id;
  }
  return out;
}

/** `bpftool link show pinned`: link id per pin. */
function links(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of readdirSync(dir)) {
    const r = spawnSync('bpftool', ['-j', 'link', 'show', 'pinned', join(dir, name)], { encoding: 'utf8' });
    out[name] = (JSON.parse(r.stdout) as { id: number }).id;
  }
  return out;
}

it('pinned socket-LB links: kept after close(), adopted by the next attach (new programs, same links), moved off another cgroup, removed by detach()', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const cgA = join(cgroup2Root(), `${prefix}-a`);
  const cgB = join(cgroup2Root(), `${prefix}-b`);
  const pinDir = mkdtempSync(join('/sys/fs/bpf', `${prefix}-`));
  const linkDir = join(pinDir, 'links');
  mkdirSync(cgA);
  mkdirSync(cgB);
  const handles: SocketLb[] = [];
  try {
    const opts = { tableSize: 251 as const, serviceMapMax: 64, pinDir, pinByName: true, linkPinDir: linkDir };
    const first = await SocketLb.attach({ ...opts, cgroupPath: cgA });
    handles.push(first);
    const progs1 = attached(cgA);
    expect(Object.keys(progs1)).toHaveLength(9);
    const links1 = links(linkDir);
    expect(Object.keys(links1)).toHaveLength(9);
    first.close();
    expect(attached(cgA)).toEqual(progs1); // pinned: still attached

    const second = await SocketLb.attach({ ...opts, cgroupPath: cgA });
    handles.push(second);
    const progs2 = attached(cgA);
    expect(Object.keys(progs2).sort()).toEqual(Object.keys(progs1).sort());
    for (const t of Object.keys(progs1)) expect(progs2[t], t).not.toBe(progs1[t]); // the new programs
    expect(links(linkDir)).toEqual(links1); // in the same links
    second.close();

    // the same pin directory for another cgroup: the old links leave cgroup A, new ones go to B
    const third = await SocketLb.attach({ ...opts, cgroupPath: cgB });
    handles.push(third);
    expect(attached(cgA)).toEqual({});
    expect(Object.keys(attached(cgB))).toHaveLength(9);
    for (const [hook, id] of Object.entries(links(linkDir))) expect(id, hook).not.toBe(links1[hook]);
    third.detach();
    expect(attached(cgB)).toEqual({});
    expect(readdirSync(linkDir)).toEqual([]);
  } finally {
    for (const h of handles) h.close();
    rmSync(pinDir, { recursive: true, force: true });
    for (const d of [cgA, cgB]) if (existsSync(d)) rmdirSync(d);
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
});
