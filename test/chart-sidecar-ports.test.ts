// The chart's sidecar.ports: rendered into the operator config, read back by the operator's parser,
// and what the sidecar cannot bind (privileged, out of range, not a number) refused by the schema.
import { parseOperatorConfig } from '../operator/config';
import { CHART, helm, k8sTools, NS, operatorConfig, operatorConfigText, RELEASE, render } from './support/chart/helm';

if (!k8sTools.ok) console.warn(`skipping the chart sidecar.ports tests: ${k8sTools.reason}`);
const describeHelm = k8sTools.ok ? describe : describe.skip;

describeHelm('chart values: sidecar.ports', () => {
  test("default: the contract's ports, written out", () => {
    const objects = render();
    expect(operatorConfig(objects).sidecar.ports).toEqual({ admin: 15000, egress: 15001, health: 15021 });
    expect(parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS).injector.ports).toEqual({
      admin: 15000,
      egress: 15001,
      health: 15021,
    });
  });

  test('moved (as beside Istio): the operator injects sidecars on those ports', () => {
    const objects = render({ 'sidecar.ports.admin': '15100', 'sidecar.ports.egress': '15101', 'sidecar.ports.health': '15121' });
    expect(parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS).injector.ports).toEqual({
      admin: 15100,
      egress: 15101,
      health: 15121,
    });
  });

  test('the schema refuses ports the sidecar cannot bind', () => {
    const accepts = (value: string): boolean =>
      helm(['template', RELEASE, CHART, '--set', `sidecar.ports.egress=${value}`, '--show-only', 'templates/operator-config.yaml']).code ===
      0;
    expect(accepts('15101')).toBe(true);
    for (const bad of ['80', '0', '70000', 'egress']) expect(accepts(bad)).toBe(false);
    const unknown = helm([
      'template',
      RELEASE,
      CHART,
      '--set',
      'sidecar.ports.metrics=15090',
      '--show-only',
      'templates/operator-config.yaml',
    ]);
    expect(unknown.code).not.toBe(0);
  });

  test('sidecar.runAsUser/runAsGroup reach the operator (beside Istio: not 1337); root is refused by the schema', () => {
    const config = parseOperatorConfig(operatorConfigText(render()), 'config.yaml', NS).injector;
    expect([config.runAsUser, config.runAsGroup]).toEqual([1337, 1338]);
    const moved = render({ 'sidecar.runAsUser': '1338', 'sidecar.runAsGroup': '1338' });
    expect(parseOperatorConfig(operatorConfigText(moved), 'config.yaml', NS).injector).toMatchObject({ runAsUser: 1338, runAsGroup: 1338 });
    for (const key of ['sidecar.runAsUser', 'sidecar.runAsGroup']) {
      expect(helm(['template', RELEASE, CHART, '--set', `${key}=0`, '--show-only', 'templates/operator-config.yaml']).code).not.toBe(0);
    }
  });

  test('two equal ports pass the schema but stop the operator at start, naming both', () => {
    const objects = render({ 'sidecar.ports.egress': '15000' });
    expect(() => parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS)).toThrow(
      /sidecar.ports.egress: 15000 is already ports.admin/,
    );
  });
});
