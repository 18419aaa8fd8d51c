/**
 * Runs every scenario of @datapath/policy's library through the agent with real packets and lists
 * each probe whose packets disagree with `expect` or with the compiled verdict
 * (`pnpm exec tsx scripts/run-library.ts [filter]`, root). Exit code 1 when any disagree.
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenario } from '../src/policy.js';
import { runScenario } from '../src/run.js';

const library = fileURLToPath(new URL('../../../packages/policy/scenarios/', import.meta.url));
const filter = process.argv[2] ?? '';
const files = readdirSync(library)
  .filter((f) => f.endsWith('.json') && f.includes(filter))
  .sort();
let bad = 0;
for (const file of files) {
  const prefix = `dplib${process.pid % 100000}`;
  try {
    const r = await runScenario(loadScenario(join(library, file)), {
      name: prefix,
      prefix,
      stateDir: join(tmpdir(), `${prefix}-state`),
      timeoutMs: 800,
      replace: true,
    });
    const wrong = r.results.filter((x) => x.mismatch);
    bad += wrong.length;
    console.log(
      `${wrong.length === 0 ? 'ok  ' : 'FAIL'} ${file}: ${r.results.length} probes, ${r.skipped} not sent, ${wrong.length} mismatches`,
    );
    for (const w of wrong) {
      console.log(
        `     ${w.from} → ${w.to}:${w.port}/${w.protocol} measured ${w.measured} compiled ${w.compiled} expect ${w.expect ?? '-'} (${w.detail})`,
      );
    }
  } catch (err) {
    bad++;
    console.log(`ERR  ${file}: ${(err as Error).message}`);
  }
}
process.exit(bad > 0 ? 1 : 0);
