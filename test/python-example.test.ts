// examples/python-langchain end to end: the real Python agent (LangChain's create_agent, ChatOpenAI
// on the openai client, the official MCP SDK, psycopg) in a cached venv, given exactly the env the
// operator's injection sets (DATABASE_URL, OPENAI_BASE_URL, a placeholder OPENAI_API_KEY,
// CRM_TOOLS_MCP_URL, HTTP(S)_PROXY and NO_PROXY; ports moved to this run's free ones), talking to
// a sidecar that enforces examples/python-langchain/policy.yaml in front of an embedded PostgreSQL
// loaded with the example's crm.sql, a scripted OpenAI-compatible model and the SDK's MCP server.
// The model's script makes the agent read customers (masked), try a DROP and a server-file read
// (denied, as errors the agent reads), search with an MCP tool (masked), and answer with an email
// (masked on the way back). Skips only without Python 3.10+; the first run builds the venv.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse, parseAllDocuments, parseDocument } from 'yaml';
import { injectDocuments } from '../cli/inject';
import { validateAccessPolicy } from '../common/policy/schema';
import type { AccessPolicy } from '../common/policy/types';
import { resolveInjectorConfig } from '../operator/inject/config';
import type { ApprovalRequest } from '../sidecar/approvals/types';
import { decideOverApi } from './support/approvals';
import { appEnv, NO_PROXY } from '../operator/inject/app-env';
import { CUSTOMER_CARD, CUSTOMER_EMAIL, CUSTOMER_SSN, startMcpFixture, type McpFixture } from './support/mcp/mcp-server';
import { contentText, startScriptedLlm, type ScriptedLlm } from './support/python/scripted-llm';
import { ensureVenv, findPython, type Venv } from './support/python/venv';
import { startStack, type Stack } from './support/stack';

const EXAMPLE = path.join(__dirname, '..', 'examples', 'python-langchain');
const LLM_TOKEN = 'sk-python-example-real-key-held-by-the-sidecar';
const MCP_TOKEN = 'mcp-python-example-token';
// What crm.sql holds and the agent must never see (nor the model).
const RAW_PII = ['ada@example.com', '4111 1111 1111 1111', '123-45-6789', '4012888888881881', 'GB82 WEST', CUSTOMER_EMAIL, CUSTOMER_SSN];

const python = findPython();
if (!python.ok) console.warn(`skipping the Python example: ${python.reason}`);
const describePython = python.ok ? describe : describe.skip;

interface Entry {
  role: 'user' | 'assistant' | 'tool';
  content: string;
  name?: string;
  tool_calls?: Array<{ name: string; args: Record<string, unknown> }>;
}

/** The example policy pointed at this run's servers (as the demo points examples/policy.yaml at its own). */
function localPolicy(pgPort: number, llmPort: number, mcpUrl: string): string {
  const doc = parseDocument(fs.readFileSync(path.join(EXAMPLE, 'policy.yaml'), 'utf8'));
  doc.setIn(['spec', 'targets', 0, 'postgres', 'port'], pgPort);
  doc.setIn(['spec', 'targets', 0, 'postgres', 'tls'], 'disable');
  doc.setIn(['spec', 'targets', 1, 'http', 'baseUrl'], `http://127.0.0.1:${llmPort}`);
  doc.setIn(['spec', 'targets', 2, 'mcp', 'url'], mcpUrl);
  return doc.toString();
}

/** The app-container env the operator injects for this policy, for this run's egress port and database listener. */
function injectedEnv(stack: Stack): Record<string, string> {
  const policy = parse(fs.readFileSync(stack.policyFile, 'utf8')) as AccessPolicy;
  const env: Record<string, string> = {};
  for (const e of appEnv(policy, stack.sidecar.egressPort)) env[e.name] = String(e.value);
  // The policy's listenPort (15432) is overridden to a free port for the test.
  env.DATABASE_URL = env.DATABASE_URL.replace('127.0.0.1:15432/', `127.0.0.1:${stack.port}/`);
  return env;
}

interface AgentRun {
  mode: 'json' | 'stream';
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  transcript: Entry[];
}

/** Runs agent.py with `env` (async: the sidecar runs in this process, the agent must not block its event loop). */
async function runAgent(python: string, env: Record<string, string>, mode: AgentRun['mode'], dir: string): Promise<AgentRun> {
  const transcriptFile = path.join(dir, `transcript-${mode}.json`);
  const started = performance.now();
  const agentEnv: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, LANG: 'C.UTF-8', ...env };
  if (mode === 'stream') agentEnv.OPENAI_STREAMING = '1';
  const run = await new Promise<Omit<AgentRun, 'transcript' | 'mode'>>((resolve) => {
    execFile(
      python,
      [path.join(EXAMPLE, 'agent.py'), '--transcript', transcriptFile],
      { env: agentEnv, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr, seconds: (performance.now() - started) / 1000 }),
    );
  });
  const transcript = fs.existsSync(transcriptFile) ? (JSON.parse(fs.readFileSync(transcriptFile, 'utf8')) as Entry[]) : [];
  return { ...run, mode, transcript };
}

describePython('examples/python-langchain: the LangChain agent through the sidecar', () => {
  let venv: Venv;
  let llm: ScriptedLlm;
  let mcp: McpFixture;
  let stack: Stack;
  let env: Record<string, string>;
  // Two agents at once: the model's answers as JSON, and streamed (OPENAI_STREAMING=1: SSE deltas).
  let runs: AgentRun[];
  const held: Array<{ req: ApprovalRequest; verdict: 'approve' | 'deny' }> = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-python-example-'));

  beforeAll(async () => {
    if (!python.ok) return;
    venv = await ensureVenv(python, path.join(EXAMPLE, 'requirements.txt'));
    console.log(
      `python example venv ${venv.dir}: ${venv.installSeconds > 0 ? `built in ${venv.installSeconds.toFixed(1)} s` : 'cached'}` +
        ` (python ${python.version}, langchain ${venv.packages['langchain']}, langchain-protocol ${venv.packages['langchain-protocol']})`,
    );
    llm = await startScriptedLlm([
      { tool: 'query_crm', args: { sql: 'SELECT id, name, email, card_number, ssn, notes FROM customers ORDER BY id' } },
      { tool: 'query_crm', args: { sql: 'DROP TABLE orders' } },
      { tool: 'query_crm', args: { sql: "SELECT pg_catalog.pg_read_file('/etc/passwd')" } },
      { tool: 'query_crm', args: { sql: 'DELETE FROM orders WHERE total < 20' } },
      { tool: 'search_customers', args: { query: 'Ada Lovelace' } },
      { answer: (results) => `Ada can be reached at ada@example.com. What the tools said:\n${results.join('\n')}` },
    ]);
    mcp = await startMcpFixture();
    stack = await startStack({
      setupSql: fs.readFileSync(path.join(EXAMPLE, 'crm.sql'), 'utf8'),
      role: {
        name: 'support_agent',
        password: 'example-only-s3cret',
        grants: 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO support_agent',
      },
      policy: (pg) => localPolicy(pg.port, llm.port, mcp.url),
      sidecar: { localApprovals: true },
      beforeSidecar: (secrets) => {
        for (const [name, token] of [
          ['openai', LLM_TOKEN],
          ['crm-tools', MCP_TOKEN],
        ]) {
          fs.mkdirSync(path.join(secrets, name), { recursive: true });
          fs.writeFileSync(path.join(secrets, name, 'token'), token);
        }
      },
    });
    env = injectedEnv(stack);
    // The approver: the first held DELETE is approved, the second denied (whichever agent asks first).
    let running = true;
    const approver = (async (): Promise<void> => {
      while (running) {
        for (const req of (await stack.sidecar.approvals!.list({ state: 'pending' })) ?? []) {
          const verdict = held.length === 0 ? 'approve' : 'deny';
          held.push({ req, verdict });
          await decideOverApi(stack.sidecar, req.id, verdict, verdict === 'approve' ? 'ticket OPS-42' : 'not during the freeze');
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    runs = await Promise.all((['json', 'stream'] as const).map((mode) => runAgent(venv.python, env, mode, tmp)));
    running = false;
    await approver;
    for (const r of runs)
      console.log(`python example agent (${r.mode}) ran in ${r.seconds.toFixed(1)} s (exit ${r.code})\n${r.stdout}${r.stderr}`);
  }, 15 * 60_000);

  afterAll(async () => {
    await stack?.stop();
    await mcp?.close();
    await llm?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const toolResults = (r: AgentRun): Entry[] => r.transcript.filter((e) => e.role === 'tool');

  test('the agent got the env injection sets: sidecar addresses, a placeholder key, the proxy variables', () => {
    expect(env.DATABASE_URL).toBe(`postgresql://agent@127.0.0.1:${stack.port}/crm?sslmode=disable`);
    expect(env.OPENAI_BASE_URL).toBe(`http://127.0.0.1:${stack.sidecar.egressPort}/openai/v1`);
    expect(env.CRM_TOOLS_MCP_URL).toBe(`http://127.0.0.1:${stack.sidecar.egressPort}/crm-tools`);
    expect(env.HTTPS_PROXY).toBe(`http://127.0.0.1:${stack.sidecar.egressPort}`);
    expect(env.https_proxy).toBe(env.HTTPS_PROXY);
    expect(env.NO_PROXY).toBe(NO_PROXY);
    expect(env.OPENAI_API_KEY).not.toContain(LLM_TOKEN);
  });

  test('it runs to the end, answers JSON and streamed; the policy hid the forbidden MCP tool from it', () => {
    for (const r of runs) {
      expect({ mode: r.mode, code: r.code }).toEqual({ mode: r.mode, code: 0 });
      expect(r.stdout).toContain('tools: query_crm, search_customers\n');
      expect(toolResults(r).map((e) => e.name)).toEqual(['query_crm', 'query_crm', 'query_crm', 'query_crm', 'search_customers']);
    }
    expect(llm.requests.map((q) => q.body.stream === true).sort()).toEqual([...Array(6).fill(false), ...Array(6).fill(true)]);
  });

  test('the rows it read came back masked', () => {
    for (const r of runs) {
      const rows = JSON.parse(toolResults(r)[0].content) as Array<Record<string, string>>;
      expect(rows.map((row) => row.name)).toEqual(['Ada Lovelace', 'Grace Hopper', 'Alan Turing']);
      expect(rows[0]).toMatchObject({ email: '[REDACTED]', ssn: '[REDACTED]', card_number: expect.stringMatching(/1111$/) });
      expect(rows[0].card_number).not.toContain('4111');
      expect(rows[1].notes).toContain('[REDACTED]');
    }
  });

  test('the denied DROP and the server-file read reached it as PostgreSQL errors naming the rule; nothing ran', async () => {
    for (const r of runs) {
      const [, drop, file] = toolResults(r);
      expect(drop.content).toMatch(/^ERROR 42501: .*rule "no-ddl"/);
      expect(file.content).toMatch(/^ERROR 42501: .*rule "no-server-side-code"/);
    }
    const tables = await stack.admin("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(tables[0].n).toBe(2);
    const denied = stack.events.filter((e) => e.decision === 'deny').map((e) => e.rule);
    // (and the held DELETE the approver denied, below)
    expect(denied.sort()).toEqual(['no-ddl', 'no-ddl', 'no-server-side-code', 'no-server-side-code', 'writes-need-approval']);
  });

  test('the held DELETE waited for the approver: approved once it ran, denied it reached the agent as an error', async () => {
    expect(held.map((h) => [h.req.rule, h.verdict])).toEqual([
      ['writes-need-approval', 'approve'],
      ['writes-need-approval', 'deny'],
    ]);
    expect(held[0].req.operation.display).toContain('DELETE FROM orders WHERE total < 20');
    const outcomes = runs.map((r) => toolResults(r)[3].content).sort();
    expect(outcomes).toEqual([expect.stringMatching(/^ERROR 42501: .*not during the freeze/), 'OK DELETE 1']);
    expect(outcomes[0]).toContain('rule "writes-need-approval"');
    const orders = await stack.admin('SELECT count(*)::int AS n FROM orders');
    expect(orders[0].n).toBe(3);
  });

  test('the MCP tool result came back masked; the server got the sidecar token', () => {
    for (const r of runs) {
      expect(toolResults(r)[4].content).toMatch(/^Found Ada Lovelace: email \[REDACTED\], card \[REDACTED\], ssn \[REDACTED\]/);
    }
    expect(mcp.methods().filter((m) => m === 'tools/call:search_customers')).toHaveLength(2);
    const auth = mcp.received.map((r) => r.headers.authorization);
    expect(new Set(auth)).toEqual(new Set([`Bearer ${MCP_TOKEN}`]));
  });

  test("the model's answer was masked on its way back; the model saw no PII and got the real key", () => {
    for (const r of runs) {
      const answer = r.transcript.at(-1)!;
      expect(answer.role).toBe('assistant');
      expect(answer.content).toMatch(/^Ada can be reached at \[REDACTED\]\./);
    }
    expect(llm.requests.length).toBe(12);
    for (const q of llm.requests) {
      expect(q.headers.authorization).toBe(`Bearer ${LLM_TOKEN}`);
      expect(q.body.tools?.map((t) => t.function?.name)).toEqual(['query_crm', 'search_customers']);
    }
    const shown = JSON.stringify(llm.requests.map((q) => q.body.messages?.map((m) => contentText(m.content))));
    const printed = runs.map((r) => r.stdout + r.stderr + JSON.stringify(r.transcript)).join('\n');
    for (const pii of [...RAW_PII, CUSTOMER_CARD]) {
      expect(shown).not.toContain(pii);
      expect(printed).not.toContain(pii);
    }
  });
});

// The cluster variant, checked without a cluster: the files the kustomization lists, the policy
// against the CRD schema and against the local policy (same rules and masking), and the Job's pod
// as the webhook would inject it.
describe('examples/python-langchain/kubernetes', () => {
  const dir = path.join(EXAMPLE, 'kubernetes');
  const read = (f: string): unknown[] => parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as unknown);
  const kustomization = read('kustomization.yaml')[0] as { resources: string[] };
  const [policy] = read('policy.yaml') as AccessPolicy[];
  type Container = { name: string; env?: Array<{ name: string; value?: string }>; volumeMounts?: Array<{ name: string }> };
  type PodSpec = { containers: Container[]; initContainers?: Container[]; volumes?: Array<{ name: string; secret?: unknown }> };
  type Job = { kind: string; spec: { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };

  test('the kustomization lists the ServiceAccount and policy before the agent, and every file parses', () => {
    expect(kustomization.resources).toEqual(['rbac.yaml', 'policy.yaml', 'agent.yaml']);
    for (const f of kustomization.resources) expect(read(f).length).toBeGreaterThan(0);
  });

  test('the policy is valid, reaches the in-cluster database by its Service, and enforces what the local one does', () => {
    expect(validateAccessPolicy(policy)).toMatchObject({ ok: true });
    const local = parse(fs.readFileSync(path.join(EXAMPLE, 'policy.yaml'), 'utf8')) as AccessPolicy;
    const crm = policy.spec.targets.find((t) => t.name === 'crm')!;
    expect(crm.postgres?.host).toBe('crm-db.crm.svc');
    const mcpTargets = new Set(local.spec.targets.filter((t) => t.mcp).map((t) => t.name));
    // Approvers are the cluster's people (kubernetes-admin on kind); everything else is the same.
    const decisions = (rules: AccessPolicy['spec']['rules']): unknown =>
      rules?.map((r) => ({ ...r, approval: r.approval && { ...r.approval, approvers: undefined } }));
    expect(decisions(policy.spec.rules)).toEqual(decisions(local.spec.rules?.filter((r) => !mcpTargets.has(String(r.match?.target)))));
    expect(policy.spec.masking).toEqual(local.spec.masking);
    expect(policy.spec.targets.find((t) => t.name === 'openai')).toEqual(local.spec.targets.find((t) => t.name === 'openai'));
  });

  test('injected as the webhook would: the agent gets sidecar addresses and a placeholder key, never the Secrets', () => {
    const docs = read('agent.yaml');
    const out = injectDocuments(docs, {
      policies: [policy],
      config: resolveInjectorConfig({ image: 'ghcr.io/agent-warden/agent-warden:test' }),
      defaultNamespace: 'agents',
    });
    expect(out.errors).toEqual([]);
    const job = out.documents[0] as Job;
    expect(job.kind).toBe('Job');
    const pod = job.spec.template.spec;
    const agent = pod.containers.find((c) => c.name === 'agent')!;
    const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      DATABASE_URL: 'postgresql://agent@127.0.0.1:15432/crm?sslmode=disable',
      OPENAI_BASE_URL: 'http://127.0.0.1:15001/openai/v1',
      OPENAI_API_KEY: expect.any(String),
      HTTPS_PROXY: 'http://127.0.0.1:15001',
    });
    const secretVolumes = new Set((pod.volumes ?? []).filter((v) => v.secret).map((v) => v.name));
    expect(secretVolumes.size).toBeGreaterThan(0);
    expect((agent.volumeMounts ?? []).filter((m) => secretVolumes.has(m.name))).toEqual([]);
    expect((pod.initContainers ?? []).map((c) => c.name)).toEqual(expect.arrayContaining(['warden-sidecar', 'warden-lockdown']));
  });

  test('the image carries the files the Dockerfile copies', () => {
    const copies = [...fs.readFileSync(path.join(EXAMPLE, 'Dockerfile'), 'utf8').matchAll(/^COPY (\S+)/gm)].map((m) => m[1]);
    expect(copies).toEqual(['requirements.txt', 'agent.py']);
    for (const f of copies) expect(fs.existsSync(path.join(EXAMPLE, f))).toBe(true);
  });
});
