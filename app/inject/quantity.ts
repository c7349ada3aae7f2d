// Kubernetes resource quantities ("250m", "1.5Gi", "2e3") as numbers in base units, for checking
// that the sidecar fits under pod-level resources. Values the API server would reject parse to NaN.

const SUFFIX: Record<string, number> = {
  '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$/;

export function parseQuantity(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return Number.NaN;
  const match = QUANTITY.exec(value.trim());
  if (!match) return Number.NaN;
  const [, number, exponent, suffix] = match;
  return Number(`${number}${exponent ?? ''}`) * (SUFFIX[suffix ?? ''] ?? Number.NaN);
}
