// md5 and cleartext password answers against independent computations and pg-protocol's bytes, and
// the choice of method from the server's first authentication request.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import type { AuthenticationMessage } from '../protocol/backend';
import { decodeAuthentication } from '../protocol/backend';
import { FrameReader } from '../protocol/frame-reader';
import { arbText, authRequest } from '../../../test/support/sidecar/pg-bytes';
import { cleartextAuth } from './cleartext';
import { authMethodFor, AuthError } from './index';
import { md5Auth } from './md5';

const md5 = (s: Buffer | string): string => createHash('md5').update(s).digest('hex');

/** PostgreSQL's md5 answer: "md5" + md5(md5(password || user) || salt), computed here independently. */
function expectedMd5(user: string, password: string, salt: Buffer): string {
  const inner = md5(Buffer.from(password + user, 'utf8'));
  return 'md5' + md5(Buffer.concat([Buffer.from(inner, 'ascii'), salt]));
}

function fromWire(bytes: Buffer): AuthenticationMessage {
  const reader = new FrameReader(1 << 16);
  for (const byte of bytes) reader.push(Buffer.from([byte])); // byte by byte
  return decodeAuthentication(reader.next()!);
}

/** PasswordMessage payload by hand: 'p', length, C string. */
function passwordOf(b: Buffer): string {
  expect(b[0]).toBe(0x70);
  expect(b.readInt32BE(1)).toBe(b.length - 1);
  expect(b[b.length - 1]).toBe(0);
  return b.toString('utf8', 5, b.length - 1);
}

describe('md5Auth', () => {
  test('the well-known postgres/postgres hash (pg_authid form) and a salted answer', () => {
    // pg_authid.rolpassword for user postgres, password postgres.
    expect('md5' + md5('postgrespostgres')).toBe('md53175bce1d3201d16594cebf9d7eb3f9d');
    const salt = Buffer.from([0x01, 0x02, 0x03, 0x04]);
    const out = md5Auth({ username: 'postgres', password: 'postgres' }).respond(fromWire(authRequest(5, salt)))!;
    expect(passwordOf(out)).toBe('md5' + md5(Buffer.concat([Buffer.from('3175bce1d3201d16594cebf9d7eb3f9d'), salt])));
    expect(out).toEqual(Buffer.from(serialize.password(expectedMd5('postgres', 'postgres', salt))));
  });

  test("property: any user, password and salt give PostgreSQL's answer, as pg-protocol frames it", () => {
    fc.assert(
      fc.property(arbText(20), arbText(20), fc.uint8Array({ minLength: 4, maxLength: 4 }), (user, password, saltBytes) => {
        const salt = Buffer.from(saltBytes);
        const out = md5Auth({ username: user, password }).respond(fromWire(authRequest(5, salt)))!;
        const expected = expectedMd5(user, password, salt);
        if (!/^md5[0-9a-f]{32}$/.test(expected) || !out.equals(Buffer.from(serialize.password(expected)))) {
          throw new Error(`md5 answer ${out.toString('hex')} differs from ${expected}`);
        }
      }),
      { numRuns: 150 },
    );
  });

  test('a salt with zero bytes is hashed as bytes, not as a string', () => {
    const salt = Buffer.from([0, 0xff, 0, 0x80]);
    const out = md5Auth({ username: 'u', password: 'p' }).respond({ name: 'authMd5', salt })!;
    expect(passwordOf(out)).toBe(expectedMd5('u', 'p', salt));
  });

  test('any other request during md5 authentication throws AuthError', () => {
    const auth = md5Auth({ username: 'u', password: 'p' });
    expect(() => auth.respond({ name: 'authCleartext' })).toThrow(new AuthError('unexpected authCleartext during md5 authentication'));
    expect(() => auth.respond({ name: 'authSasl', mechanisms: ['SCRAM-SHA-256'] })).toThrow(AuthError);
  });
});

describe('cleartextAuth', () => {
  test('sends the password as pg-protocol frames it', () => {
    for (const pw of ['', 'secret', 'pässwörd ☃ 𝄞', 'x'.repeat(500)]) {
      const out = cleartextAuth({ username: 'u', password: pw }).respond(fromWire(authRequest(3)))!;
      expect(out).toEqual(Buffer.from(serialize.password(pw)));
      expect(passwordOf(out)).toBe(pw);
    }
  });
});

describe('authMethodFor', () => {
  const creds = { username: 'agent', password: 'pw' };

  test('picks the method from the first request', () => {
    const salt = Buffer.from([9, 8, 7, 6]);
    const md5Req = fromWire(authRequest(5, salt));
    expect(passwordOf(authMethodFor(md5Req, creds).respond(md5Req)!)).toBe(expectedMd5('agent', 'pw', salt));
    const clear = fromWire(authRequest(3));
    expect(passwordOf(authMethodFor(clear, creds).respond(clear)!)).toBe('pw');
    const sasl = fromWire(authRequest(10, Buffer.from('SCRAM-SHA-256\0\0')));
    const initial = authMethodFor(sasl, creds).respond(sasl)!;
    expect(initial.toString('utf8', 5, 5 + 'SCRAM-SHA-256'.length)).toBe('SCRAM-SHA-256');
  });

  test.each([
    [2, 'Kerberos V5'],
    [6, 'SCM credentials'],
    [7, 'GSSAPI'],
    [9, 'SSPI'],
    [42, 'unknown'],
  ])('authentication code %i (%s) is reported as unsupported, naming the code', (code) => {
    const req = fromWire(authRequest(code));
    expect(() => authMethodFor(req, creds)).toThrow(AuthError);
    expect(() => authMethodFor(req, creds)).toThrow(`server requested an unsupported authentication method (code ${code})`);
  });

  test('a SASL continuation or final without a start is unsupported, naming the message', () => {
    expect(() => authMethodFor({ name: 'authSaslContinue', data: Buffer.from('r=x') }, creds)).toThrow(
      'server requested an unsupported authentication method (authSaslContinue)',
    );
    expect(() => authMethodFor({ name: 'authSaslFinal', data: Buffer.from('v=x') }, creds)).toThrow(AuthError);
    expect(() => authMethodFor({ name: 'authOk' }, creds)).toThrow(/unsupported authentication method \(authOk\)/);
  });

  test('SASL without SCRAM-SHA-256 fails clearly on the first answer', () => {
    const sasl = fromWire(authRequest(10, Buffer.from('OAUTHBEARER\0\0')));
    const method = authMethodFor(sasl, creds);
    expect(() => method.respond(sasl)).toThrow('server offers SASL mechanisms [OAUTHBEARER], none supported');
  });

  test('AuthError is an Error with its own name', () => {
    const e = new AuthError('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('AuthError');
  });
});
