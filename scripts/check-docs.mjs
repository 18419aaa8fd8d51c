#!/usr/bin/env node
// Checks the Markdown a user reads (every packages/*/README.md, examples/*/README.md, docs/**/*.md and the
// root README.md and BENCHMARKS.md): each relative link must name a file or directory that exists inside this repository
// (npm renders a package README against the repository, so a link that leaves it, or that points at a
// file that is not there, is broken for every reader); and no page may cite a path outside the
// repository (`../shared/…`, `/work/…`), which a user's clone does not have. Run by `make test`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(process.argv[2] ?? '.');

function markdownUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const full = join(dir, entry);
    if (entry === 'node_modules' || entry === 'api' || entry.startsWith('.')) return [];
    if (statSync(full).isDirectory()) return markdownUnder(full);
    return entry.endsWith('.md') ? [full] : [];
  });
}

const files = [
  join(root, 'README.md'),
  join(root, 'BENCHMARKS.md'),
  ...['packages', 'examples'].flatMap((top) =>
    existsSync(join(root, top))
      ? readdirSync(join(root, top))
          .map((d) => join(root, top, d, 'README.md'))
          .filter((f) => existsSync(f))
      : [],
  ),
  ...markdownUnder(join(root, 'docs')),
].filter((f) => existsSync(f));

/** Link targets of a Markdown text, outside fenced code blocks: inline `[t](x)`, images, and `[r]: x`. */
export function linkTargets(text) {
  const prose = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
  const out = [];
  for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
    out.push(m[1]);
  for (const m of prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)) out.push(m[1]);
  return out;
}

// Paths outside the repository that have been cited in prose or code spans.
const OUTSIDE = /(?:^|[\s(`'"])(?:\.\.\/)*shared\/(?:bench|reference)\/|\/work\/(?:shared|main|wt)\b/;

const problems = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const where = relative(root, file);
  for (const target of linkTargets(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // URL, mailto:, anchor
    const path = decodeURIComponent(target.split('#')[0].split('?')[0]);
    if (path === '') continue;
    const abs = path.startsWith('/') ? join(root, path) : resolve(dirname(file), path);
    if (abs !== root && !abs.startsWith(root + sep)) {
      problems.push(`${where}: link to ${target} leaves the repository`);
    } else if (!existsSync(abs)) {
      problems.push(`${where}: link to ${target}: no such file (${relative(root, abs)})`);
    }
  }
  text.split('\n').forEach((line, i) => {
    if (OUTSIDE.test(line))
      problems.push(`${where}:${i + 1}: cites a path outside the repository: ${line.trim()}`);
  });
  if (text.includes('{@includeCode')) {
    problems.push(
      `${where}: uses {@includeCode}: it shows no code when read as Markdown; write the code inline`,
    );
  }
}
if (problems.length > 0) {
  console.error(`check-docs: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-docs: ${files.length} Markdown files, every relative link resolves inside the repository`);
