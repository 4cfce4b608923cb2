import { bearerFromHeaders, tokenFromPassword } from './extract';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('bearerFromHeaders', () => {
  test('Authorization: Bearer, scheme case-insensitive', () => {
    expect(bearerFromHeaders({ authorization: 'Bearer abc.def.ghi' })).toBe('abc.def.ghi');
    expect(bearerFromHeaders({ Authorization: 'bearer  abc.def.ghi ' })).toBe('abc.def.ghi');
    expect(bearerFromHeaders({ authorization: 'Basic ' + Buffer.from('u:p').toString('base64') })).toBeUndefined();
    expect(bearerFromHeaders({ authorization: 'Bearer' })).toBeUndefined();
    expect(bearerFromHeaders({})).toBeUndefined();
  });

  test('Proxy-Authorization: Bearer, or Basic with the token as password; it wins over Authorization', () => {
    expect(bearerFromHeaders({ 'proxy-authorization': 'Bearer p.q.r', authorization: 'Bearer sk-upstream' })).toBe('p.q.r');
    expect(bearerFromHeaders({ 'proxy-authorization': basic('agent', 'x.y.z') })).toBe('x.y.z');
    expect(bearerFromHeaders({ 'proxy-authorization': basic('', 'x.y.z') })).toBe('x.y.z');
    // a password containing ":" is kept whole
    expect(bearerFromHeaders({ 'proxy-authorization': basic('agent', 'a:b') })).toBe('a:b');
    // unusable proxy credentials fall back to Authorization
    expect(bearerFromHeaders({ 'proxy-authorization': basic('agent', ''), authorization: 'Bearer t.u.v' })).toBe('t.u.v');
  });

  test('fetch Headers work; repeated credentials are ambiguous and ignored', () => {
    expect(bearerFromHeaders(new Headers({ Authorization: 'Bearer h.i.j' }))).toBe('h.i.j');
    expect(bearerFromHeaders({ authorization: ['Bearer a.b.c', 'Bearer d.e.f'] })).toBeUndefined();
    expect(bearerFromHeaders({ authorization: ['Bearer a.b.c'] })).toBe('a.b.c');
  });
});

test('tokenFromPassword: the PostgreSQL password is the token', () => {
  expect(tokenFromPassword(' a.b.c ')).toBe('a.b.c');
  expect(tokenFromPassword('')).toBeUndefined();
  expect(tokenFromPassword(undefined)).toBeUndefined();
});
