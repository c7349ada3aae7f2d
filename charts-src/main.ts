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
  const files = process.env.PANDO_VALUES ?? '';
  try {
    const values = valuesFromFiles(files);
    // In synth mode the key comes from a values file, not from helm's --set: name the file.
    if (values.licenseKey === '' && values.license.existingSecret.name === '') {
      throw new Error(`licenseKey or license.existingSecret.name is required: add "licenseKey: YOUR_LICENSE_KEY" to ${files ? `the values file (PANDO_VALUES=${files})` : 'a values file and pass it as PANDO_VALUES=FILE'}`);
    }
    const app = new App({ outdir: process.env.CDK8S_OUTDIR ?? 'cdk8s.out' });
    new PandoChart(app, 'pando-webhook', {
      values,
      namespace: process.env.PANDO_NAMESPACE ?? 'pando-system',
      appVersion: packageVersion(),
    });
    app.synth();
  } catch (err) {
    process.stderr.write(`pando chart: ${files ? `PANDO_VALUES=${files}: ` : ''}${(err as Error).message}\n`);
    process.exit(1);
  }
}
