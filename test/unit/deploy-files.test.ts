/**
 * The Grafana dashboard and the Prometheus alerting rules shipped in `deploy/` name only metrics
 * the server exports: a renamed metric fails here, not on an operator's screen. The npm scripts
 * that run the server keep it the process npm signals.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';

const exported = new Set(
  createMetrics({ processMetrics: false })
    .registry.getMetricsAsArray()
    .flatMap((metric) => (String(metric.type) === 'histogram' ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`] : [metric.name])),
);

function metricsNamedIn(path: string): string[] {
  const text = readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
  return [...new Set(text.match(/tributary_[a-z_]+/g) ?? [])];
}

describe('deploy files', () => {
  it.each(['deploy/grafana/tributary.json', 'deploy/prometheus/alerts.yml'])('%s names only exported metrics', (path) => {
    const named = metricsNamedIn(path);
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((name) => !exported.has(name))).toEqual([]);
  });

  it("runs the server's npm scripts with exec, so npm's SIGTERM reaches node rather than only sh", () => {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string>; engines: { node: string } };
    expect({ start: manifest.scripts['start'], workers: manifest.scripts['workers'], dev: manifest.scripts['dev'] }).toEqual({
      start: 'exec node --import ./scripts/require-node.mjs src/main.ts',
      workers: 'exec env TRIBUTARY_ROLE=workers node --import ./scripts/require-node.mjs src/main.ts',
      dev: 'exec node --watch --import ./scripts/require-node.mjs src/main.ts',
    });
    // Type stripping by default and import.meta.main (what runs main()): 22.18 on the 22 line, 24.2 on.
    expect(manifest.engines.node).toBe('^22.18.0 || >=24.2.0');
  });

  it('ships a Grafana dashboard that parses, with a Prometheus data source variable', () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/tributary.json', import.meta.url), 'utf8')) as {
      templating: { list: { name: string; type: string }[] };
      panels: { gridPos: { w: number } }[];
    };
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource' }));
    expect(dashboard.panels.every((panel) => panel.gridPos.w <= 24)).toBe(true);
  });
});
