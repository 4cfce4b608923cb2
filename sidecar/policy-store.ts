// Holds the running policy and hot-reloads it. Kubernetes updates a mounted ConfigMap by swapping a
// symlink, which file watchers miss, so we poll the file's content. A new version that fails
// validation never replaces the running one: it is logged and counted, and the old one stays.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { compilePolicy, type CompiledPolicy } from '../common/policy/compile';
import { parsePolicyYaml, PolicyLoadError, singlePolicy } from '../common/policy/load';
import type { Logger } from '../common/log';

export interface PolicyStoreEvents {
  reload: [CompiledPolicy];
  rejected: [PolicyLoadError];
}

export function compileFromText(text: string, source: string): CompiledPolicy {
  return compilePolicy(singlePolicy(parsePolicyYaml(text, source), source));
}

export class PolicyStore extends EventEmitter<PolicyStoreEvents> {
  private policy: CompiledPolicy;
  private digest: string;
  private timer?: NodeJS.Timeout;
  version = 1;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    super();
    const text = fs.readFileSync(file, 'utf8');
    this.policy = compileFromText(text, file);
    this.digest = sha(text);
  }

  get current(): CompiledPolicy {
    return this.policy;
  }

  watch(intervalMs = 1000): void {
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Re-reads the file; returns true when a new policy took effect. */
  check(): boolean {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      this.log.warn('policy file unreadable; keeping the running policy', { file: this.file, code: (err as NodeJS.ErrnoException).code });
      return false;
    }
    const d = sha(text);
    if (d === this.digest) return false;
    this.digest = d;
    try {
      this.policy = compileFromText(text, this.file);
    } catch (err) {
      const e = err instanceof PolicyLoadError ? err : new PolicyLoadError(this.file, [{ path: '', message: (err as Error).message }]);
      this.log.error('new policy version rejected; keeping the running policy', { file: this.file, errors: e.errors });
      this.emit('rejected', e);
      return false;
    }
    this.version++;
    this.log.info('policy reloaded', { policy: this.policy.name, version: this.version });
    this.emit('reload', this.policy);
    return true;
  }
}

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
