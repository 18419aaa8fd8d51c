// @datapath/http from its published tarball: a request's bytes, an answer read in pieces, typed errors.
import { formatRequest, HttpError, ResponseReader } from '@datapath/http';

const wire = formatRequest('POST', '/v1/cni', { host: 'agent', body: '{}', contentType: 'application/json' });
if (!wire.toString('latin1').endsWith('Content-Length: 2\r\n\r\n{}')) throw new Error('request is wrong');
const reader = new ResponseReader();
reader.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel'));
if (reader.read(false) !== undefined) throw new Error('an incomplete answer was read');
reader.push(Buffer.from('lo'));
const got = reader.read(false);
if (got?.response.body !== 'hello' || !got.reusable) throw new Error('answer is wrong');
try {
  formatRequest('GET', '/a\r\nX: 1');
  throw new Error('a split request was accepted');
} catch (err) {
  if (!(err instanceof HttpError) || err.code !== 'InvalidArgument') throw err;
}
console.log(`${got.response.status} ${got.response.body}`);
