import { describe, expect, it } from 'vitest';
import { CniError, parseCniArgs, readCniEnv, validateContainerId, validateIfname } from '../src/index.js';

function codeOf(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return { code: (err as CniError).cniCode, msg: (err as CniError).message };
  }
  throw new Error('expected a CniError');
}

const FULL = {
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

describe('readCniEnv', () => {
  it('lists every missing variable of a command at once, in skel order, with code 4', () => {
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'ADD' }))).toEqual({
      code: 4,
      msg: 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing',
    });
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'DEL' })).msg).toBe(
      'required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing',
    );
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'GC' })).msg).toBe(
      'required env variables [CNI_PATH] missing',
    );
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'STATUS', CNI_PATH: '' })).msg).toBe(
      'required env variables [CNI_PATH] missing',
    );
    expect(codeOf(() => readCniEnv({})).msg).toBe('required env variables [CNI_COMMAND] missing');
  });

  it('treats an empty variable as missing', () => {
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'ADD', ...FULL, CNI_IFNAME: '' })).msg).toBe(
      'required env variables [CNI_IFNAME] missing',
    );
  });

  it('needs nothing but the command for VERSION and leaves CNI_NETNS optional for DEL', () => {
    expect(readCniEnv({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
    const del = readCniEnv({ CNI_COMMAND: 'DEL', ...FULL, CNI_NETNS: '' });
    expect(del.netns).toBeUndefined();
    expect(del.ifname).toBe('eth0');
  });

  it('rejects an unknown command with code 4', () => {
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'FOO', ...FULL }))).toEqual({
      code: 4,
      msg: 'unknown CNI_COMMAND: FOO',
    });
  });

  it('splits CNI_PATH and reads CNI_NETNS_OVERRIDE', () => {
    const e = readCniEnv({ CNI_COMMAND: 'CHECK', ...FULL, CNI_PATH: '/a::/b', CNI_NETNS_OVERRIDE: 'TRUE' });
    expect(e.path).toEqual(['/a', '/b']);
    expect(e.netnsOverride).toBe(true);
    expect(readCniEnv({ CNI_COMMAND: 'CHECK', ...FULL }).netnsOverride).toBe(false);
  });
});

describe('validateIfname', () => {
  it('accepts names up to 15 bytes', () => {
    validateIfname('eth0');
    validateIfname('a'.repeat(15));
    validateIfname('net1.100');
  });
  it.each([
    ['', 'empty'],
    ['a'.repeat(16), 'longer than 15 bytes'],
    ['ééééééééé', 'longer than 15 bytes'], // 9 characters, 18 bytes
    ['.', '. or ..'],
    ['..', '. or ..'],
    ['a/b', 'whitespace'],
    ['a:b', 'whitespace'],
    ['a b', 'whitespace'],
    ['a\tb', 'whitespace'],
    ['eth%d', 'contains %'],
    ['%', 'contains %'],
    ['all', 'reserved by the kernel'],
    ['default', 'reserved by the kernel'],
  ])('rejects %j with code 4', (name, why) => {
    const e = codeOf(() => validateIfname(name));
    expect(e.code).toBe(4);
    expect(e.msg).toContain('CNI_IFNAME');
    expect(e.msg).toContain(why);
  });
});

describe('validateContainerId', () => {
  it('accepts ids made of [a-zA-Z0-9_.-] starting alphanumeric', () => {
    validateContainerId('a');
    validateContainerId('3f2a-b_c.d');
  });
  it('gives 3 for an empty id and 4 for bad characters', () => {
    expect(codeOf(() => validateContainerId('')).code).toBe(3);
    for (const bad of ['-a', '_a', '.a', 'a b', 'a/b', 'a;b'])
      expect(codeOf(() => validateContainerId(bad)).code).toBe(4);
  });
});

describe('parseCniArgs', () => {
  it('parses known keys and drops IgnoreUnknown', () => {
    expect(
      parseCniArgs('K8S_POD_NAME=web;K8S_POD_NAMESPACE=default', ['K8S_POD_NAME', 'K8S_POD_NAMESPACE']),
    ).toEqual({
      K8S_POD_NAME: 'web',
      K8S_POD_NAMESPACE: 'default',
    });
    expect(parseCniArgs('')).toEqual({});
    expect(parseCniArgs('IP=10.244.0.9=x', ['IP'])).toEqual({ IP: '10.244.0.9=x' });
  });
  it('rejects unknown keys unless IgnoreUnknown is 1 or true', () => {
    expect(codeOf(() => parseCniArgs('FOO=1;BAR=2'))).toEqual({
      code: 4,
      msg: 'CNI_ARGS: unknown args ["FOO" "BAR"]',
    });
    expect(parseCniArgs('IgnoreUnknown=1;FOO=1;A=b', ['A'])).toEqual({ A: 'b' });
    expect(parseCniArgs('FOO=1;IgnoreUnknown=true')).toEqual({});
    expect(codeOf(() => parseCniArgs('IgnoreUnknown=0;FOO=1')).code).toBe(4);
  });
  it('rejects pairs without a key or =', () => {
    expect(codeOf(() => parseCniArgs('FOO')).msg).toBe('CNI_ARGS: invalid pair "FOO"');
    expect(codeOf(() => parseCniArgs('=1')).code).toBe(4);
    expect(codeOf(() => parseCniArgs('IgnoreUnknown=maybe')).code).toBe(4);
  });
});
