// A stand-in Kubernetes API server just big enough for `helm template --dry-run=server`: version,
// legacy (non-aggregated) discovery for the kinds a chart renders, and GET of a few named
// cluster-scoped objects, so the chart's `lookup` calls see live objects. Everything else is a
// Kubernetes `Status` 404, as the real server answers.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ApiResource {
  groupVersion: string; // "v1" or "apps/v1"
  kind: string;
  plural: string;
  namespaced: boolean;
}

export interface LookupApiServer {
  url: string;
  /** A kubeconfig (YAML) pointing at this server. */
  kubeconfig: string;
  /** The paths requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

function discovery(resources: ApiResource[]): Map<string, unknown> {
  const byGv = new Map<string, ApiResource[]>();
  for (const r of resources) byGv.set(r.groupVersion, [...(byGv.get(r.groupVersion) ?? []), r]);
  const docs = new Map<string, unknown>();
  docs.set('/version', { major: '1', minor: '33', gitVersion: 'v1.33.0', platform: 'linux/amd64' });
  docs.set('/api', { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  const groups = [...byGv.keys()].filter((gv) => gv.includes('/'));
  docs.set('/apis', {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups.map((gv) => {
      const [name, version] = gv.split('/');
      return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
    }),
  });
  for (const [gv, list] of byGv) {
    docs.set(gv === 'v1' ? '/api/v1' : `/apis/${gv}`, {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv,
      resources: list.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
      })),
    });
  }
  return docs;
}

/** `objects` maps an API path (`/apis/<group>/<version>/<plural>/<name>`) to the object served there. */
export async function startLookupApiServer(resources: ApiResource[], objects: Record<string, unknown>): Promise<LookupApiServer> {
  const docs = discovery(resources);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0];
    requests.push(`${req.method} ${p}`);
    const body = req.method === 'GET' ? (docs.get(p) ?? objects[p]) : undefined;
    res.setHeader('content-type', 'application/json');
    if (body !== undefined) {
      res.end(JSON.stringify(body));
      return;
    }
    res.statusCode = 404;
    res.end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `${p} not found`,
        reason: 'NotFound',
        code: 404,
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: stand-in, cluster: {server: "${url}"}}]`,
    'contexts: [{name: stand-in, context: {cluster: stand-in, user: nobody}}]',
    'users: [{name: nobody, user: {}}]',
    'current-context: stand-in',
    '',
  ].join('\n');
  return {
    url,
    kubeconfig,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
