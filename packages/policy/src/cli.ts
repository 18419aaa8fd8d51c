#!/usr/bin/env node
// datapath-policy: evaluate and explain policy scenarios, validate policy files.
import { readFileSync } from 'node:fs';
import { PolicyError } from './errors.js';
import { parsePolicies } from './parse.js';
import { evaluateScenario, explainScenarioProbe, parseScenario } from './scenario.js';
import { formatExplanation } from './verdict.js';

const USAGE = `usage:
  datapath-policy verdicts <scenario.yaml|json>          one JSON line per probe; exit 1 if any differs from its expect
  datapath-policy explain <scenario.yaml|json> <probe#>  why probe number N (from 0) is allowed or denied
  datapath-policy validate <policy.yaml|json>            parse and validate policies; print every problem
exit codes: 0 ok, 1 a probe differs from its expect, 2 bad usage or input`;

/** A failure the CLI reports in one line (exit 2). */
class InputError extends Error {}

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'EISDIR'
        ? 'is a directory, not a file'
        : e.code === 'ENOENT'
          ? 'no such file'
          : e.code === 'EACCES'
            ? 'permission denied'
            : (e.message ?? String(err));
    throw new InputError(`cannot read ${file}: ${why}`);
  }
}

function main(argv: string[]): number {
  const [cmd, file, arg] = argv;
  if (cmd === undefined || file === undefined || cmd === '--help' || cmd === '-h') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  switch (cmd) {
    case 'verdicts': {
      const { results, mismatches } = evaluateScenario(parseScenario(read(file)));
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
      const scenario = parseScenario(read(file));
      process.stdout.write(`${formatExplanation(explainScenarioProbe(scenario, index))}\n`);
      return 0;
    }
    case 'validate': {
      const policies = parsePolicies(read(file));
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
  // Every failure is one message and exit code 2, never a stack trace (DATAPATH_DEBUG=1 shows it).
  const message =
    err instanceof PolicyError
      ? `${err.message} [${err.code}]`
      : err instanceof InputError
        ? err.message
        : `unexpected failure: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  process.stderr.write(`datapath-policy: ${message}\n`);
  if (process.env.DATAPATH_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = 2;
}
