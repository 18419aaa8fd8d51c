import type { Netns } from '@datapath/netlink';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { addWorldAddress } from '../src/node.js';

// The simulated world never takes a real host's address, so no probe can target one.
describe('addWorldAddress', () => {
  const none = {} as Netns; // refused before any namespace is touched
  it.each(['8.8.8.8', '1.1.1.1', '192.168.1.1', '10.1.2.3', 'fd00::1', 'bogus'])('refuses %s', (ip) => {
    expect(() => addWorldAddress(none, none, 'x', ip)).toThrow(AgentError);
    expect(() => addWorldAddress(none, none, 'x', ip)).toThrow(/10\.244\.0\.0\/16 or 198\.18\.0\.0\/15/);
  });
});
