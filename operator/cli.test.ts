// `warden operator` as the chart runs it: files for kubeconfig and config, then SIGTERM.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import * as net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runOperatorCli } from './cli';
import { LEASE_NAME } from './main';
import { FakeApiServer } from '../test/support/operator/fake-apiserver';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('warden operator', () => {
  let dir: string;
  let stderr: string[];
  const io = { stderr: (s: string): void => void stderr.push(s) };

  const level = process.env.WARDEN_LOG_LEVEL;
  beforeAll(() => (process.env.WARDEN_LOG_LEVEL = 'error')); // the operator's JSON logs go to stderr
  afterAll(() => (level === undefined ? delete process.env.WARDEN_LOG_LEVEL : (process.env.WARDEN_LOG_LEVEL = level)));

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-operator-'));
    stderr = [];
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('rejects unknown options and a missing or invalid config with a clear message', async () => {
    expect(await runOperatorCli(['--bogus'], io)).toBe(2);
    expect(stderr.join('')).toContain("Unknown option '--bogus'");
    const kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    stderr = [];
    expect(await runOperatorCli(['--kubeconfig', kubeconfig], io)).toBe(1);
    expect(stderr.join('')).toContain('no operator configuration: pass --config FILE');
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, 'sidecar: {imagePullPolicy: Sometimes}\n');
    stderr = [];
    expect(await runOperatorCli(['--kubeconfig', kubeconfig, '--config', config], io)).toBe(1);
    expect(stderr.join('')).toContain('sidecar.image: required');
  });

  it('runs against a kubeconfig file until SIGTERM, then stops gracefully and releases its Lease', async () => {
    const fake = await FakeApiServer.start();
    try {
      const kubeconfig = path.join(dir, 'kubeconfig');
      fs.writeFileSync(kubeconfig, fake.kubeConfig().exportConfig());
      const config = path.join(dir, 'config.yaml');
      fs.writeFileSync(config, `sidecar: {image: "ghcr.io/agent-warden/agent-warden:0.2.0"}\nwebhook: {port: ${await freePort()}}\n`);
      const signals = new EventEmitter();
      const exit = runOperatorCli(
        ['--kubeconfig', kubeconfig, '--config', config, '--admin-addr', '127.0.0.1:0', '--namespace', 'agent-warden'],
        io,
        signals,
      );
      const lease = (): { spec?: { holderIdentity?: string } } | undefined =>
        fake.object('coordination.k8s.io/v1', 'Lease', 'agent-warden', LEASE_NAME) as never;
      for (let i = 0; i < 500 && !lease()?.spec?.holderIdentity; i++) await new Promise((r) => setTimeout(r, 10));
      expect(lease()?.spec?.holderIdentity).toBeTruthy();
      signals.emit('SIGTERM');
      expect(await exit).toBe(0);
      expect(lease()?.spec?.holderIdentity).toBe(''); // released
      expect(stderr).toEqual([]);
    } finally {
      await fake.close();
    }
  });
});
