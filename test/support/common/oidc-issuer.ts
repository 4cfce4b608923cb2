// A real, local OIDC issuer stand-in for the identity tests: an HTTP server on 127.0.0.1 that serves
// /.well-known/openid-configuration and a JWK Set, and signs tokens with jose. Keys can be rotated
// and retired, and the server can be made to fail, to exercise the verifier's JWKS handling.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { JWK, JWTPayload, KeyLike } from 'jose';

export interface IssuerKey {
  kid: string;
  alg: string;
  privateKey: KeyLike;
  publicJwk: JWK;
}

export async function makeKey(kid: string, alg = 'ES256'): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : undefined);
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export class TestIssuer {
  readonly counts = { discovery: 0, jwks: 0 };
  /** Keys published in the JWK Set. */
  published: IssuerKey[] = [];
  /** Respond with this status instead of the documents (e.g. 503); undefined serves normally. */
  failWith?: number;
  /** Override the `issuer` the discovery document names. */
  discoveryIssuer?: string;
  private server?: http.Server;
  url = '';

  static async start(keys: IssuerKey[]): Promise<TestIssuer> {
    const issuer = new TestIssuer();
    issuer.published = keys;
    await issuer.listen();
    return issuer;
  }

  private listen(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      if (this.failWith !== undefined) {
        if (req.url === '/.well-known/openid-configuration') this.counts.discovery++;
        else this.counts.jwks++;
        res.writeHead(this.failWith).end('unavailable');
        return;
      }
      if (req.url === '/.well-known/openid-configuration') {
        this.counts.discovery++;
        this.json(res, {
          issuer: this.discoveryIssuer ?? this.url,
          jwks_uri: `${this.url}/keys`,
          id_token_signing_alg_values_supported: ['ES256', 'RS256'],
        });
      } else if (req.url === '/keys') {
        this.counts.jwks++;
        this.json(res, { keys: this.published.map((k) => k.publicJwk) });
      } else {
        res.writeHead(404).end();
      }
    });
    return new Promise((resolve) => {
      this.server!.listen(port, '127.0.0.1', () => {
        this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  private json(res: http.ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  /** Sign a token with `key` (default: the first published key); iss defaults to this issuer. */
  async sign(claims: JWTPayload, key: IssuerKey = this.published[0], header: Record<string, unknown> = {}): Promise<string> {
    return new SignJWT({ iss: this.url, ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
      .sign(key.privateKey);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
