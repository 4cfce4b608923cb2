// SCRAM-SHA-256 client (RFC 5802/7677) as PostgreSQL speaks it: the user name in the exchange is
// ignored by the server (it comes from the startup packet), so we send an empty one like libpq.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { encodeSaslInitial, encodeSaslResponse } from '../protocol/frontend';
import type { AuthMethod, Credentials } from './types';
import { AuthError } from './types';

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

const MAX_ITERATIONS = 600_000;

// PBKDF2 at 4096+ iterations costs milliseconds; a sidecar reconnecting with the same secret
// reuses the salted password as pgbouncer does. Keyed by a digest so the map holds no password.
const saltedCache = new Map<string, Buffer>();

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  // Fixed-size digests of each part keep the key unambiguous (salt bytes followed by the iteration
  // digits would let (S, 496) and (S+"4", 96) collide).
  const key = createHash('sha256')
    .update(sha256(Buffer.from(password)))
    .update(sha256(salt))
    .update(String(iterations))
    .digest('hex');
  let v = saltedCache.get(key);
  if (!v) {
    v = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
    if (saltedCache.size > 64) saltedCache.clear();
    saltedCache.set(key, v);
  }
  return v;
}

function parseAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new AuthError(`malformed SCRAM attribute "${part.slice(0, 20)}"`);
    out.set(part[0], part.slice(2));
  }
  return out;
}

export function scramSha256Auth(creds: Credentials, nonce: string = randomBytes(18).toString('base64')): AuthMethod {
  const clientFirstBare = `n=,r=${nonce}`;
  let authMessage = '';
  let serverKey: Buffer | undefined;
  let verified = false;
  return {
    complete: () => verified,
    respond(msg) {
      switch (msg.name) {
        case 'authSasl':
          if (!msg.mechanisms.includes('SCRAM-SHA-256')) {
            throw new AuthError(`server offers SASL mechanisms [${msg.mechanisms.join(', ')}], none supported`);
          }
          return encodeSaslInitial('SCRAM-SHA-256', Buffer.from('n,,' + clientFirstBare));
        case 'authSaslContinue': {
          const serverFirst = msg.data.toString('utf8');
          const attrs = parseAttributes(serverFirst);
          const r = attrs.get('r');
          const s = attrs.get('s');
          const i = Number(attrs.get('i'));
          if (!r || !r.startsWith(nonce) || r.length === nonce.length)
            throw new AuthError('SCRAM server nonce does not extend the client nonce');
          if (!s || !Number.isInteger(i) || i < 1) throw new AuthError('SCRAM server-first-message lacks salt or iteration count');
          // A hostile server could ask for 2^31 iterations and stall the event loop for minutes.
          if (i > MAX_ITERATIONS) throw new AuthError(`SCRAM iteration count ${i} exceeds the limit of ${MAX_ITERATIONS}`);
          const salted = saltedPassword(creds.password, Buffer.from(s, 'base64'), i);
          const clientKey = hmac(salted, 'Client Key');
          const withoutProof = `c=biws,r=${r}`;
          authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
          const signature = hmac(sha256(clientKey), authMessage);
          const proof = Buffer.alloc(clientKey.length);
          for (let k = 0; k < proof.length; k++) proof[k] = clientKey[k] ^ signature[k];
          serverKey = hmac(salted, 'Server Key');
          return encodeSaslResponse(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`));
        }
        case 'authSaslFinal': {
          if (!serverKey) throw new AuthError('SCRAM final message before the challenge');
          const attrs = parseAttributes(msg.data.toString('utf8'));
          if (attrs.has('e')) throw new AuthError(`SCRAM server error: ${attrs.get('e')}`);
          const v = Buffer.from(attrs.get('v') ?? '', 'base64');
          const expected = hmac(serverKey, authMessage);
          // Verifying the server's signature proves the server knows the verifier, not just our proof.
          if (v.length !== expected.length || !timingSafeEqual(v, expected)) throw new AuthError('SCRAM server signature does not verify');
          verified = true;
          return null;
        }
        default:
          throw new AuthError(`unexpected ${msg.name} during SCRAM authentication`);
      }
    },
  };
}
