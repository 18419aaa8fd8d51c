import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';

/** The oracle: `bpftool btf dump file OBJ format raw`, parsed into struct/union sizes and member byte offsets. */
export function bpftoolLayouts(
  object: string,
): Map<string, { kind: string; size: number; members: Map<string, number> }> {
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], {
    encoding: 'utf8',
  });
  const out = new Map<string, { kind: string; size: number; members: Map<string, number> }>();
  let cur: { kind: string; size: number; members: Map<string, number> } | undefined;
  for (const line of text.split('\n')) {
    const head = /^\[\d+\] (STRUCT|UNION) '([^']*)' size=(\d+)/.exec(line);
    if (head !== null) {
      cur = { kind: head[1]!.toLowerCase(), size: Number(head[3]), members: new Map() };
      if (head[2] !== '(anon)') out.set(head[2]!, cur);
      continue;
    }
    const member = /^\t'([^']*)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (member !== null && cur !== undefined) cur.members.set(member[1]!, Number(member[2]) / 8);
    else if (line.startsWith('[')) cur = undefined;
  }
  return out;
}

const camel = (s: string) => s.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Every generated struct/union codec's size and field offsets against bpftool's raw BTF dump. */
export function expectLayoutsMatch(
  types: Record<string, { size: number; offsets?: Record<string, number> }>,
  object: string,
) {
  const oracle = bpftoolLayouts(object);
  for (const [name, codec] of Object.entries(types)) {
    const want = oracle.get(name);
    expect(want, `bpftool knows ${name}`).toBeDefined();
    expect(codec.size, `sizeof(${name})`).toBe(want!.size);
    for (const [member, offset] of want!.members) {
      if (want!.kind === 'union') expect(offset).toBe(0);
      else expect(codec.offsets?.[camel(member)], `offsetof(${name}, ${member})`).toBe(offset);
    }
  }
}
