// One example per section of docs/policy-reference.md. Each is a complete `spec` on its own, so
// test/policy-reference.test.ts can check every example with `warden validate`'s own validator:
// an example that the CRD (or a semantic check) would refuse fails the test, not the reader.

/** Section path (as in SECTIONS of gen-policy-reference.ts) → YAML of an AccessPolicy `spec`. */
export const SECTION_EXAMPLES: Readonly<Record<string, string>> = {
  '': `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: support-agent
  namespace: agents
spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
      env: DATABASE_URL`,
  spec: `spec:
  podSelector:
    matchLabels: {app: support-agent}
    matchExpressions:
      - {key: tier, operator: NotIn, values: [experimental]}
  defaultAction: deny        # the default: what no rule allows is refused
  lockdown: true             # also drop the app containers' direct egress (iptables init container)
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}`,
  'spec.targets[]': `spec:
  targets:
    - name: crm                # rules and masking refer to it by this name
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
      env: DATABASE_URL        # set in the agent's containers to postgres://...@127.0.0.1:15432/crm
    - name: openai
      http: {baseUrl: https://api.openai.com, credentialsSecret: openai, auth: {header: Authorization, valuePrefix: "Bearer "}}
      env: OPENAI_BASE_URL     # set to http://127.0.0.1:15001/openai`,
  'spec.targets[].postgres': `spec:
  targets:
    - name: crm
      postgres:
        host: crm-db.data.svc.cluster.local   # a Service DNS name: 127.0.0.1 is the pod itself
        port: 5432
        database: crm
        tls: verify-full           # ca.crt from the Secret when present
        credentialsSecret: crm-db  # keys username, password (and optionally ca.crt)
        listenPort: 15432          # the agent connects to 127.0.0.1:15432
        readOnly: true
        maxConnections: 10
        connectTimeout: 10s`,
  'spec.targets[].http': `spec:
  targets:
    - name: openai
      http:
        baseUrl: https://api.openai.com
        credentialsSecret: openai  # key token
        auth: {header: Authorization, valuePrefix: "Bearer "}
        timeout: 120s
        maxBodyBytes: 4194304`,
  'spec.targets[].mcp': `spec:
  targets:
    - name: tools
      mcp:
        url: https://tools.internal/mcp
        credentialsSecret: tools-mcp
        auth: {header: Authorization, valuePrefix: "Bearer "}
        pinToolDefinitions: true
        pins:
          - {tool: search_customers, fingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
      env: MCP_TOOLS_URL`,
  'spec.rules[]': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  defaultAction: allow
  rules:                       # tried in order; the first match decides
    - name: no-ddl
      action: deny
      message: schema and privilege changes are not allowed for agents
      match: {target: crm, sql: {statements: [DDL, DCL]}}
    - name: on-call-may-delete
      action: allow
      match: {target: crm, sql: {statements: [DELETE]}, groups: [on-call]}
    - name: deletes-need-approval
      action: hold
      match: {target: crm, sql: {statements: [DELETE]}}
      approval: {approvers: {groups: [sre]}, timeout: 10m}`,
  'spec.rules[].match.sql': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  rules:
    - name: no-server-files
      action: deny
      match: {target: crm, sql: {statements: [FILE]}}
    - name: read-customers
      action: allow
      match: {target: crm, sql: {statements: [READ], tables: [public.customers, "reporting.*"]}}
    - name: no-advisory-locks
      action: deny
      match: {target: crm, sql: {functions: ["pg_advisory_*"]}}`,
  'spec.rules[].match.http': `spec:
  targets:
    - name: openai
      http: {baseUrl: https://api.openai.com, credentialsSecret: openai, auth: {header: Authorization, valuePrefix: "Bearer "}}
  rules:
    - name: no-shell-tool-calls
      action: deny
      match:
        target: openai
        http:
          response:
            json: [{path: "$..tool_calls[*].function.name", values: [run_shell]}]
    - name: small-models-only
      action: allow
      match:
        target: openai
        http:
          methods: [POST]
          paths: [/v1/chat/completions]
          json: [{path: $.model, values: [gpt-4o-mini]}]`,
  'spec.rules[].match.mcp': `spec:
  targets:
    - name: tools
      mcp: {url: https://tools.internal/mcp}
  defaultAction: allow
  rules:
    - name: no-deletes
      action: deny
      match: {target: tools, mcp: {methods: [tools/call], tools: ["delete_*"]}}
    - name: prod-queries-need-approval
      action: hold
      match:
        target: tools
        mcp:
          tools: [run_query]
          arguments: [{path: $.database, values: [prod]}]
      approval: {approvers: {users: [alice@example.com]}}`,
  'spec.rules[].approval': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  rules:
    - name: refunds-need-two-approvers
      action: hold
      message: changing orders needs two approvers from finance
      match: {target: crm, sql: {statements: [UPDATE, DELETE], tables: [orders]}}
      approval:
        approvers: {groups: [finance], users: [alice@example.com]}
        timeout: 30m           # then the statement is denied
        count: 2`,
  'spec.masking[]': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
    - name: openai
      http: {baseUrl: https://api.openai.com}
  masking:
    - name: card-numbers
      columns: [customers.card_number, "*.ssn"]
      strategy: last4
      targets: [crm]
    - name: pii-anywhere
      detectors: [email, phone, credit-card]
    - name: no-pii-in-prompts
      detectors: [email, us-ssn]
      direction: request       # masks what the agent sends to the LLM
      targets: [openai]
    - name: api-emails
      jsonPaths: [$..email]
      strategy: hash`,
  'spec.audit': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  audit:
    payloads: true             # masked bodies, for warden replay
    whenSpoolFull: block       # fail closed while the collector is unreachable`,
  'spec.identity': `spec:
  targets:
    - name: crm
      postgres: {host: crm-db.data.svc.cluster.local, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  identity:
    kubernetes:                # this cluster's projected service-account tokens (docs/identity.md)
      audiences: [agent-warden]
    # or an external OIDC issuer instead:
    # issuer: https://accounts.example.com
    # audiences: [agent-warden]
  rules:
    - name: support-agent-writes
      action: allow
      match: {target: crm, sql: {statements: [READ, WRITE]}, subjects: ["system:serviceaccount:agents:support-agent"]}
    - name: namespace-reads
      action: allow
      match: {target: crm, sql: {statements: [READ]}, groups: ["system:serviceaccounts:agents"]}`,
  status: `status:                      # written by the operator; kubectl get accesspolicy support-agent -o yaml
  observedGeneration: 3
  targetCount: 2
  governedPods: 4
  outdatedPodCount: 1
  outdatedPods: [support-agent-7c9d5b6f4-x2k8q]
  conditions:
    - type: Accepted
      status: "True"
      reason: Valid
      message: the spec passed schema and semantic validation
      lastTransitionTime: "2026-12-07T15:30:00Z"
      observedGeneration: 3
    - type: Ready
      status: "True"
      reason: Rendered
      message: rendered to ConfigMap warden-policy-support-agent
      lastTransitionTime: "2026-12-07T15:30:00Z"
      observedGeneration: 3`,
};
