import { fixture } from '../../test/support/operator/inject-fixtures';
import { podTemplateOf, podTemplatePath, withPodTemplate } from './workloads';

describe('pod templates of workloads', () => {
  it.each([
    ['agent-pod.yaml', 'Pod', []],
    ['langchain-deployment.yaml', 'Deployment', ['spec', 'template']],
    ['statefulset.yaml', 'StatefulSet', ['spec', 'template']],
    ['job.yaml', 'Job', ['spec', 'template']],
    ['cronjob.yaml', 'CronJob', ['spec', 'jobTemplate', 'spec', 'template']],
  ])('%s (%s)', (file, kind, path) => {
    const obj = fixture(file);
    expect(obj.kind).toBe(kind);
    expect(podTemplatePath(kind)).toEqual(path);
    const template = podTemplateOf(obj)!;
    expect(Array.isArray(template.spec?.containers)).toBe(true);
    const replaced = withPodTemplate(obj, { ...template, metadata: { ...template.metadata, annotations: { marked: 'yes' } } });
    expect(podTemplateOf(replaced)!.metadata!.annotations).toEqual({ marked: 'yes' });
    expect(podTemplateOf(obj)!.metadata!.annotations?.marked).toBeUndefined(); // the original is untouched
  });

  it('kinds without a pod template', () => {
    expect(podTemplatePath('Service')).toBeUndefined();
    expect(podTemplatePath('toString')).toBeUndefined();
    expect(podTemplateOf({ kind: 'ConfigMap', data: {} })).toBeUndefined();
    expect(podTemplateOf({ kind: 'Deployment', spec: {} })).toBeUndefined();
  });
});
