// Test fixture: the fake OpenAI/Anthropic upstream plus a sidecar started in-process with
// `startSidecar`, its policy and secrets in temporary files (secrets in the Kubernetes layout
// DIR/<secret>/<key>), collecting the `http` audit events. startSidecarFromFiles is the sidecar
// half alone, for suites that bring their own upstream.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../../common/log';
import { startSidecar, type RunningSidecar, type SidecarOptions } from '../../../sidecar/main';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai';
import type { HttpAuditEvent } from '../../../sidecar/audit/events';

export interface SidecarFixture {
  upstream: FakeOpenAI;
  sidecar: RunningSidecar;
  /** `http://127.0.0.1:<egress port>` */
  egress: string;
  events: HttpAuditEvent[];
  close(): Promise<void>;
}

export async function startSidecarFixture(opts: {
  /** The policy YAML, given the upstream's port. */
  policy(upstreamPort: number): string;
  /** secret name → key → value */
  secrets: Record<string, Record<string, string>>;
  /** Extra sidecar options (tests: `identityVerifier`). */
  sidecar?: Partial<SidecarOptions>;
}): Promise<SidecarFixture> {
  const upstream = await startFakeOpenAI();
  let started: SidecarFromFiles;
  try {
    started = await startSidecarFromFiles({ policy: opts.policy(upstream.port), secrets: opts.secrets, sidecar: opts.sidecar });
  } catch (err) {
    await upstream.close();
    throw err;
  }
  return {
    upstream,
    ...started,
    async close() {
      await started.close();
      await upstream.close();
    },
  };
}

export interface SidecarFromFiles {
  sidecar: RunningSidecar;
  /** `http://127.0.0.1:<egress port>` */
  egress: string;
  events: HttpAuditEvent[];
  /** Stops the sidecar and removes its files. */
  close(): Promise<void>;
}

/** A sidecar started in-process from a policy and secrets written to a temporary directory (any upstream). */
export async function startSidecarFromFiles(opts: {
  policy: string;
  /** secret name → key → value */
  secrets: Record<string, Record<string, string>>;
  sidecar?: Partial<SidecarOptions>;
}): Promise<SidecarFromFiles> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-fixture-'));
  for (const [secret, keys] of Object.entries(opts.secrets)) {
    fs.mkdirSync(path.join(dir, 'secrets', secret), { recursive: true });
    for (const [k, v] of Object.entries(keys)) fs.writeFileSync(path.join(dir, 'secrets', secret, k), v);
  }
  fs.mkdirSync(path.join(dir, 'secrets'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'policy.yaml'), opts.policy);
  const events: HttpAuditEvent[] = [];
  let sidecar: RunningSidecar;
  try {
    sidecar = await startSidecar({
      policyFile: path.join(dir, 'policy.yaml'),
      secretsDir: path.join(dir, 'secrets'),
      adminAddr: '127.0.0.1:0',
      egressAddr: '127.0.0.1:0',
      portOverrides: {},
      logger: silentLogger,
      audit: { statement: () => undefined, session: () => undefined, http: (e) => events.push(e) },
      ...opts.sidecar,
    });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    sidecar,
    egress: `http://127.0.0.1:${sidecar.egressPort}`,
    events,
    async close() {
      await sidecar.stop(100);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
