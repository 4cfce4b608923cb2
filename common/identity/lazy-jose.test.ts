// A sidecar whose policy has no spec.identity does not load jose (~25 ms of its start, ~1 MB):
// the first verifier loads it.
test('loading common/identity does not load jose; creating a verifier does', () => {
  jest.isolateModules(() => {
    let loaded = false;
    jest.doMock('jose', () => {
      loaded = true;
      return jest.requireActual('jose');
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const identity = require('./index') as typeof import('./index');
    expect(loaded).toBe(false);
    identity.createTokenVerifier({ issuer: 'https://issuer.example', audiences: ['warden'] });
    expect(loaded).toBe(true);
  });
});
