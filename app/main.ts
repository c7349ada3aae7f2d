// The only file that reads the environment, binds ports, handles signals and exits.

import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import type { KubeConfig, V1OwnerReference } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig, type Config } from './config.ts';
import { ENV, PATH_MUTATE } from './contract.ts';
import { ConfigError, ERRORS } from './errors.ts';
import { createMetrics, type Metrics } from './server/metrics.ts';
import { buildMetricsServer, buildServer } from './server/server.ts';
import { trackConnections, type ConnectionTracker } from './server/drain.ts';
import { createCertReloader, expiryWarning, isValidAt, parseServingPair, secureContextOptions, type ServingPair } from './tls/serving.ts';
import { packageVersion } from './version.ts';
import { statusOf } from './kube/errors.ts';
import type { ReadinessCache } from './kube/namespaces.ts';


// The Kubernetes client, X.509 generation and the features that use them are imported only when the
// configuration turns them on: @kubernetes/client-node alone costs about 0.5 s of start-up and 78 MiB
// of RSS (bench/RESULTS.md), which a webhook serving cert-manager's files without API access
// (namespaceCheck off) does not need to pay.
async function loadKubeConfig(): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromDefault(); // in the cluster: the pod's ServiceAccount; outside: KUBECONFIG
  return kc;
}

async function throwAwayCert(config: Config) {
  const { issueServingCert } = await import('./tls/certs.ts');
  const { loadOrCreateDevCa } = await import('./tls/dev-ca.ts');
  const now = new Date();
  const dev = await loadOrCreateDevCa(now);
  const leaf = await issueServingCert(dev.ca, ['127.0.0.1', 'localhost', '::1'], now, 1);
  return { pair: parseServingPair(leaf.certPem, leaf.keyPem), caFile: dev.certFile, reused: dev.reused, port: config.port };
}

async function readinessCache(config: Config, metrics: Metrics, logger: Logger) {
  const { readinessCaches, kubeReadinessFetcher } = await import('./kube/namespaces.ts');
  const fetch = kubeReadinessFetcher(await loadKubeConfig(), config.sidecar.imagePullSecrets);
  return readinessCaches({
    fetch: (namespace) => {
      metrics.namespaceLookups.inc();
      return fetch(namespace);
    },
    onError: (namespace, reason, err) => {
      metrics.namespaceLookupErrors.inc({ reason });
      // Reason and HTTP status only: a client error's message carries the response body.
      logger.warn({ code: ERRORS.NAMESPACE_LOOKUP_FAILED.code, namespace, reason, status: statusOf(err) }, ERRORS.NAMESPACE_LOOKUP_FAILED.message);
    },
  });
}

/** The ownerReferences of what this webhook creates (its Deployment), when it creates anything. */
async function runtimeOwner(config: Config, logger: Logger): Promise<V1OwnerReference[]> {
  if (config.ownerDeployment === '' || (!config.selfSigned && !config.namespaceSetupAuto && !config.watchdog && !config.rollout && config.licenseCopyNamespaces.length === 0)) return [];
  const { deploymentOwner } = await import('./kube/owner.ts');
  const { ownerReferences, reason } = await deploymentOwner(await loadKubeConfig(), config.namespace, config.ownerDeployment);
  if (reason) logger.warn({ reason }, 'objects this webhook creates get no owner: helm uninstall will leave them');
  return ownerReferences;
}

/** The configuration from the environment; a bad value exits 2 with its error code. */
function configOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pando-webhook: ${err.code}: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** The serving certificate, from whichever source the configuration names. */
interface ServingCertificates {
  /** The pair served now; undefined until one loads. */
  pair(): ServingPair | undefined;
  /** Self-signed: whether the caBundle read back trusts the served leaf; otherwise always true. */
  trusted(): boolean;
  /** Serves each new pair on this server from now on, and starts reloading or rotating. */
  start(app: FastifyInstance): Promise<void>;
  stop(): void;
  /** Neither files nor self-signed: a throw-away certificate from the development CA. */
  devCa?: { file: string; reused: boolean };
}

/** cert-manager's files (reloaded when they change), the self-signed CA, or the development CA. */
async function servingCertificates(config: Config, metrics: Metrics, logger: Logger, owner: V1OwnerReference[]): Promise<ServingCertificates> {
  let app: FastifyInstance | undefined;
  // Self-signed: ready only while the caBundle read back trusts the served leaf.
  let bundleTrusted = !config.selfSigned;
  let pair: ServingPair | undefined;
  const serve = (next: ServingPair) => {
    pair = next;
    metrics.certExpiry.set(next.notAfter.getTime() / 1000);
    (app!.server as unknown as HttpsServer).setSecureContext(secureContextOptions(next));
    logger.info({ fingerprint: next.fingerprint, notAfter: next.notAfter.toISOString() }, 'serving certificate loaded');
  };
  const reloader = config.tls
    ? createCertReloader({
        files: config.tls,
        onChange: serve,
        onError: (error) => logger.error({ code: ERRORS.TLS_LOAD_FAILED.code, reason: error.message }, ERRORS.TLS_LOAD_FAILED.message),
      })
    : undefined;
  const selfSigned = config.selfSigned
    ? (await import('./tls/selfsigned/manager.ts')).createSelfSignedManager(await loadKubeConfig(), {
        ownerReferences: owner,
        namespace: config.namespace,
        secretName: config.selfSigned.secretName,
        webhookConfigName: config.selfSigned.webhookConfigName,
        policy: {
          ...config.selfSigned,
          hosts: [...config.selfSigned.hosts],
          retireMs: 2 * config.selfSigned.checkIntervalMs + config.selfSigned.propagationMs,
          servingTtlMs: 3 * config.selfSigned.checkIntervalMs,
        },
        checkIntervalMs: config.selfSigned.checkIntervalMs,
        logger,
        replica: config.podName || hostname(),
        onServe: serve,
        onBundleCheck: (inSync) => {
          bundleTrusted = inSync;
          metrics.caBundleInSync.set(inSync ? 1 : 0);
        },
        onRecovery: (reason) => metrics.tlsSecretRecoveries.inc({ reason }),
      })
    : undefined;
  let devCa: ServingCertificates['devCa'];
  if (!reloader && !selfSigned) {
    const dev = await throwAwayCert(config);
    pair = dev.pair;
    devCa = { file: dev.caFile, reused: dev.reused };
    metrics.certExpiry.set(pair.notAfter.getTime() / 1000);
  }
  return {
    pair: () => pair,
    trusted: () => bundleTrusted,
    devCa,
    async start(server) {
      app = server;
      reloader?.reload();
      reloader?.start();
      if (selfSigned) {
        // Unready until the first pass has a certificate; the interval keeps retrying.
        await selfSigned.reconcile().catch((err: unknown) => logger.error({ code: ERRORS.TLS_LOAD_FAILED.code, reason: (err as Error).message }, 'self-signed certificate not ready yet'));
        selfSigned.start();
      }
      const expiryCheck = setInterval(() => {
        const warning = pair && expiryWarning(pair, new Date());
        if (warning) logger.warn({ code: 'PANDO_TLS_EXPIRING' }, warning);
      }, 3_600_000);
      expiryCheck.unref();
    },
    stop() {
      reloader?.stop();
      selfSigned?.stop();
    },
  };
}

interface Controllers {
  namespaceSetup?: { stop(): Promise<unknown> | unknown };
  licenseCopy?: { stop(): Promise<unknown> | unknown };
  watchdog?: { stop(): Promise<unknown> | unknown };
  rollout?: { stop(): Promise<unknown> | unknown };
}

/** The in-cluster loops the configuration turns on (each elects its leader on its own Lease). */
async function startControllers(config: Config, deps: { logger: Logger; registry: Registry; readiness: ReadinessCache | undefined; owner: V1OwnerReference[] }): Promise<Controllers> {
  const { logger, registry, readiness, owner } = deps;
  const namespaceSetup = config.namespaceSetupAuto
    ? (await import('./controllers/namespace-setup.ts')).startNamespaceSetup({
        kubeConfig: await loadKubeConfig(),
        namespace: config.namespace,
        excludedNamespaces: config.excludedNamespaces,
        namespaceSelector: config.namespaceSetupSelector,
        identity: config.podName || hostname(),
        log: logger,
        licenseSecret: config.licenseSecret,
        ownerReferences: owner,
        pullSecrets: config.sidecar.imagePullSecrets,
        protectedNamespaces: config.licenseCopyNamespaces,
      })
    : undefined;
  const licenseCopy = config.licenseCopyNamespaces.length > 0
    ? (await import('./controllers/license-copy.ts')).startLicenseCopy({
        kubeConfig: await loadKubeConfig(),
        namespace: config.namespace,
        namespaces: config.licenseCopyNamespaces,
        source: config.licenseSecret,
        identity: config.podName || hostname(),
        ownerReferences: owner,
        log: logger,
      })
    : undefined;
  const watchdog = config.watchdog
    ? (await import('./controllers/watchdog.ts')).startWatchdog({
        kubeConfig: await loadKubeConfig(),
        namespace: config.namespace,
        identity: config.podName || hostname(),
        plan: (await import('./inject/sidecar.ts')).planInjection(config),
        config: config.watchdog,
        readiness,
        registry,
        ownerReferences: owner,
        log: logger,
      })
    : undefined;
  const rollout = config.rollout
    ? (await import('./controllers/rollout.ts')).startRollout({
        kubeConfig: await loadKubeConfig(),
        namespace: config.namespace,
        identity: config.podName || hostname(),
        target: (await import('./inject/sidecar.ts')).planInjection(config),
        config: config.rollout,
        excludedNamespaces: config.excludedNamespaces,
        registry,
        ownerReferences: owner,
        log: logger,
      })
    : undefined;
  return { namespaceSetup, licenseCopy, watchdog, rollout };
}

/** Without a certificate of its own: where the development CA is and a review to try. */
function printDevCaHint(config: Config, devCa: ServingCertificates['devCa']): void {
  if (!devCa) return;
  const example = `curl --cacert ${devCa.file} -H 'content-type: application/json' --data @test/testdata/golden/minimal-pod/input.json https://127.0.0.1:${config.port}${PATH_MUTATE}`;
  const kept = devCa.reused ? 'the development CA of an earlier start, kept while valid' : 'a new development CA, kept for later starts';
  process.stdout.write(`\nNo ${ENV.tlsCertFile} given: serving a certificate for 127.0.0.1 from ${kept} (${devCa.file}; webhook.caBundle: base64 -w0 ${devCa.file}).\nTry:\n  ${example}\n\n`);
}

interface Running {
  config: Config;
  logger: Logger;
  app: FastifyInstance;
  metricsApp: FastifyInstance;
  webhookConnections: ConnectionTracker;
  metricsConnections: ConnectionTracker;
  certificates: ServingCertificates;
  controllers: Controllers;
  /** Called once, when the first signal arrives: from then on /readyz fails. */
  onStopping: () => void;
}

/** SIGTERM and SIGINT: unready at once, answer for the drain delay, then close and exit. */
function exitOnSignals(running: Running): void {
  const { config, logger, app, metricsApp, webhookConnections, metricsConnections, certificates, controllers } = running;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    running.onStopping();
    webhookConnections.startDraining();
    metricsConnections.startDraining();
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    certificates.stop();
    // The controllers give their Leases up (so another replica takes over at once); the exit below waits for that.
    const controllersStopped = Promise.all([controllers.namespaceSetup?.stop(), controllers.licenseCopy?.stop(), controllers.watchdog?.stop(), controllers.rollout?.stop()]).catch(() => undefined);
    // Endpoints are removed asynchronously: for a moment the API server still sends reviews here.
    // Keep answering them (unready) for the drain delay, then stop accepting and finish in-flight.
    logger.info({ signal, drainDelayMs: config.shutdownDelayMs }, 'shutting down: unready, still answering reviews');
    setTimeout(() => {
      // close() stops accepting and then waits for every open connection, and clients hold some open
      // (see drain.ts): close each one as soon as no request is in flight on it, so in-flight reviews
      // still finish and nothing waits for the timeout.
      const sweep = setInterval(() => {
        webhookConnections.closeIdle();
        metricsConnections.closeIdle();
      }, 50);
      Promise.all([app.close(), metricsApp.close(), controllersStopped]).finally(() => clearInterval(sweep)).then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while shutting down');
          process.exit(1);
        },
      );
    }, config.shutdownDelayMs);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function main(): Promise<void> {
  const config = configOrExit();
  const version = packageVersion();
  const logger = pino({ level: config.logLevel, base: { service: 'pando-webhook', version } });
  const registry = new Registry();
  const metrics = createMetrics(registry, { version, sidecarVersion: config.sidecar.version });
  const owner = await runtimeOwner(config, logger);
  const certificates = await servingCertificates(config, metrics, logger, owner);

  // The same lookup for the server and the watchdog (both judge a pod the same way), each with its
  // own rate limit, so the watchdog never uses up the webhook's lookups (issue 23 item 3).
  const caches = config.namespaceCheck ? await readinessCache(config, metrics, logger) : undefined;
  const readiness = caches?.server;
  let stopping = false;
  const initialPair = certificates.pair();
  const app = buildServer(config, {
    metrics,
    logger,
    readiness,
    // Without a pair yet, the server starts with an empty context and stays unready until one loads.
    tls: initialPair ? secureContextOptions(initialPair) : {},
    isReady: () => !stopping && certificates.trusted() && isValidAt(certificates.pair(), new Date()),
  });
  await certificates.start(app);
  const metricsApp = buildMetricsServer(registry);

  const webhookConnections = trackConnections(app.server);
  const metricsConnections = trackConnections(metricsApp.server);
  await app.listen({ host: config.host, port: config.port });
  await metricsApp.listen({ host: config.host, port: config.metricsPort });
  logger.info({ port: config.port, metricsPort: config.metricsPort, sidecarVersion: config.sidecar.version }, 'pando-webhook listening');
  const controllers = await startControllers(config, { logger, registry, readiness: caches?.watchdog, owner });
  printDevCaHint(config, certificates.devCa);
  exitOnSignals({
    config,
    logger,
    app,
    metricsApp,
    webhookConnections,
    metricsConnections,
    certificates,
    controllers,
    onStopping: () => {
      stopping = true;
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`pando-webhook: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
