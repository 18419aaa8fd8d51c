/**
 * Pod setup on a node with 16 vs SETUP_LARGE (1000) local pods, alone (`node --import tsx
 * bench/profile-podscale.ts`, root): the measure of the cluster benchmark's pod setup row
 * (bench/setup-scale.ts), with the per-stage medians of both phases. Add `--cpu-prof` to node's flags for a
 * profile of everything, or set PROFILE=<file.cpuprofile> for one of the timed calls only (not the fill).
 * Environment: SETUP_SAMPLES (32), SETUP_SMALL (16), SETUP_LARGE (1000), RUNS (1), PROFILE.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { setupScale } from './setup-scale.js';

const RUNS = Number(process.env.RUNS ?? 1);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
for (let run = 0; run < RUNS; run++) {
  const session = new Session();
  const r = await setupScale({
    sampling: async (on) => {
      if (process.env.PROFILE === undefined) return;
      if (on) {
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 100 });
        await session.post('Profiler.start');
      } else {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(process.env.PROFILE, JSON.stringify(profile));
        session.disconnect();
      }
    },
  });
  const small = pct(r.small, 50);
  const large = pct(r.large, 50);
  console.log(
    `run ${run} (load ${r.load.map((l) => l.toFixed(1)).join(' → ')}): p50 ${small.toFixed(2)} → ${large.toFixed(2)} ms, ratio ${(large / small).toFixed(2)}x`,
  );
  const stages = [...new Set(r.stageMedians.map(([k]) => k.split(' ')[1]!))];
  const at = (phase: string, st: string) =>
    r.stageMedians.find(([k]) => k === `${phase} ${st}`)?.[1] ?? Number.NaN;
  console.log(
    `  ${stages.map((st) => `${st} ${at('small', st).toFixed(2)} → ${at('large', st).toFixed(2)}`).join(', ')}`,
  );
}
