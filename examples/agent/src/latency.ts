/**
 * The agent's own latencies (pod setup, policy apply), as a journal in the state directory: the
 * commands run in short-lived processes (`agent pod add`, `agent policy apply`) while the metrics
 * endpoint lives in `agent serve`, so every process appends one line per operation and the server
 * turns the lines it has not seen yet into histogram observations at each scrape.
 */
import { appendFileSync, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** What is timed. */
export type LatencyKind = 'pod_setup' | 'policy_apply';

/** One timed operation. */
export interface LatencySample {
  kind: LatencyKind;
  seconds: number;
}

/** Path of the journal in a state directory. */
export function latencyPath(stateDir: string): string {
  return join(stateDir, 'latency.log');
}

/**
 * Appends one sample (a single `write` with O_APPEND: concurrent writers do not interleave). Best
 * effort: a journal that cannot be written never fails the operation it measures.
 */
export function recordLatency(stateDir: string, kind: LatencyKind, seconds: number): void {
  try {
    appendFileSync(latencyPath(stateDir), `${kind} ${seconds.toFixed(6)}\n`);
  } catch {
    // the state directory is gone (agent removed): nothing to report to
  }
}

/** Reads the journal from byte `offset`: the complete lines after it and the offset after the last one. */
export function readLatencies(
  stateDir: string,
  offset: number,
): { samples: LatencySample[]; offset: number } {
  let fd: number;
  try {
    fd = openSync(latencyPath(stateDir), 'r');
  } catch {
    return { samples: [], offset };
  }
  try {
    const size = fstatSync(fd).size;
    if (size < offset) offset = 0; // truncated or recreated
    const buf = Buffer.alloc(size - offset);
    const n = buf.length === 0 ? 0 : readSync(fd, buf, 0, buf.length, offset);
    const text = buf.subarray(0, n).toString('utf8');
    const end = text.lastIndexOf('\n') + 1;
    const samples: LatencySample[] = [];
    for (const line of text.slice(0, end).split('\n')) {
      const [kind, s] = line.split(' ');
      const seconds = Number(s);
      if ((kind === 'pod_setup' || kind === 'policy_apply') && Number.isFinite(seconds))
        samples.push({ kind, seconds });
    }
    return { samples, offset: offset + Buffer.byteLength(text.slice(0, end)) };
  } finally {
    closeSync(fd);
  }
}
