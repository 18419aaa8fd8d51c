// The API server's split of a request target into path and query (a fast path for plain targets) against the
// URL parser it stands in for.
import { describe, expect, it } from 'vitest';
import { splitTarget } from '../src/api/server.js';

const viaUrl = (target: string) => {
  const u = new URL(target, 'http://agent');
  return { path: u.pathname, query: [...u.searchParams] };
};
const split = (target: string) => {
  const { path, query } = splitTarget(target);
  return { path, query: [...query] };
};

describe('splitTarget', () => {
  it('gives the path and query new URL gives, for plain and odd targets', () => {
    const targets = [
      '/v1/health',
      '/v1/endpoints',
      '/v1/endpoints/12',
      '/v1/endpoints?containerId=c0ffee&ifname=eth0',
      '/v1/endpoints?containerId=a%20b&ifname=',
      '/v1/cni/confirm?ip=10.244.1.5&owner=c1%2Feth0',
      '/v1/endpoints?x=1&x=2&y',
      '/v1/endpoints?',
      '/v1/a?b=c d',
      '/v1/a?b="q"&c=<x>',
      '/v1/a?b=1#frag',
      '/v1/services/shop/web.v2',
      '/v1/../v1/health',
      '/v1/./health',
      '/v1/%68ealth',
      '/v1\\health',
      '//v1/health',
      'http://other/v1/health?x=1',
      '/',
      '*',
    ];
    for (const t of targets) expect(split(t), t).toEqual(viaUrl(t));
    // random targets over the characters that matter
    const chars = 'av1/_-.?&=#%20\\ ';
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 3000; i++) {
      let t = '/';
      for (let j = rnd(24); j > 0; j--) t += chars[rnd(chars.length)];
      expect(split(t), t).toEqual(viaUrl(t));
    }
  });
});
