import {
  APPROVER_RULES,
  OPERATOR_APPROVALS_RULES,
  SIDECAR_APPROVALS_RULES,
  approverClusterRole,
  sidecarApprovalsRole,
  type PolicyRule,
} from './rbac';

/** Every (group, resource, verb) a rule set grants. */
function grants(rules: readonly PolicyRule[]): string[] {
  return rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))).sort();
}

test.each([
  ['sidecar', SIDECAR_APPROVALS_RULES],
  ['approver', APPROVER_RULES],
  ['operator sweeper', OPERATOR_APPROVALS_RULES],
])('%s rules: no wildcards, nothing but approvalrequests in agentwarden.io, no secrets', (_name, rules) => {
  for (const r of rules) {
    for (const field of [r.apiGroups, r.resources, r.verbs]) expect(field).not.toContain('*');
    expect(r.apiGroups).toEqual(['agentwarden.io']);
    for (const res of r.resources) expect(['approvalrequests', 'approvalrequests/status']).toContain(res);
  }
  expect(grants(rules).join(' ')).not.toMatch(/secret|escalate|bind|impersonate/);
});

test('the sidecar may create, read and watch requests and patch status (cancel) — nothing else', () => {
  expect(grants(SIDECAR_APPROVALS_RULES)).toEqual([
    'agentwarden.io/approvalrequests/status:patch',
    'agentwarden.io/approvalrequests:create',
    'agentwarden.io/approvalrequests:get',
    'agentwarden.io/approvalrequests:list',
    'agentwarden.io/approvalrequests:watch',
  ]);
  const role = sidecarApprovalsRole('agents');
  expect(role).toMatchObject({ kind: 'Role', metadata: { name: 'agent-warden-sidecar-approvals', namespace: 'agents' } });
});

test('approvers read requests and patch status; they cannot create, update or delete requests', () => {
  const g = grants(APPROVER_RULES);
  expect(g).toEqual([
    'agentwarden.io/approvalrequests/status:patch',
    'agentwarden.io/approvalrequests:get',
    'agentwarden.io/approvalrequests:list',
    'agentwarden.io/approvalrequests:watch',
  ]);
  expect(approverClusterRole()).toMatchObject({ kind: 'ClusterRole', metadata: { name: 'agent-warden-approver' } });
});

test('only the operator deletes', () => {
  expect(grants(OPERATOR_APPROVALS_RULES)).toContain('agentwarden.io/approvalrequests:delete');
  expect(grants([...SIDECAR_APPROVALS_RULES, ...APPROVER_RULES]).filter((g) => /:(delete|update|deletecollection)$/.test(g))).toEqual([]);
});
