// The `warden` command (also installed as `kubectl-warden`).
import { parseArgs } from 'node:util';
import { runValidate } from './validate';

const USAGE = `Usage: warden <command> [options]

Commands:
  sidecar --policy FILE [--secrets-dir DIR] [--admin-addr 127.0.0.1:15000] [--egress-addr 127.0.0.1:15001]
          [--local-approvals] [--health-addr HOST:PORT] [--spool-dir DIR] [--spool-max-bytes N]
                          run the data path for the AccessPolicy in FILE (--local-approvals: loopback
                          callers may decide holds as the local user; development and demos only)
  validate FILE...        check AccessPolicy YAML offline against the CRD schema
  operator [--kubeconfig FILE] [--config FILE] [--admin-addr 0.0.0.0:8080] [--namespace NS]
                          run the controller and admission webhooks (in cluster, or against KUBECONFIG)
  inject -f FILE|- --policy POLICY.yaml [--image IMAGE] [-o yaml|json]
                          print the manifest with the sidecar injected, as the webhook would
  approvals list [-o json]
                          list held operations waiting for a decision (sidecar admin API)
  approve ID [--reason TEXT]
                          approve a held operation (token from --token or WARDEN_TOKEN)
  deny ID --reason TEXT   deny a held operation
  demo                    run the embedded demo (real PostgreSQL, sidecar, scripted agent)
  replay SESSION [--spool-dir DIR] [-o text|json] | replay --list
                          print a recorded session (or trace) from the audit spool, masked
  version                 print the version

Run 'warden <command> --help' for a command's options.
`;

const io = {
  stdout: (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  stderr: (s: string): void => void process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
};

async function sidecar(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      policy: { type: 'string' },
      'secrets-dir': { type: 'string' },
      'admin-addr': { type: 'string', default: '127.0.0.1:15000' },
      'egress-addr': { type: 'string', default: '127.0.0.1:15001' },
      'local-approvals': { type: 'boolean', default: false },
      'health-addr': { type: 'string' },
      'spool-dir': { type: 'string' },
      'spool-max-bytes': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.policy) {
    io.stderr(
      'Usage: warden sidecar --policy FILE [--secrets-dir DIR] [--admin-addr HOST:PORT] [--egress-addr HOST:PORT] [--local-approvals]\n' +
        '                      [--health-addr HOST:PORT] [--spool-dir DIR] [--spool-max-bytes N]\n' +
        '  --health-addr      serve only /healthz and /readyz here (kubelet probes reach the pod IP, not loopback)\n' +
        '  --spool-dir        audit records are written here before the agent sees a result, and kept until the\n' +
        '                     OpenTelemetry collector (OTEL_EXPORTER_OTLP_ENDPOINT) acknowledges them\n' +
        '  --spool-max-bytes  bound on the spool (default 200 MiB); audit.whenSpoolFull says what happens when full',
    );
    return values.help ? 0 : 2;
  }
  const spoolMaxBytes = values['spool-max-bytes'] === undefined ? undefined : Number(values['spool-max-bytes']);
  if (spoolMaxBytes !== undefined && !(Number.isInteger(spoolMaxBytes) && spoolMaxBytes >= 1024 * 1024)) {
    io.stderr(`--spool-max-bytes must be a whole number of bytes, at least 1048576 (1 MiB); got "${values['spool-max-bytes']}"`);
    return 2;
  }
  const { startSidecar } = await import('../sidecar/main');
  const { PolicyLoadError } = await import('../common/policy/load');
  let running;
  try {
    running = await startSidecar({
      policyFile: values.policy,
      secretsDir: values['secrets-dir'],
      adminAddr: values['admin-addr'],
      egressAddr: values['egress-addr'],
      localApprovals: values['local-approvals'],
      healthAddr: values['health-addr'],
      spoolDir: values['spool-dir'] ?? process.env.WARDEN_SPOOL_DIR,
      spoolMaxBytes,
    });
  } catch (err) {
    if (err instanceof PolicyLoadError) {
      io.stderr(err.message);
      return 1;
    }
    throw err;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      running.stop(10_000).then(resolve, resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

async function demo(argv: string[]): Promise<number> {
  let demoModule: typeof import('./demo');
  try {
    demoModule = await import('./demo');
  } catch (err) {
    // The demo's embedded PostgreSQL, sample servers and clients are dev dependencies: the npm
    // package (make pack) leaves them out, so there it explains instead of printing a stack.
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    io.stderr(
      `warden demo runs from a development checkout (clone the repository, then \`make demo\`): ${(err as Error).message.split('\n')[0]}`,
    );
    return 2;
  }
  return demoModule.runDemo(argv, io);
}

async function packageVersion(): Promise<string> {
  const { readFileSync } = await import('node:fs');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- node:path's functions do not use `this`
  const { join } = await import('node:path');
  const { findRepoRoot } = await import('../common/policy/schema');
  return (JSON.parse(readFileSync(join(findRepoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'sidecar':
      return sidecar(rest);
    case 'validate':
      if (rest.length === 0 || rest.includes('--help')) {
        io.stderr('Usage: warden validate FILE...');
        return rest.length === 0 ? 2 : 0;
      }
      return runValidate(rest, io);
    case 'demo':
      return demo(rest);
    case 'operator': {
      const { runOperatorCli } = await import('../operator/cli');
      return runOperatorCli(rest, io);
    }
    case 'inject': {
      const { runInject } = await import('./inject');
      return runInject(rest, io);
    }
    case 'approvals':
    case 'approve':
    case 'deny': {
      const { runApprovalsCli } = await import('./approvals');
      return runApprovalsCli(argv, io);
    }
    case 'replay': {
      const { runReplay } = await import('./replay');
      return runReplay(rest, io);
    }
    case 'version':
    case '--version':
      io.stdout(await packageVersion());
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      io.stderr(`warden: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      process.stderr.write(`warden: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
