// A small Prometheus text-format registry: counters and gauges with labels. The audit issue adds
// OTLP export on top; the names here are the ones dashboards use.
type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

class Series {
  readonly values = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}

  add(labels: Labels, delta: number): void {
    this.addKey(key(labels), delta);
  }

  addKey(k: string, delta: number): void {
    this.values.set(k, (this.values.get(k) ?? 0) + delta);
  }

  set(labels: Labels, value: number): void {
    this.values.set(key(labels), value);
  }

  get(labels: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
  bind(labels: Labels): { inc(by?: number): void };
}

export class Metrics {
  private readonly series = new Map<string, Series>();

  private get(name: string, help: string, type: 'counter' | 'gauge'): Series {
    let s = this.series.get(name);
    if (!s) {
      s = new Series(name, help, type);
      this.series.set(name, s);
    }
    return s;
  }

  counter(name: string, help: string): Counter {
    const s = this.get(name, help, 'counter');
    return {
      inc: (labels = {}, by = 1) => s.add(labels, by),
      get: (labels = {}) => s.get(labels),
      // The label key is built once; hot paths keep the bound series.
      bind: (labels) => {
        const k = key(labels);
        return { inc: (by = 1) => s.addKey(k, by) };
      },
    };
  }

  gauge(name: string, help: string): { set(labels: Labels, v: number): void; add(labels: Labels, d: number): void; get(labels?: Labels): number } {
    const s = this.get(name, help, 'gauge');
    return { set: (l, v) => s.set(l, v), add: (l, d) => s.add(l, d), get: (labels = {}) => s.get(labels) };
  }

  render(): string {
    const out: string[] = [];
    for (const s of this.series.values()) {
      out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`);
      for (const [k, v] of s.values) out.push(k ? `${s.name}{${k}} ${v}` : `${s.name} ${v}`);
    }
    return out.join('\n') + '\n';
  }
}
