// The HTTP status of a failed @kubernetes/client-node call, wherever that client version puts it
// (ApiException.code, statusCode, response.statusCode); undefined for network errors.
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } } | null;
  for (const value of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof value === 'number') return value;
  return undefined;
}
