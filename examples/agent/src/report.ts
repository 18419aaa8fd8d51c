/** Human-readable output of a scenario run: the connectivity matrix and the probe table. */
import { matrix, table } from './format.js';
import type { ProbeResult } from './probes.js';
import type { RunReport } from './run.js';

function mark(r: ProbeResult): string {
  if (r.measured === 'skipped') return '-';
  const base = r.measured === 'allow' ? '✓' : '✗';
  return r.mismatch ? `${base}!` : base;
}

function ordered(values: Iterable<string>): string[] {
  const rank = (e: string) => (e === 'host' ? 1 : e.startsWith('world:') ? 2 : 0);
  return [...new Set(values)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/**
 * The connectivity matrix (rows: from, columns: to; ✓ delivered, ✗ dropped, ! disagrees with the
 * compiled verdict or with `expect`, - not sent) followed by one line per probe.
 */
export function renderReport(report: RunReport): string {
  const { results } = report;
  const froms = ordered(results.map((r) => r.from));
  const tos = ordered(results.map((r) => r.to));
  const cells = new Map<string, ProbeResult[]>();
  for (const r of results) {
    const k = `${r.from}\0${r.to}`;
    cells.set(k, [...(cells.get(k) ?? []), r]);
  }
  const lines: string[] = [];
  const nodes = report.pods.some((p) => p.node !== undefined);
  lines.push(
    table(
      [...(nodes ? ['NODE'] : []), 'POD', 'IP', 'IDENTITY', 'ENDPOINT', 'HOST VETH', 'ATTACH'],
      report.pods.map((p) => [
        ...(nodes ? [p.node ?? ''] : []),
        p.key,
        p.ip,
        String(p.identity),
        String(p.lxcId),
        p.hostIfname,
        p.attach,
      ]),
    ),
  );
  lines.push('');
  lines.push('connectivity (real packets; ✓ delivered, ✗ dropped, ! mismatch, - not sent):');
  lines.push(
    matrix(froms, tos, (f, t) => {
      const rs = cells.get(`${f}\0${t}`);
      return rs === undefined ? undefined : rs.map(mark).join(' ');
    }),
  );
  lines.push('');
  lines.push(
    table(
      ['FROM', 'TO', 'PORT', 'PACKETS', 'COMPILED', 'EXPECT', '', 'DETAIL'],
      results.map((r) => [
        r.from,
        r.to,
        `${r.port}/${r.protocol}`,
        r.measured,
        r.compiled,
        r.expect ?? '',
        r.measured === 'skipped' ? '-' : r.mismatch ? 'MISMATCH' : 'ok',
        `${r.detail}${r.ms > 0 ? ` (${r.ms.toFixed(1)} ms)` : ''}`,
      ]),
    ),
  );
  lines.push('');
  const sent = results.length - report.skipped;
  lines.push(
    `${sent} probes sent, ${sent - report.mismatches} as expected, ${report.mismatches} mismatched, ` +
      `${report.skipped} not sent; setup ${report.setupMs.toFixed(0)} ms, probes ${report.probeMs.toFixed(0)} ms`,
  );
  return lines.join('\n');
}
