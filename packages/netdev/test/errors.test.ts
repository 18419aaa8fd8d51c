import { DatapathError, isErrorCode } from '@datapath/errors';
import { NetlinkError } from '@datapath/netlink';
import { describe, expect, it } from 'vitest';
import { type EndpointSpec, planEndpoint } from '../src/index.js';

describe('netdev errors share the SDK error base', () => {
  it('a rejected plan is a NetlinkError, a DatapathError with a code from the closed set', () => {
    let err: unknown;
    try {
      planEndpoint({ netns: 'relative/path' } as EndpointSpec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toBeInstanceOf(DatapathError);
    expect(isErrorCode((err as DatapathError).code)).toBe(true);
    expect((err as DatapathError).code).toBe('InvalidArgument');
  });
});
