// The PostgreSQL data path: one parser worker shared by every target, and one listener per
// postgres target of the running policy, reconciled when the policy changes.
import type { Identity } from '../../common/policy/types';
import type { CompiledPolicy } from '../../common/policy/compile';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import { METRIC } from '../../common/audit/names';
import { CancelRegistry } from '../postgres/cancel-registry';
import { createParserWorker, type AsyncClassifier } from '../postgres/classify/parser-worker';
import type { ClassifyResult } from '../postgres/classify/classify';
import { PostgresListener } from '../postgres/listener';
import type { MessageBudget } from '../postgres/message-budget';
import type { ClassifiedSql } from '../postgres/runtime';
import type { ApprovalGate } from '../approvals/hold';
import type { AuditSink } from '../audit/events';
import { createTargetRuntime } from '../postgres/target-runtime';
import type { PolicyStore } from '../policy-store';
import type { SecretStore } from '../secrets';
import type { CallerTokens } from './identity';

/** One parser worker thread for every target (started with the listeners). */
export function createSqlClassifier(log: Logger): AsyncClassifier {
  return createParserWorker({
    maxEntries: 10_000,
    onReplace: (reason) => log.warn('the SQL parser worker was replaced', { reason }),
  });
}

function toClassifiedSql(r: ClassifyResult): ClassifiedSql {
  return 'parseError' in r ? { statements: [], parseError: r.parseError, parserFailure: r.parserFailure } : r;
}

export interface PostgresServiceOptions {
  store: PolicyStore;
  secrets: SecretStore;
  classifier: AsyncClassifier;
  identity: Identity;
  callerTokens: CallerTokens;
  audit: AuditSink;
  approvals: ApprovalGate;
  hashKey: Buffer;
  maxMessageBytes: number;
  messageBudget: MessageBudget;
  /** Overrides listen ports (tests: `{crm: 0}` picks a free port). */
  portOverrides?: Record<string, number>;
  log: Logger;
  metrics: Metrics;
}

export class PostgresListeners {
  /** The bound port of each target's listener. */
  readonly ports = new Map<string, number>();
  private readonly listeners = new Map<string, { listener: PostgresListener; port: number }>();
  private readonly cancels = new CancelRegistry();
  private readonly active: ReturnType<Metrics['gauge']>;
  private stopping = false;
  /** The parser worker's start, begun with the first listener: a policy without postgres targets never pays for it. */
  private parser: Promise<void> | undefined;

  constructor(private readonly o: PostgresServiceOptions) {
    this.active = o.metrics.gauge(METRIC.activeConnections, 'Open agent connections, by target.');
  }

  /** Closes the listeners of targets that went away or moved, and opens those of new targets. */
  async reconcile(policy: CompiledPolicy): Promise<void> {
    const overrides = this.o.portOverrides;
    for (const [name, l] of this.listeners) {
      const t = policy.targets.get(name)?.postgres;
      const wanted = overrides?.[name] ?? t?.listenPort;
      if (!t || (wanted !== undefined && wanted !== 0 && wanted !== l.port)) {
        this.listeners.delete(name);
        this.ports.delete(name);
        await l.listener.close(5000);
      }
    }
    for (const [name, target] of policy.targets) {
      if (this.stopping) return;
      if (target.postgres && !this.listeners.has(name)) await this.open(name, target.postgres.listenPort);
    }
  }

  /** Whether the SQL parser worker was started (it is with the first postgres target). */
  get parserStarted(): boolean {
    return this.parser !== undefined;
  }

  /** No listener is opened any more (a reconcile under way stops at the next target). */
  stopOpening(): void {
    this.stopping = true;
  }

  /** Stops accepting; open sessions get `graceMs` to finish before they are cut. */
  async close(graceMs: number): Promise<void> {
    await Promise.all([...this.listeners.values()].map((l) => l.listener.close(graceMs)));
  }

  /** Starts the parser worker once; a failed start is tried again by the next listener to open. */
  private startParser(): Promise<void> {
    this.parser ??= this.o.classifier.start().catch((err: Error) => {
      this.parser = undefined;
      throw err;
    });
    return this.parser;
  }

  private async open(name: string, listenPort: number): Promise<void> {
    // No listener without a parser: a target whose statements cannot be classified is not served.
    await this.startParser();
    const o = this.o;
    const classifier = o.classifier;
    const rt = createTargetRuntime({
      target: name,
      store: o.store,
      secrets: o.secrets,
      classify: (text) => {
        const r = classifier.classify(text);
        return r instanceof Promise ? r.then(toClassifiedSql) : toClassifiedSql(r);
      },
      cancels: this.cancels,
      identity: o.identity,
      verifyToken: o.callerTokens,
      audit: o.audit,
      approvals: o.approvals,
      hashKey: o.hashKey,
      maxMessageBytes: o.maxMessageBytes,
      messageBudget: o.messageBudget,
    });
    const listener = new PostgresListener(rt, o.log, (n) => this.active.set({ target: name }, n));
    let port: number;
    try {
      port = await listener.listen(o.portOverrides?.[name] ?? listenPort);
    } catch (err) {
      rt.close();
      throw err;
    }
    this.listeners.set(name, { listener, port });
    this.ports.set(name, port);
  }
}
