// Volume names for what the injector adds: a `warden-` prefix, a valid DNS-1123 label, and never
// one the pod already uses (a user volume that happens to be called warden-tmp keeps its name).
import { createHash } from 'node:crypto';

const MAX_LABEL = 63;

export class NameAllocator {
  private readonly taken: Set<string>;

  constructor(existing: Iterable<string>) {
    this.taken = new Set(existing);
  }

  /** `base` made a valid label, with `-2`, `-3`... appended until it is free; then reserved. */
  allocate(base: string): string {
    const label = toLabel(base);
    let name = label;
    for (let i = 2; this.taken.has(name); i++) name = `${label.slice(0, MAX_LABEL - String(i).length - 1)}-${i}`;
    this.taken.add(name);
    return name;
  }
}

/** Lower case, dots and other characters to dashes; too long a name keeps a hash of the whole. */
export function toLabel(raw: string): string {
  const clean = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  if (clean.length <= MAX_LABEL) return clean;
  const digest = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  return `${clean.slice(0, MAX_LABEL - 9).replace(/-+$/, '')}-${digest}`;
}
