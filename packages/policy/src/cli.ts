#!/usr/bin/env node
// datapath-policy: evaluate and explain policy scenarios, validate policy files.
import { readFileSync } from 'node:fs';
import { PolicyError } from './errors.js';
import { parsePolicies } from './parse.js';
import { evaluateScenario, explainScenarioProbe } from './scenario.js';
import { formatExplanation } from './verdict.js';

const USAGE = `usage:
  datapath-policy verdicts <scenario.json>          one JSON line per probe; exit 1 if any differs from its expect
  datapath-policy explain <scenario.json> <probe#>  why probe number N (from 0) is allowed or denied
  datapath-policy validate <policy.yaml|json>       parse and validate policies; print every problem`;

function main(argv: string[]): number {
  const [cmd, file, arg] = argv;
  if (cmd === undefined || file === undefined || cmd === '--help' || cmd === '-h') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const text = readFileSync(file, 'utf8');
  switch (cmd) {
    case 'verdicts': {
      const { results, mismatches } = evaluateScenario(JSON.parse(text));
      for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
      if (mismatches > 0) process.stderr.write(`${mismatches} probe(s) differ from their expect\n`);
      return mismatches > 0 ? 1 : 0;
    }
    case 'explain': {
      const index = Number(arg);
      if (arg === undefined || !Number.isInteger(index) || index < 0) {
        process.stderr.write(`${USAGE}\n`);
        return 2;
      }
      process.stdout.write(`${formatExplanation(explainScenarioProbe(JSON.parse(text), index))}\n`);
      return 0;
    }
    case 'validate': {
      const policies = parsePolicies(text);
      process.stdout.write(`${policies.length} valid policy object(s)\n`);
      return 0;
    }
    default:
      process.stderr.write(`unknown command ${cmd}\n${USAGE}\n`);
      return 2;
  }
}

// A closed pipe (`datapath-policy verdicts f.json | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  if (
    err instanceof PolicyError ||
    err instanceof SyntaxError ||
    (err as NodeJS.ErrnoException).code === 'ENOENT'
  ) {
    process.stderr.write(`datapath-policy: ${(err as Error).message}\n`);
    process.exitCode = 2;
  } else throw err;
}
