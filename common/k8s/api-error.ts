// What a failed @kubernetes/client-node call says, for people: the API server's own Status message
// (an admission webhook's refusal names its reason), else the transport error. Reads the error as
// plain data, so importing this never loads the Kubernetes client.

export interface ApiStatus {
  /** The HTTP status, when the API server answered at all. */
  code?: number;
  message: string;
}

export function apiStatus(e: unknown): ApiStatus {
  const err = e as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string; message?: string } } | undefined;
  let body = err?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // not a Status: fall through
    }
  }
  const code = typeof err?.code === 'number' ? err.code : undefined;
  const msg = (body as { message?: unknown } | undefined)?.message;
  if (typeof msg === 'string' && msg !== '') return { code, message: msg };
  if (code !== undefined) return { code, message: `the API server answered ${code}` };
  const cause = err?.cause?.code ?? err?.cause?.message;
  return { message: cause ? `${err?.message ?? 'request failed'} (${cause})` : (err?.message ?? String(e)) };
}

export function apiErrorMessage(e: unknown): string {
  return apiStatus(e).message;
}
