// @datapath/errors from its published tarball: the base class, the closed code set and the errno table.
import { DatapathError, describeErrno, isDatapathError, isErrorCode } from '@datapath/errors';

const d = describeErrno(17, { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'veth0' });
const err = new DatapathError(d.code, d.message, { op: 'linkAdd', errno: d.errno, errnoName: d.errnoName });
if (!(err instanceof DatapathError) || !isDatapathError(err) || !isErrorCode(err.code))
  throw new Error('DatapathError is not recognised');
if (err.code !== 'AlreadyExists') throw new Error(`expected AlreadyExists, got ${err.code}`);
console.log(`${err.code}: ${err.message}`);
