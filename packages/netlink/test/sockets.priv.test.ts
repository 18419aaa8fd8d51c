// Sockets inside a namespace, in process: Node's own net.Server / net.Socket / dgram.Socket created in
// namespaces A and B, 1 MiB of TCP echo and a UDP round trip between them, and the main thread's own
// namespace never changing (checked before, during and after, on the event loop the whole time).
import { createHash, randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { NetlinkError, Netns } from '../src/index.js';

const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

describe('sockets inside a namespace', () => {
  it('echoes 1 MiB over TCP and round-trips UDP between two namespaces without moving the main thread', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, async (a, b) => {
      run('ip', [
        '-n',
        a.name,
        'link',
        'add',
        'dpa0',
        'type',
        'veth',
        'peer',
        'name',
        'dpb0',
        'netns',
        b.name,
      ]);
      run('ip', ['-n', a.name, 'addr', 'add', '10.244.200.1/24', 'dev', 'dpa0']);
      run('ip', ['-n', b.name, 'addr', 'add', '10.244.200.2/24', 'dev', 'dpb0']);
      run('ip', ['-n', a.name, 'link', 'set', 'dpa0', 'up']);
      run('ip', ['-n', b.name, 'link', 'set', 'dpb0', 'up']);
      const host = selfNs();
      const seen = new Set<string>();
      const sampler = setInterval(() => seen.add(selfNs()), 1);
      using nsA = Netns.open({ name: a.name });
      using nsB = Netns.open({ name: b.name });
      try {
        // TCP: server in A, client in B.
        const server = nsA.createServer((s) => s.pipe(s));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '10.244.200.1', () => resolve());
        });
        seen.add(selfNs());
        const { port } = server.address() as AddressInfo;
        const payload = randomBytes(1 << 20);
        const echoed = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let got = 0;
          const client = nsB.connect({ host: '10.244.200.1', port }, () => {
            seen.add(selfNs());
            // The client's own address is B's: the socket really lives in B.
            expect(client.localAddress).toBe('10.244.200.2');
            client.write(payload);
          });
          client.on('data', (d: Buffer) => {
            chunks.push(d);
            got += d.length;
            if (got >= payload.length) client.end();
          });
          client.on('close', () => resolve(Buffer.concat(chunks)));
          client.on('error', reject);
        });
        expect(echoed.length).toBe(payload.length);
        expect(createHash('sha256').update(echoed).digest('hex')).toBe(
          createHash('sha256').update(payload).digest('hex'),
        );
        await new Promise<void>((resolve) => server.close(() => resolve()));

        // UDP: a responder in A, a sender in B (implicit bind on first send).
        const responder = nsA.createSocket('udp4');
        await new Promise<void>((resolve) => responder.bind(0, '10.244.200.1', () => resolve()));
        responder.on('message', (msg, rinfo) =>
          responder.send(Buffer.from(`pong:${msg}`), rinfo.port, rinfo.address),
        );
        const sender = nsB.createSocket('udp4');
        const reply = await new Promise<{ msg: string; from: string }>((resolve, reject) => {
          sender.once('message', (msg, rinfo) => resolve({ msg: String(msg), from: rinfo.address }));
          sender.once('error', reject);
          sender.send('ping', responder.address().port, '10.244.200.1');
        });
        expect(reply).toEqual({ msg: 'pong:ping', from: '10.244.200.1' });
        expect(sender.address().address).toBe('0.0.0.0');
        responder.close();
        sender.close();

        // The same address from the main thread's namespace reaches nothing: the sockets were not here.
        const outside = Netns.current();
        try {
          const err = await new Promise<unknown>((resolve) => {
            const s = outside.createServer();
            s.once('error', resolve);
            s.listen(0, '10.244.200.1', () => {
              s.close();
              resolve(undefined);
            });
          });
          expect(err).toBeInstanceOf(NetlinkError);
          expect(err).toMatchObject({ code: 'NotFound', syscall: 'bind' });
        } finally {
          outside.close();
        }
      } finally {
        clearInterval(sampler);
      }
      seen.add(selfNs());
      expect([...seen]).toEqual([host]);
    });
  });

  it('refuses a closed namespace handle and bad arguments with typed errors', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      const ns = Netns.open({ name: t.name });
      expect(() => ns.connect({ port: 1.5 } as never)).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      ns.close();
      expect(() => ns.createServer()).toThrow(expect.objectContaining({ code: 'BadFd' }));
      expect(() => ns.createSocket('udp6')).toThrow(expect.objectContaining({ code: 'BadFd' }));
    });
  });
});
