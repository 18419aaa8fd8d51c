// Runs inside the benchmark's network namespace (started by bench/run.ts with nsenter --net); prints JSON.
import { execFileSync } from 'node:child_process';
import { objPin } from '@datapath/libbpf';
import { type Link, load, openObject, tcAttach, tcxAttach } from '../src/index.js';

const [objPath, devPrefix, countArg, pinPath, endpointsArg] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const count = Number(countArg);
const endpoints = Number(endpointsArg);
const devs = Array.from({ length: count }, (_, i) => `${devPrefix}${i}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => performance.now();

const template = openObject(objPath);
const out: Record<string, number> = {};

// 1. Per endpoint, from a cached object: spec copy + constant + load, then a tcx (or legacy tc) attach.
for (const kind of ['tcx', 'tc'] as const) {
  const loads: number[] = [];
  const totals: number[] = [];
  const held: Array<{ close(): void }> = [];
  const links: Link[] = [];
  const WARMUP = 3; // first iterations (JIT, caches) are not timed
  for (let i = 0; i < endpoints + WARMUP; i++) {
    const t = now();
    const spec = template.copy();
    spec.setConstant('endpoint_id', i + 1);
    const coll = load(spec);
    const loaded = now();
    const dev = devs[i]!;
    const link =
      kind === 'tcx'
        ? tcxAttach(coll.program('endpoint'), { ifname: dev, direction: 'ingress' })
        : tcAttach(coll.program('endpoint'), { ifname: dev, direction: 'ingress', handle: 5, priority: 5 });
    if (i >= WARMUP) {
      totals.push(now() - t);
      loads.push(loaded - t);
    }
    held.push(coll);
    links.push(link);
  }
  out[`${kind}LoadMs`] = median(loads);
  out[`${kind}LoadAttachMs`] = median(totals);
  for (const l of links)
    if (kind === 'tc') l.detach();
    else l.close();
  for (const h of held) h.close();
}

// Baseline: `tc filter add … bpf da obj` spawned per endpoint (tc loads the ELF and attaches).
{
  const times: number[] = [];
  for (let i = 0; i < endpoints; i++) {
    const t = now();
    execFileSync(
      'tc',
      [
        'filter',
        'add',
        'dev',
        devs[i]!,
        'ingress',
        'pref',
        '1',
        'handle',
        '1',
        'bpf',
        'da',
        'obj',
        objPath,
        'sec',
        'tc',
      ],
      {
        stdio: 'ignore',
      },
    );
    times.push(now() - t);
  }
  out.tcObjSpawnMs = median(times);
  for (let i = 0; i < endpoints; i++)
    execFileSync('tc', ['filter', 'del', 'dev', devs[i]!, 'ingress'], { stdio: 'ignore' });
}

// 2. One program attached to every device: tcx links vs legacy tc (libbpf) vs spawned `tc filter add … pinned`.
const coll = load(template.copy());
const prog = coll.program('endpoint');
objPin(prog.fd, pinPath);
{
  const links: Link[] = [];
  const t = now();
  for (const dev of devs) links.push(tcxAttach(prog, { ifname: dev, direction: 'ingress' }));
  out.tcxAttachMs = (now() - t) / count;
  for (const l of links) l.close();
}
{
  const links: Link[] = [];
  const t = now();
  for (const dev of devs)
    links.push(tcAttach(prog, { ifname: dev, direction: 'ingress', handle: 2, priority: 2 }));
  out.tcAttachMs = (now() - t) / count;
  for (const l of links) l.detach();
}
{
  const t = now();
  for (const dev of devs) {
    execFileSync(
      'tc',
      ['filter', 'add', 'dev', dev, 'ingress', 'pref', '3', 'handle', '3', 'bpf', 'da', 'pinned', pinPath],
      { stdio: 'ignore' },
    );
  }
  out.tcPinnedSpawnMs = (now() - t) / count;
}
coll.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
