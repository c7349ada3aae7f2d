// cdk8s app (cdk8s.yaml): `npx cdk8s synth --check-upgrade false` writes plain manifests to
// cdk8s.out/. Values come from the YAML files in PANDO_VALUES (comma-separated) over the defaults,
// and the namespace from PANDO_NAMESPACE (default pando-system). The Helm chart in dist/ is built
// from the same constructs by `npm run chart`.
import { readFileSync } from 'node:fs';
import { App } from 'cdk8s';
import { valuesFromFiles } from './load-values.ts';
import { PandoChart } from './pando-chart.ts';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

if (import.meta.main) {
  try {
    const app = new App({ outdir: process.env.CDK8S_OUTDIR ?? 'cdk8s.out' });
    new PandoChart(app, 'pando-webhook', {
      values: valuesFromFiles(process.env.PANDO_VALUES),
      namespace: process.env.PANDO_NAMESPACE ?? 'pando-system',
      appVersion: packageVersion(),
    });
    app.synth();
  } catch (err) {
    process.stderr.write(`pando chart: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
