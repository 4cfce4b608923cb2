// A small Prometheus text-format registry: counters, gauges and histograms with labels. The same
// series are exported over OTLP (sidecar/audit/otlp-metrics.ts reads `snapshot()`); the names are
// the ones dashboards use (common/audit/names.ts). Hand-written rather than the OTel metrics SDK on
// the hot path: bound series update a number without hashing attributes per call.
export type Labels = Record<string, string>;

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

/** Default buckets (seconds): sub-millisecond proxy overhead up to ten-minute approval waits. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600,
];

class HistogramCell {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

class HistogramSeries {
  readonly cells = new Map<string, HistogramCell>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
  ) {}
  cell(labels: Labels): HistogramCell {
    const k = key(labels);
    let c = this.cells.get(k);
    if (!c) this.cells.set(k, (c = new HistogramCell({ ...labels }, this.bounds)));
    return c;
  }
}

export interface Histogram {
  observe(labels: Labels, value: number): void;
  bind(labels: Labels): { observe(value: number): void };
  /** Observations so far for these labels (tests). */
  count(labels?: Labels): number;
}

/** A point-in-time copy of every series, for exporters. */
export interface MetricsSnapshot {
  counters: Array<{ name: string; help: string; monotonic: boolean; points: Array<{ labels: Labels; value: number }> }>;
  histograms: Array<{
    name: string;
    help: string;
    bounds: readonly number[];
    points: Array<{ labels: Labels; counts: number[]; sum: number; count: number }>;
  }>;
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
  bind(labels: Labels): { inc(by?: number): void };
}

export class Metrics {
  private readonly series = new Map<string, Series>();
  private readonly histograms = new Map<string, HistogramSeries>();

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

  gauge(
    name: string,
    help: string,
  ): { set(labels: Labels, v: number): void; add(labels: Labels, d: number): void; get(labels?: Labels): number } {
    const s = this.get(name, help, 'gauge');
    return { set: (l, v) => s.set(l, v), add: (l, d) => s.add(l, d), get: (labels = {}) => s.get(labels) };
  }

  histogram(name: string, help: string, bounds: readonly number[] = DEFAULT_BUCKETS): Histogram {
    let h = this.histograms.get(name);
    if (!h) this.histograms.set(name, (h = new HistogramSeries(name, help, bounds)));
    const series = h;
    return {
      observe: (labels, v) => series.cell(labels).observe(v),
      bind: (labels) => {
        const c = series.cell(labels);
        return { observe: (v: number) => c.observe(v) };
      },
      count: (labels = {}) => series.cells.get(key(labels))?.count ?? 0,
    };
  }

  render(): string {
    const out: string[] = [];
    for (const s of this.series.values()) {
      out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`);
      for (const [k, v] of s.values) out.push(k ? `${s.name}{${k}} ${v}` : `${s.name} ${v}`);
    }
    for (const h of this.histograms.values()) {
      out.push(`# HELP ${h.name} ${h.help}`, `# TYPE ${h.name} histogram`);
      for (const [k, c] of h.cells) {
        const sep = k ? ',' : '';
        let cumulative = 0;
        for (let i = 0; i < h.bounds.length; i++) {
          cumulative += c.counts[i];
          out.push(`${h.name}_bucket{${k}${sep}le="${h.bounds[i]}"} ${cumulative}`);
        }
        out.push(`${h.name}_bucket{${k}${sep}le="+Inf"} ${c.count}`);
        out.push(k ? `${h.name}_sum{${k}} ${c.sum}` : `${h.name}_sum ${c.sum}`);
        out.push(k ? `${h.name}_count{${k}} ${c.count}` : `${h.name}_count ${c.count}`);
      }
    }
    return out.join('\n') + '\n';
  }

  snapshot(): MetricsSnapshot {
    const counters: MetricsSnapshot['counters'] = [];
    for (const s of this.series.values()) {
      counters.push({
        name: s.name,
        help: s.help,
        monotonic: s.type === 'counter',
        points: [...s.values].map(([k, value]) => ({ labels: parseKey(k), value })),
      });
    }
    const histograms: MetricsSnapshot['histograms'] = [];
    for (const h of this.histograms.values()) {
      histograms.push({
        name: h.name,
        help: h.help,
        bounds: h.bounds,
        points: [...h.cells.values()].map((c) => ({ labels: c.labels, counts: [...c.counts], sum: c.sum, count: c.count })),
      });
    }
    return { counters, histograms };
  }
}

/** Inverse of key(): label values were escaped for the Prometheus text format. */
function parseKey(k: string): Labels {
  const out: Labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(k); m; m = re.exec(k)) out[m[1]] = m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return out;
}
