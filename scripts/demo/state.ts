// The demo's state (.tools/demo/state.json): what `npm run demo` started, so that a second run can
// tell that one is running and `npm run demo -- down` ends exactly these processes.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface DemoState {
  webhookPid: number;
  /** An argument of the webhook's command line (app/main.ts, or the image's entry point): tells a reused pid from ours. */
  webhookArg: string;
  /** The image runner's folder of mounted files (image path only). */
  runDir?: string;
  webhookPort: number;
  metricsPort: number;
  /** HOST:PORT of the local OCI registry. */
  registry: string;
  /** oci://HOST/charts/pando-webhook:VERSION */
  chartRef: string;
  /** Where the webhook runs from, and why. */
  runFrom: string;
  kubeconfig: string;
  startedAt: string;
}

export function readDemoState(file: string): DemoState | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<DemoState>;
    return typeof s.webhookPid === 'number' && typeof s.webhookPort === 'number' ? (s as DemoState) : undefined;
  } catch {
    return undefined;
  }
}

export function writeDemoState(file: string, state: DemoState): void {
  writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
}

/** The process `pid` is alive and runs `script` (a recorded pid may have been reused since). */
export function runsScript(pid: number, script: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(script);
  } catch {
    return false;
  }
}
