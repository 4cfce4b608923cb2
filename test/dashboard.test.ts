// The Grafana dashboard shipped with the chart: valid shape (layout, datasources, variables),
// PromQL that names only metrics the sidecar really exports (common/audit/names.ts), histogram
// quantiles over `_bucket` by `le`, and the Tempo link from a decision to its traces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ATTR, METRIC } from '../common/audit/names';

const FILE = path.join(__dirname, '..', 'charts', 'agent-warden', 'dashboards', 'warden.json');

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Target {
  refId: string;
  expr?: string;
  query?: string;
  queryType?: string;
  datasource?: { type: string; uid: string };
}

interface Link {
  title: string;
  url: string;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  fieldConfig?: { defaults?: { links?: Link[] } };
  panels?: Panel[];
}

interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: { type: string; uid: string };
  definition?: string;
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  __inputs?: unknown;
}

const raw = fs.readFileSync(FILE, 'utf8');
const dash = JSON.parse(raw) as Dashboard;
const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dataPanels = panels.filter((p) => p.type !== 'row');
const variables = new Map(dash.templating.list.map((v) => [v.name, v]));
const promTargets = dataPanels.flatMap((p) =>
  (p.targets ?? []).filter((t) => t.expr !== undefined).map((t) => ({ panel: p.title, expr: t.expr! })),
);
/** The series selector of each `label_values(SELECTOR, label)` variable query. */
const varExprs = dash.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({
    panel: `variable ${v.name}`,
    expr: /^label_values\((.*), \w+\)$/.exec(String(v.definition))?.[1] ?? String(v.definition),
  }));

const HISTOGRAMS = new Set<string>([METRIC.approvalWait, METRIC.operationDuration, METRIC.addedLatency, METRIC.upstreamLatency]);
/** Series names Prometheus really has: counters and gauges as named, histograms only with their suffixes. */
const SERIES = new Set<string>(Object.values(METRIC).flatMap((m) => (HISTOGRAMS.has(m) ? [`${m}_bucket`, `${m}_sum`, `${m}_count`] : [m])));

/** Metric names in a PromQL expression: identifiers outside strings that are not functions, keywords or labels. */
function metricNames(expr: string): string[] {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""'); // label values cannot name metrics
  const withoutMatchers = code.replace(/\{[^}]*\}/g, '{}'); // label names inside selectors
  const withoutGroupings = withoutMatchers.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const withoutRanges = withoutGroupings.replace(/\[[^\]]*\]/g, ''); // [$__rate_interval]
  const keywords = new Set(['or', 'and', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring']);
  const names: string[] = [];
  // an identifier followed by `(` is a function call
  for (const m of withoutRanges.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g))
    if (!m[2] && !keywords.has(m[1])) names.push(m[1]);
  return names;
}

describe('dashboard shape', () => {
  test('identity: uid, title, a recent schema, no __inputs', () => {
    expect(dash.uid).toBe('agent-warden');
    expect(dash.title).toBe('Agent Warden');
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dash.__inputs).toBeUndefined();
    expect(raw).not.toMatch(/\$\{DS_[A-Z_]+\}/); // import-time inputs would break provisioning
  });

  test('every panel has a unique id, a type, a title and a grid position inside 24 columns', () => {
    expect(dataPanels.length).toBeGreaterThanOrEqual(12);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(typeof p.id).toBe('number');
      expect(p.type).toMatch(/^(row|timeseries|stat|table|bargauge|gauge|heatmap|piechart|text)$/);
      expect(p.title.length).toBeGreaterThan(0);
      const { x, y, w, h } = p.gridPos;
      for (const n of [x, y, w, h]) expect(Number.isInteger(n)).toBe(true);
      expect(x).toBeGreaterThanOrEqual(0);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(w).toBeGreaterThan(0);
      expect(h).toBeGreaterThan(0);
      expect(x + w).toBeLessThanOrEqual(24);
    }
  });

  test('no two panels overlap', () => {
    const overlaps: string[] = [];
    panels.forEach((a, i) =>
      panels.slice(i + 1).forEach((b) => {
        const A = a.gridPos;
        const B = b.gridPos;
        if (A.x < B.x + B.w && B.x < A.x + A.w && A.y < B.y + B.h && B.y < A.y + A.h) overlaps.push(`${a.title} / ${b.title}`);
      }),
    );
    expect(overlaps).toEqual([]);
  });

  test('every data panel and target uses a datasource template variable, never a fixed uid', () => {
    const datasourceVars = new Map(
      [...variables.values()].filter((v) => v.type === 'datasource').map((v) => [`\${${v.name}}`, String(v.query)]),
    );
    expect([...datasourceVars.values()].sort()).toEqual(['prometheus', 'tempo']);
    for (const p of dataPanels) {
      expect({ panel: p.title, uid: datasourceVars.has(p.datasource?.uid ?? '') }).toEqual({ panel: p.title, uid: true });
      expect(datasourceVars.get(p.datasource!.uid)).toBe(p.datasource!.type);
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets!) {
        const ds = t.datasource ?? p.datasource!;
        expect(datasourceVars.get(ds.uid)).toBe(ds.type);
        // Prometheus targets carry PromQL, Tempo targets TraceQL
        if (ds.type === 'prometheus') expect(t.expr).toEqual(expect.any(String));
        else expect(t.query).toEqual(expect.any(String));
      }
    }
  });

  test('namespace, pod and target variables come from label_values of warden_operations_total', () => {
    for (const name of ['namespace', 'pod', 'target']) {
      const v = variables.get(name)!;
      expect(v).toMatchObject({ type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' } });
      expect(v.definition).toMatch(new RegExp(`^label_values\\(${METRIC.operations}(\\{[^}]*\\})?, ${name}\\)$`));
    }
  });

  test('every $variable used anywhere is defined (Grafana built-ins aside)', () => {
    const used = new Set<string>();
    for (const m of raw.matchAll(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?:[:.][^}]*)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g)) used.add(m[1] ?? m[2]);
    const undefinedVars = [...used].filter((v) => !v.startsWith('__') && !variables.has(v));
    expect(undefinedVars).toEqual([]);
    expect([...used]).toEqual(expect.arrayContaining(['datasource', 'tempo', 'namespace', 'pod', 'target']));
  });
});

describe('PromQL', () => {
  test('the metric name parser finds names and ignores functions, labels and variables', () => {
    expect(
      metricNames('histogram_quantile(0.99, sum by (le, kind) (rate(foo_bucket{target=~"$target", x="bar_total"}[$__rate_interval])))'),
    ).toEqual(['foo_bucket']);
    expect(metricNames('sum(increase(a_total{x="1"}[$__range])) or vector(0)')).toEqual(['a_total']);
    expect(metricNames('sum by (t) (rate(a_sum[5m])) / sum by (t) (rate(a_count[5m]))')).toEqual(['a_sum', 'a_count']);
  });

  test('every expression names only series the sidecar exports', () => {
    expect(promTargets.length).toBeGreaterThanOrEqual(15);
    for (const { panel, expr } of [...promTargets, ...varExprs]) {
      const names = metricNames(expr);
      expect({ panel, expr, hasMetric: names.length > 0 }).toEqual({ panel, expr, hasMetric: true });
      for (const n of names) expect({ panel, metric: n, known: SERIES.has(n) }).toEqual({ panel, metric: n, known: true });
    }
  });

  test('the dashboard covers every metric an SRE needs', () => {
    const all = new Set(promTargets.flatMap((t) => metricNames(t.expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    for (const m of [
      METRIC.operations,
      METRIC.masked,
      METRIC.approvalWait,
      METRIC.approvals,
      METRIC.addedLatency,
      METRIC.upstreamLatency,
      METRIC.operationDuration,
      METRIC.activeConnections,
      METRIC.spoolBytes,
      METRIC.spoolRecords,
      METRIC.spoolDropped,
      METRIC.spoolBlocked,
      METRIC.exportFailures,
    ]) {
      expect({ metric: m, shown: all.has(m) }).toEqual({ metric: m, shown: true });
    }
  });

  test('histogram_quantile runs over rate of _bucket series aggregated by le', () => {
    const quantiles = promTargets.filter((t) => t.expr.includes('histogram_quantile'));
    expect(quantiles.length).toBeGreaterThanOrEqual(7);
    for (const { panel, expr } of quantiles) {
      expect({
        panel,
        expr,
        ok: /histogram_quantile\(0?\.\d+, sum by \(([^)]*\b)?le\b[^)]*\) \(rate\(warden_[a-z_]+_bucket\{/.test(expr),
      }).toEqual({ panel, expr, ok: true });
    }
    const titles = quantiles.map((q) => q.panel);
    expect(titles).toEqual(expect.arrayContaining(['Added latency p50 / p99', 'Upstream latency p50 / p99', 'Approval wait p50 / p99']));
  });

  test('counters are read through rate or increase, and selectors filter by the template variables', () => {
    for (const { panel, expr } of promTargets) {
      for (const m of expr.matchAll(/(warden_[a-z_]+_total)\{([^}]*)\}/g)) {
        expect({ panel, expr, counterInRate: new RegExp(`(rate|increase)\\(${m[1]}\\{`).test(expr) }).toEqual({
          panel,
          expr,
          counterInRate: true,
        });
        expect(m[2]).toContain('namespace=~"$namespace"');
        expect(m[2]).toContain('pod=~"$pod"');
      }
    }
  });

  test('decisions over time are summed by rule and decision; denials and holds are shown', () => {
    const decisions = dataPanels.find((p) => p.title === 'Decisions over time by rule')!;
    expect(decisions.type).toBe('timeseries');
    expect(decisions.targets![0].expr).toMatch(/^sum by \(rule, decision\) \(rate\(warden_operations_total\{/);
    const denials = dataPanels.filter((p) => /Denied|Held|Denials and holds/.test(p.title));
    expect(denials.map((p) => p.type).sort()).toEqual(['stat', 'stat', 'timeseries']);
    expect(denials.flatMap((p) => p.targets!.map((t) => t.expr)).join(' ')).toMatch(
      /decision="deny".*decision="hold".*decision=~"deny\|hold"/s,
    );
    const masked = dataPanels.find((p) => p.title === 'Masked values by detector')!;
    expect(masked.targets![0].expr).toMatch(/sum by \(detector\)/);
  });
});

describe('Tempo', () => {
  test('a table lists denied and held operations from a TraceQL search', () => {
    const table = dataPanels.find((p) => p.datasource?.type === 'tempo')!;
    expect(table.type).toBe('table');
    const [t] = table.targets!;
    expect(t).toMatchObject({ queryType: 'traceql', datasource: { type: 'tempo', uid: '${tempo}' } });
    expect(t.query).toContain(`span.${ATTR.decision} =~ "deny|hold"`);
  });

  test('the decisions panel links to Explore with a TraceQL query for the clicked rule', () => {
    const decisions = dataPanels.find((p) => p.title === 'Decisions over time by rule')!;
    const links = decisions.fieldConfig?.defaults?.links ?? [];
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) {
      const url = new URL(link.url, 'http://grafana.local');
      expect(url.pathname).toBe('/explore');
      // Grafana interpolates ${...} before following the link; emulate it for the rule and decision
      const panes = JSON.parse(url.searchParams.get('panes')!) as Record<
        string,
        { datasource: string; queries: Target[]; range: { from: string; to: string } }
      >;
      const pane = Object.values(panes)[0];
      expect(pane.datasource).toBe('${tempo}');
      expect(pane.range).toEqual({ from: '${__from}', to: '${__to}' });
      expect(pane.queries[0]).toMatchObject({ queryType: 'traceql', datasource: { type: 'tempo', uid: '${tempo}' } });
      expect(pane.queries[0].query).toContain(`span.${ATTR.rule} = "\${__field.labels.rule}"`);
    }
    // the rule must be a label of the series for the link to fill in
    expect(decisions.targets![0].expr).toMatch(/by \([^)]*\brule\b/);
  });
});
