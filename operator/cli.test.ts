// `warden operator` as the chart runs it: files for kubeconfig and config, then SIGTERM (through the
// `warden` command line, in this process).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import * as net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../cli/run';
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
  const cli = (argv: string[]): Promise<number> => runCli(['operator', ...argv], { ...io, stdout: () => undefined }, { env: {} });

  const level = process.env.WARDEN_LOG_LEVEL;
  beforeAll(() => (process.env.WARDEN_LOG_LEVEL = 'error')); // the operator's JSON logs go to stderr
  afterAll(() => (level === undefined ? delete process.env.WARDEN_LOG_LEVEL : (process.env.WARDEN_LOG_LEVEL = level)));

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-operator-'));
    stderr = [];
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('rejects unknown options and a missing or invalid config with a clear message', async () => {
    expect(await cli(['--bogus'])).toBe(2);
    expect(stderr.join('')).toBe("warden operator: unknown option '--bogus'; see 'warden operator --help'\n");
    stderr = [];
    // no kubeconfig anywhere (env {} has no KUBECONFIG, HOME or KUBERNETES_SERVICE_HOST): one line, naming KUBECONFIG
    if (
      !fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token') &&
      !fs.existsSync(path.join(os.homedir(), '.kube', 'config'))
    ) {
      expect(await cli([])).toBe(1);
      expect(stderr).toEqual([
        'warden operator: no Kubernetes configuration: set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config (in a pod, the in-cluster configuration is used)\n',
      ]);
    }
    stderr = [];
    expect(await cli(['--kubeconfig', path.join(dir, 'nope')])).toBe(1);
    expect(stderr).toEqual([`warden operator: cannot read the kubeconfig ${path.join(dir, 'nope')} (from --kubeconfig): no such file\n`]);
    const kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    stderr = [];
    expect(await cli(['--kubeconfig', kubeconfig])).toBe(1);
    expect(stderr.join('')).toContain('no operator configuration: pass --config FILE');
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, 'sidecar: {imagePullPolicy: Sometimes}\n');
    stderr = [];
    expect(await cli(['--kubeconfig', kubeconfig, '--config', config])).toBe(1);
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
      const exit = runCli(
        ['operator', '--kubeconfig', kubeconfig, '--config', config, '--admin-addr', '127.0.0.1:0', '--namespace', 'agent-warden'],
        { ...io, stdout: () => undefined },
        { env: {}, signals },
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
