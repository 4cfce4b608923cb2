// SCRAM-SHA-256 client against an independent server-side computation (RFC 5802 / RFC 7677) written
// here with node:crypto. The server side checks the client proof the way a server does (recovering
// ClientKey and comparing H(ClientKey) with StoredKey), not by recomputing the client's arithmetic.
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import type { AuthenticationMessage } from '../protocol/backend';
import { decodeAuthentication } from '../protocol/backend';
import { FrameReader } from '../protocol/frame-reader';
import { authRequest } from '../../../test/support/sidecar/pg-bytes';
import { authMethodFor, AuthError } from './index';
import { scramSha256Auth } from './scram';

// ---- an independent SCRAM-SHA-256 server ----

const H = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const HMAC = (key: Buffer, s: string): Buffer => createHmac('sha256', key).update(s, 'utf8').digest();
const xor = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((x, i) => x ^ b[i]));

interface Verifier {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

function verifier(password: string, salt: Buffer, iterations: number): Verifier {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  return { salt, iterations, storedKey: H(HMAC(salted, 'Client Key')), serverKey: HMAC(salted, 'Server Key') };
}

/** Server side of one exchange: returns whether the proof verifies and the server-final message. */
function serverCheck(v: Verifier, clientFirstBare: string, serverFirst: string, clientFinal: string): { ok: boolean; serverFinal: string } {
  const m = /^(c=[^,]*,r=[^,]*),p=([A-Za-z0-9+/=]+)$/.exec(clientFinal);
  if (!m) throw new Error(`malformed client-final-message ${clientFinal}`);
  const [, withoutProof, proofB64] = m;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const clientSignature = HMAC(v.storedKey, authMessage);
  const proof = Buffer.from(proofB64, 'base64');
  const clientKey = xor(proof, clientSignature);
  const ok = proof.length === 32 && H(clientKey).equals(v.storedKey);
  return { ok, serverFinal: `v=${HMAC(v.serverKey, authMessage).toString('base64')}` };
}

// ---- hand-built wire messages (no Writer from the code under test) ----

const saslMechanisms = (...ms: string[]): Buffer =>
  authRequest(10, Buffer.concat([...ms.map((m) => Buffer.from(m + '\0')), Buffer.from([0])]));

/** Decodes one server message through the real FrameReader + decoder, split in two chunks. */
function fromWire(bytes: Buffer): AuthenticationMessage {
  const reader = new FrameReader(1 << 16);
  const cut = bytes.length >> 1;
  reader.push(bytes.subarray(0, cut));
  expect(reader.next()).toBeNull();
  reader.push(bytes.subarray(cut));
  return decodeAuthentication(reader.next()!);
}

/** Parses a SASLInitialResponse by hand: 'p', length, mechanism\0, int32 n, n bytes. */
function parseSaslInitial(b: Buffer): { mechanism: string; data: string } {
  expect(b[0]).toBe(0x70);
  expect(b.readInt32BE(1)).toBe(b.length - 1);
  const nul = b.indexOf(0, 5);
  const mechanism = b.toString('utf8', 5, nul);
  const n = b.readInt32BE(nul + 1);
  expect(nul + 5 + n).toBe(b.length);
  return { mechanism, data: b.toString('utf8', nul + 5) };
}

function parseSaslResponse(b: Buffer): string {
  expect(b[0]).toBe(0x70);
  expect(b.readInt32BE(1)).toBe(b.length - 1);
  return b.toString('utf8', 5);
}

// RFC 7677 section 3.
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};
const RFC_VERIFIER = verifier(RFC.password, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);

describe('the independent server reproduces RFC 7677', () => {
  test('with the RFC client-first-bare "n=user", the RFC proof verifies and the RFC server signature comes out', () => {
    const r = serverCheck(RFC_VERIFIER, `n=user,r=${RFC.clientNonce}`, RFC.serverFirst, RFC.clientFinal);
    expect(r).toEqual({ ok: true, serverFinal: RFC.serverFinal });
  });

  test('a flipped proof does not verify', () => {
    const bad = RFC.clientFinal.replace('p=dHz', 'p=dHy');
    expect(serverCheck(RFC_VERIFIER, `n=user,r=${RFC.clientNonce}`, RFC.serverFirst, bad).ok).toBe(false);
  });
});

describe('scramSha256Auth', () => {
  function exchange(password = RFC.password, serverFirst = RFC.serverFirst, v = RFC_VERIFIER, nonce = RFC.clientNonce) {
    const auth = scramSha256Auth({ username: 'user', password }, nonce);
    const first = parseSaslInitial(auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256')))!);
    const clientFinal = parseSaslResponse(auth.respond(fromWire(authRequest(11, Buffer.from(serverFirst))))!);
    const clientFirstBare = first.data.replace(/^n,,/, '');
    return { auth, first, clientFinal, server: serverCheck(v, clientFirstBare, serverFirst, clientFinal) };
  }

  test("RFC 7677 vector with PostgreSQL's empty user name: exact messages and a proof the server accepts", () => {
    const { auth, first, clientFinal, server } = exchange();
    expect(first).toEqual({ mechanism: 'SCRAM-SHA-256', data: `n,,n=,r=${RFC.clientNonce}` });
    // The proof differs from the RFC's (the auth message has "n=" instead of "n=user"): computed independently.
    const salted = pbkdf2Sync('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096, 32, 'sha256');
    const clientKey = HMAC(salted, 'Client Key');
    const withoutProof = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const authMessage = `n=,r=${RFC.clientNonce},${RFC.serverFirst},${withoutProof}`;
    const proof = xor(clientKey, HMAC(H(clientKey), authMessage)).toString('base64');
    expect(clientFinal).toBe(`${withoutProof},p=${proof}`);
    expect(clientFinal).not.toBe(RFC.clientFinal);
    expect(server.ok).toBe(true);
    // The correct server signature completes the exchange.
    expect(auth.respond(fromWire(authRequest(12, Buffer.from(server.serverFinal))))).toBeNull();
  });

  test('the RFC client-final (computed for "n=user") is not what we send, and would not verify for our auth message', () => {
    expect(serverCheck(RFC_VERIFIER, `n=,r=${RFC.clientNonce}`, RFC.serverFirst, RFC.clientFinal).ok).toBe(false);
  });

  test('a wrong server signature throws', () => {
    const { auth, server } = exchange();
    const sig = Buffer.from(server.serverFinal.slice(2), 'base64');
    sig[0] ^= 1;
    expect(() => auth.respond(fromWire(authRequest(12, Buffer.from(`v=${sig.toString('base64')}`))))).toThrow(/signature does not verify/);
  });

  test.each([
    ['the RFC signature (for a different auth message)', RFC.serverFinal],
    ['an empty signature', 'v='],
    ['a short signature', 'v=AAAA'],
    ['no v attribute', 'x=1'],
  ])('%s is rejected', (_label, final) => {
    const { auth } = exchange();
    expect(() => auth.respond(fromWire(authRequest(12, Buffer.from(final))))).toThrow(AuthError);
  });

  test("a server error e= throws with the server's reason", () => {
    const { auth } = exchange();
    expect(() => auth.respond(fromWire(authRequest(12, Buffer.from('e=invalid-proof'))))).toThrow(/SCRAM server error: invalid-proof/);
  });

  test.each([
    ['a different nonce', 'r=XXXXNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'],
    ['exactly the client nonce (no server part)', `r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['a truncated client nonce', 'r=rOprNGfwEbeRWgbNEkq,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'],
    ['the client nonce not as a prefix', `r=x${RFC.clientNonce}y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['no nonce', 's=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'],
  ])('a server nonce that does not extend the client nonce throws: %s', (_label, serverFirst) => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' }, RFC.clientNonce);
    auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')));
    expect(() => auth.respond(fromWire(authRequest(11, Buffer.from(serverFirst))))).toThrow(/nonce does not extend/);
  });

  test.each([
    ['no salt', `r=${RFC.clientNonce}abc,i=4096`],
    ['empty salt', `r=${RFC.clientNonce}abc,s=,i=4096`],
    ['no iteration count', `r=${RFC.clientNonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==`],
    ['zero iterations', `r=${RFC.clientNonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`],
    ['negative iterations', `r=${RFC.clientNonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-5`],
    ['fractional iterations', `r=${RFC.clientNonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1.5`],
    ['non-numeric iterations', `r=${RFC.clientNonce}abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many`],
  ])('a server-first-message with %s throws', (_label, serverFirst) => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' }, RFC.clientNonce);
    auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')));
    expect(() => auth.respond(fromWire(authRequest(11, Buffer.from(serverFirst))))).toThrow(/lacks salt or iteration count/);
  });

  test.each([['garbage'], ['r'], [''], ['rr=abc,s=x,i=1']])('a malformed server-first-message %j throws AuthError', (serverFirst) => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' }, RFC.clientNonce);
    auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')));
    expect(() => auth.respond(fromWire(authRequest(11, Buffer.from(serverFirst))))).toThrow(AuthError);
  });

  test('only SCRAM-SHA-256-PLUS offered: a clear error naming the mechanisms', () => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' });
    expect(() => auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256-PLUS')))).toThrow(
      'server offers SASL mechanisms [SCRAM-SHA-256-PLUS], none supported',
    );
  });

  test('a final message before the challenge throws', () => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' });
    auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')));
    expect(() => auth.respond(fromWire(authRequest(12, Buffer.from(RFC.serverFinal))))).toThrow(/before the challenge/);
  });

  test('a non-SASL request during SCRAM throws', () => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' });
    expect(() => auth.respond(fromWire(authRequest(5, Buffer.from([1, 2, 3, 4]))))).toThrow(/unexpected authMd5 during SCRAM/);
    expect(() => auth.respond(fromWire(authRequest(3)))).toThrow(AuthError);
  });

  test('the SASLInitialResponse is the message pg-protocol builds for the same data', () => {
    const auth = scramSha256Auth({ username: 'u', password: 'p' }, 'abcdef');
    expect(auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')))).toEqual(
      Buffer.from(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abcdef')),
    );
  });

  test('the default client nonce is random, printable and without commas', () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const auth = scramSha256Auth({ username: 'u', password: 'p' });
      const { data } = parseSaslInitial(auth.respond(fromWire(saslMechanisms('SCRAM-SHA-256')))!);
      const nonce = /^n,,n=,r=(.+)$/.exec(data)![1];
      expect(nonce).toMatch(/^[\x21-\x2b\x2d-\x7e]{16,}$/);
      nonces.add(nonce);
    }
    expect(nonces.size).toBe(20);
  });

  test('a non-ASCII password is normalized (NFKC, as SASLprep does) before hashing', () => {
    const salt = Buffer.from('0123456789abcdef');
    const v = verifier('fi', salt, 16); // SASLprep("ﬁ") = "fi"
    const serverFirst = `r=${RFC.clientNonce}srv,s=${salt.toString('base64')},i=16`;
    expect(exchange('ﬁ', serverFirst, v).server.ok).toBe(true);
  });

  test('the salted-password cache never confuses two (salt, iterations) pairs', () => {
    // Salt S with 496 iterations, then salt S+"4" with 96: the same bytes if the cache key simply
    // concatenates salt and iteration count.
    const password = 'cache-pw';
    const s1 = Buffer.from('saltsaltsalt');
    const s2 = Buffer.concat([s1, Buffer.from('4')]);
    const a = exchange(password, `r=${RFC.clientNonce}A,s=${s1.toString('base64')},i=496`, verifier(password, s1, 496));
    expect(a.server.ok).toBe(true);
    const b = exchange(password, `r=${RFC.clientNonce}B,s=${s2.toString('base64')},i=96`, verifier(password, s2, 96));
    expect(b.server.ok).toBe(true);
  });

  test('property: any password, salt, iteration count and server nonce verify against the independent server', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 20 }),
        fc.uint8Array({ minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 64 }),
        fc.stringMatching(/^[A-Za-z0-9+/]{1,24}$/),
        fc.stringMatching(/^[A-Za-z0-9+/]{1,24}$/),
        (password, saltBytes, iterations, clientNonce, serverPart) => {
          const salt = Buffer.from(saltBytes);
          const v = verifier(password.normalize('NFKC'), salt, iterations);
          const serverFirst = `r=${clientNonce}${serverPart},s=${salt.toString('base64')},i=${iterations}`;
          const { auth, server } = exchange(password, serverFirst, v, clientNonce);
          expect(server.ok).toBe(true);
          expect(auth.respond({ name: 'authSaslFinal', data: Buffer.from(server.serverFinal) })).toBeNull();
        },
      ),
      { numRuns: 50 },
    );
  });

  test('property: a wrong password never verifies', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ minLength: 1, maxLength: 12 }), (right, wrong) => {
        fc.pre(right.normalize('NFKC') !== wrong.normalize('NFKC'));
        const salt = Buffer.from('fixed-salt');
        const serverFirst = `r=${RFC.clientNonce}x,s=${salt.toString('base64')},i=8`;
        const { auth, server } = exchange(wrong, serverFirst, verifier(right.normalize('NFKC'), salt, 8));
        expect(server.ok).toBe(false);
        // And the server signature made with the right verifier does not verify on our side either.
        expect(() => auth.respond({ name: 'authSaslFinal', data: Buffer.from(server.serverFinal) })).toThrow(AuthError);
      }),
      { numRuns: 25 },
    );
  });
});

describe('authMethodFor picks SCRAM from the wire', () => {
  test('a complete exchange driven by bytes', () => {
    const creds = { username: 'agent', password: RFC.password };
    const first = fromWire(saslMechanisms('SCRAM-SHA-256'));
    const method = authMethodFor(first, creds);
    const initial = parseSaslInitial(method.respond(first)!);
    expect(initial.mechanism).toBe('SCRAM-SHA-256');
    const clientNonce = /r=(.+)$/.exec(initial.data)![1];
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const serverFirst = `r=${clientNonce}server-part,s=${salt.toString('base64')},i=4096`;
    const clientFinal = parseSaslResponse(method.respond(fromWire(authRequest(11, Buffer.from(serverFirst))))!);
    const server = serverCheck(RFC_VERIFIER, initial.data.slice(3), serverFirst, clientFinal);
    expect(server.ok).toBe(true);
    expect(method.respond(fromWire(authRequest(12, Buffer.from(server.serverFinal))))).toBeNull();
  });
});
