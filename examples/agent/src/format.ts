/** Plain-text tables for the CLI (no colours: output is meant to be pasted into issues). */

/** Renders rows as a left-aligned table with a header line. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * Renders a from × to matrix: `cell(from, to)` returns the mark to print, or undefined when no
 * probe covers that pair.
 */
export function matrix(
  froms: readonly string[],
  tos: readonly string[],
  cell: (from: string, to: string) => string | undefined,
): string {
  const headers = ['', ...tos.map((_t, i) => String(i + 1))];
  const rows = froms.map((f) => [f, ...tos.map((t) => cell(f, t) ?? '.')]);
  const legend = tos.map((t, i) => `${i + 1}=${t}`).join('  ');
  return `${table(headers, rows)}\n  columns: ${legend}`;
}
