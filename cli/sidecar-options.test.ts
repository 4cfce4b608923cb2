// What `warden sidecar`'s options become: every flag reaches startSidecar under its own name. The
// real start (a PostgreSQL behind it, SIGTERM) is cli/sidecar-cli.test.ts; here startSidecar is
// replaced so each option can be read back.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SidecarOptions } from '../sidecar/main';
import { runCli } from './run';

const started: SidecarOptions[] = [];
jest.mock('../sidecar/main', () => ({
  startSidecar: async (o: SidecarOptions) => {
    started.push(o);
    return { stop: async () => undefined };
  },
}));

test('every sidecar flag reaches startSidecar; WARDEN_SPOOL_DIR is the spool default', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-sidecar-opts-'));
  try {
    const policy = path.join(dir, 'policy.yaml');
    fs.writeFileSync(policy, 'kind: AccessPolicy\n');
    const io = {
      stdout: () => undefined,
      stderr: (s: string) => {
        throw new Error(s);
      },
    };
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<SidecarOptions> => {
      const signals = new EventEmitter();
      const exit = runCli(['sidecar', '--policy', policy, ...args], io, { env, signals });
      while (signals.listenerCount('SIGTERM') === 0) await new Promise((r) => setTimeout(r, 5));
      signals.emit('SIGTERM');
      expect(await exit).toBe(0);
      return started.pop()!;
    };
    expect(
      await run([
        '--secrets-dir',
        '/s',
        '--admin-addr',
        '127.0.0.1:1',
        '--egress-addr',
        '127.0.0.1:2',
        '--local-approvals',
        '--health-addr',
        '0.0.0.0:3',
        '--spool-dir',
        '/spool',
        '--spool-max-bytes',
        '2097152',
        '--kubernetes-keys',
        '/keys.json',
      ]),
    ).toEqual({
      policyFile: policy,
      secretsDir: '/s',
      adminAddr: '127.0.0.1:1',
      egressAddr: '127.0.0.1:2',
      localApprovals: true,
      healthAddr: '0.0.0.0:3',
      spoolDir: '/spool',
      spoolMaxBytes: 2097152,
      clusterKeysFile: '/keys.json',
    });
    expect(await run([], { WARDEN_SPOOL_DIR: '/from-env' })).toEqual({
      policyFile: policy,
      secretsDir: undefined,
      adminAddr: '127.0.0.1:15000',
      egressAddr: '127.0.0.1:15001',
      localApprovals: false,
      healthAddr: undefined,
      spoolDir: '/from-env',
      spoolMaxBytes: undefined,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
