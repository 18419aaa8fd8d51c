// Regenerates test/golden/rtnetlink.golden.json: sends every request of test/golden/cases.ts to the
// real kernel inside a throwaway network namespace (it refuses to touch any other), and stores the
// request bytes and the kernel's reply messages as hex. Not a test: run it by hand when the codec
// changes, then review the diff.  Usage (root): pnpm exec tsx scripts/record-golden.ts
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Flag, frame, Msg, splitMessages } from '../src/codec/message.js';
import { Netns, netnsAdd, netnsDelete } from '../src/netns.js';
import { openRouteSocket } from '../src/sys/socket.js';
import { CASES } from '../test/golden/cases.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const name = `dpgold${randomBytes(3).toString('hex')}`;
const ns = netnsAdd(name);
const out: unknown[] = [];
try {
  const sock = ns.run(() => openRouteSocket('record'));
  using self = Netns.current();
  if (ns.sameAs(self)) throw new Error('refusing to record outside a throwaway namespace');
  const buf = new Uint8Array(1 << 16);
  let seq = 1;
  for (const c of CASES) {
    const request = frame(c.type, c.flags, seq, c.body);
    sock.send(request, 'record');
    const replies: { type: number; flags: number; payload: string }[] = [];
    let done = false;
    while (!done) {
      const n = sock.recv(buf, 'record');
      for (const m of splitMessages(buf.slice(0, n))) {
        if (m.seq !== seq) continue;
        replies.push({ type: m.type, flags: m.flags, payload: hex(m.payload) });
        if (m.type === Msg.ERROR || m.type === Msg.DONE) done = true;
        else if ((c.flags & Flag.DUMP) !== Flag.DUMP && (c.flags & Flag.ACK) === 0) done = true;
      }
    }
    out.push({ name: c.name, seq, request: hex(request), replies });
    seq++;
  }
  sock.close();
} finally {
  ns.close();
  netnsDelete(name);
}
const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
const file = fileURLToPath(new URL('../test/golden/rtnetlink.golden.json', import.meta.url));
writeFileSync(
  file,
  `${JSON.stringify({ kernel, recordedBy: 'scripts/record-golden.ts', cases: out }, null, 2)}\n`,
);
console.log(`wrote ${out.length} cases to ${file} (kernel ${kernel})`);
