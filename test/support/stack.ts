// Test fixture: a real PostgreSQL (SCRAM, optional TLS), a policy and secrets on disk, and a
// sidecar in-process with its listeners on free ports. Everything is torn down by stop().
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { silentLogger } from '../../common/log';
import { startSidecar, type RunningSidecar, type SidecarOptions } from '../../sidecar/main';
import type { StatementEvent, SessionEvent, AuditSink } from '../../sidecar/audit/events';
import { startPgServer, type PgServer } from '../../tools/pg-server';

export interface Stack {
  pg: PgServer;
  sidecar: RunningSidecar;
  dir: string;
  policyFile: string;
  secretsDir: string;
  port: number;
  /** Connection string for the agent: no password, any user. */
  agentUrl(user?: string): string;
  events: StatementEvent[];
  sessions: SessionEvent[];
  admin(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  writePolicy(yaml: string): void;
  stop(): Promise<void>;
}

export interface StackOptions {
  policy: (pg: PgServer) => string;
  tls?: boolean;
  setupSql?: string;
  database?: string;
  sidecar?: Partial<SidecarOptions>;
  /** Runs after the secrets dir is written and before the sidecar starts (extra Secrets). */
  beforeSidecar?: (secretsDir: string) => void;
  /** Role the sidecar logs in as; created with this password when given. */
  role?: { name: string; password: string; grants?: string };
}

export async function startPg(tls = false): Promise<PgServer> {
  return startPgServer({ tls });
}

export async function startStack(opts: StackOptions, shared?: PgServer): Promise<Stack> {
  const pg = shared ?? (await startPgServer({ tls: opts.tls }));
  const database = opts.database ?? 'crm';
  const su = new Client({ connectionString: pg.url() });
  await su.connect();
  const exists = await su.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (exists.rowCount === 0) await su.query(`CREATE DATABASE ${database}`);
  await su.end();
  const db = new Client({ connectionString: pg.url(database) });
  await db.connect();
  if (opts.setupSql) await db.query(opts.setupSql);
  let user = pg.user;
  let password = pg.password;
  if (opts.role) {
    await db.query(
      `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${opts.role.name}') THEN CREATE ROLE ${opts.role.name} LOGIN PASSWORD '${opts.role.password}'; END IF; END $$`,
    );
    if (opts.role.grants) await db.query(opts.role.grants);
    user = opts.role.name;
    password = opts.role.password;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-stack-'));
  const secretsDir = path.join(dir, 'secrets');
  fs.mkdirSync(path.join(secretsDir, 'crm-db'), { recursive: true });
  fs.writeFileSync(path.join(secretsDir, 'crm-db', 'username'), user);
  fs.writeFileSync(path.join(secretsDir, 'crm-db', 'password'), password + '\n');
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, opts.policy(pg));
  opts.beforeSidecar?.(secretsDir);
  const events: StatementEvent[] = [];
  const sessions: SessionEvent[] = [];
  const audit: AuditSink = { statement: (e) => events.push(e), session: (e) => sessions.push(e) };
  const sidecar = await startSidecar({
    policyFile,
    secretsDir,
    adminAddr: '127.0.0.1:0',
    egressAddr: '127.0.0.1:0',
    portOverrides: { crm: 0 },
    logger: silentLogger,
    audit,
    ...opts.sidecar,
  });
  const port = sidecar.ports.get('crm')!;
  return {
    pg,
    sidecar,
    dir,
    policyFile,
    secretsDir,
    port,
    events,
    sessions,
    agentUrl: (u = 'agent') => `postgresql://${u}@127.0.0.1:${port}/${database}`,
    admin: async (sql, params) => {
      const r = await db.query(sql, params);
      return r.rows;
    },
    writePolicy: (yaml) => fs.writeFileSync(policyFile, yaml),
    stop: async () => {
      await sidecar.stop(100);
      await db.end();
      if (!shared) await pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A policy document for the `crm` target with the given rules/masking YAML appended. */
export function crmPolicy(pg: PgServer, extra: string, opts: { defaultAction?: string; tls?: string } = {}): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: test-policy
spec:
  defaultAction: ${opts.defaultAction ?? 'allow'}
  targets:
    - name: crm
      postgres:
        host: 127.0.0.1
        port: ${pg.port}
        database: crm
        tls: ${opts.tls ?? 'disable'}
        credentialsSecret: crm-db
        listenPort: 15432
${extra}`;
}

/** psql is a real client we test with where it is installed (Debian: postgresql-client). */
export const hasPsql: boolean = (() => {
  try {
    return spawnSync('psql', ['--version']).status === 0;
  } catch {
    return false;
  }
})();
