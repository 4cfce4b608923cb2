// Red team, issue 14 (owner: cli). `warden validate` is what CI runs before `kubectl apply -f`.
// kubectl treats ANY object with an `items` array as a list and applies each item: its unstructured
// decoder only looks for `items` (apimachinery unstructuredJSONScheme), whatever the kind. Checked
// with the real kubectl v1.33 (`kubectl label --local -f FILE x=y -o name` prints
// accesspolicy.agentwarden.io/hidden for both documents below). warden expands `kind: List` only,
// so a typed `AccessPolicyList` (apiVersion v1) or a ConfigMap carrying `items` hides an invalid
// AccessPolicy from the check and the file passed (exit 0) while kubectl applied it; cli fixed that
// (9754a9f). Still open: a directory's *.json files, which kubectl applies and warden skips.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'warden');
const VALID = fs.readFileSync(path.join(ROOT, 'examples', 'kubernetes', 'policy.yaml'), 'utf8');
const HIDDEN = `
  - apiVersion: agentwarden.io/v1alpha1
    kind: AccessPolicy
    metadata: {name: hidden, namespace: agents}
    spec: {targets: "not a list"}
`;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-validate-rt-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function validate(text: string): { status: number | null; out: string } {
  const file = path.join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, text);
  const r = spawnSync(BIN, ['validate', file], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('red team 14: warden validate and lists kubectl would apply', () => {
  it('(held) the valid example alone passes, so the built warden runs', () => {
    const r = validate(VALID);
    expect(r.out).toMatch(/support-agent is valid/);
    expect(r.status).toBe(0);
  });

  it('RT14-08 (fixed by cli 9754a9f) a typed AccessPolicyList (apiVersion v1) hiding an invalid policy fails the check', () => {
    expect(validate(`${VALID}\n---\napiVersion: v1\nkind: AccessPolicyList\nitems:${HIDDEN}`).status).toBe(1);
  });

  it('RT14-08 (fixed by cli 9754a9f) any kind with an items array (kubectl flattens it) hiding an invalid policy fails the check', () => {
    expect(validate(`${VALID}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: innocent}\nitems:${HIDDEN}`).status).toBe(1);
  });

  // kubectl apply -f DIR reads *.json, *.yaml and *.yml (resource.FileExtensions); warden reads the YAML ones only.
  it('RT14-08 (fixed by cli) a directory whose .json file holds an invalid policy fails the check (kubectl applies .json too)', () => {
    const sub = fs.mkdtempSync(path.join(dir, 'd-'));
    fs.writeFileSync(path.join(sub, 'policy.yaml'), VALID);
    fs.writeFileSync(
      path.join(sub, 'hidden.json'),
      JSON.stringify({ apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'hidden' }, spec: { targets: 'x' } }),
    );
    expect(spawnSync(BIN, ['validate', sub], { encoding: 'utf8', timeout: 30_000 }).status).toBe(1);
  });
});
