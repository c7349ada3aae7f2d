// npm run cluster:up / cluster:down / cluster:status
import { startCluster, stopCluster, KUBECONFIG_PATH } from './harness.ts';

const log = (line: string) => console.log(line);
const verb = process.argv[2];
if (verb === 'up') {
  const cluster = await startCluster(log);
  console.log(`API server: ${cluster.server}\nkubeconfig: ${KUBECONFIG_PATH}\n  export KUBECONFIG=${KUBECONFIG_PATH}`);
} else if (verb === 'down') {
  await stopCluster(log);
} else {
  console.error('usage: node test/cluster/cli.ts up|down');
  process.exit(2);
}
