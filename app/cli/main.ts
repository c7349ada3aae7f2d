#!/usr/bin/env node
// `pando`: the operator's command line. Parses arguments (commander), runs one command, and turns
// every failure into a message that says what to do, with exit code 2 ("could not run"); 1 is kept
// for "ran and found a problem" (doctor).

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { MODES } from '../contract.ts';
import { runDoctor } from './doctor.ts';
import { runInject, type InjectCommandOptions } from './inject.ts';
import { CliError, detectStyle, formatError } from './output.ts';
import { runSetupNamespace } from './setup-namespace.ts';
import { runRollout } from './rollout.ts';
import { packageVersion } from '../version.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function namespaceName(value: string, previous: string[] = []): string[] {
  if (!DNS1123_LABEL.test(value)) throw new InvalidArgumentError(`"${value}" is not a namespace name (lower-case letters, digits, -)`);
  return [...previous, value];
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new CliError('-f - reads manifests from standard input, but it is a terminal', 'pipe a manifest in (cat app.yaml | pando inject -f -) or give a file');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}


function write(stream: NodeJS.WriteStream) {
  return (text: string) => {
    stream.write(text);
  };
}

function mode(value: string): string {
  if (!(MODES as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${MODES.join(', ')}`);
  return value;
}

export function buildProgram(): Command {
  const program = new Command('pando')
    .description('PandoCore: inject the sidecar into manifests, check a cluster, set up namespaces, steer the sidecar rollout')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run pando help COMMAND for its options)')
    .configureOutput({ outputError: (text, out) => out(text) })
    // Thrown instead of exiting, so usage errors get exit code 2 like every other "could not run".
    .exitOverride();

  program
    .command('inject')
    .description('print manifests with the sidecar injected, exactly as the webhook would (Pods, pod templates of workloads, AdmissionReviews)')
    .requiredOption('-f, --filename <file>', 'manifest file (YAML, multi-document, or JSON); - reads standard input')
    .addOption(new Option('-o, --output <format>', 'yaml: the manifests; json: config used, per-object results and objects').choices(['yaml', 'json']).default('yaml'))
    .option('-n, --namespace <name>', 'namespace of objects that name none', 'default')
    .option('--config <file>', 'JSON or YAML map of PANDO_* variables (the webhook container\'s env)')
    .option('--from-cluster', 'take the settings from the installed webhook Deployment (current kubeconfig context)')
    .option('--check-namespace', 'look up each namespace\'s ServiceAccount and license Secret as the webhook does (PANDO_NAMESPACE_CHECK)')
    .option('--default-mode <mode>', `PANDO_DEFAULT_MODE (${MODES.join(', ')})`, mode)
    .option('--sidecar-image <image>', 'PANDO_SIDECAR_IMAGE')
    .option('--sidecar-version <version>', 'PANDO_SIDECAR_VERSION (default: the image tag)')
    .option('--native', 'PANDO_SIDECAR_NATIVE=true: native sidecar (initContainer, restartPolicy Always)')
    .option('--no-native', 'PANDO_SIDECAR_NATIVE=false: append the sidecar to containers')
    .option('--excluded-namespaces <list>', 'PANDO_EXCLUDED_NAMESPACES (comma-separated)')
    .option('--sidecar-resources <json>', 'PANDO_SIDECAR_RESOURCES')
    .option('--release-namespace <name>', 'PANDO_NAMESPACE: the webhook\'s own namespace, never injected')
    .option('--context <name>', 'kubeconfig context for --from-cluster and --check-namespace')
    .option('-q, --quiet', 'no per-object summary on standard error')
    .addHelpText('after', '\nSettings: defaults < PANDO_* environment < --config / --from-cluster < flags.\nThe per-object summary goes to standard error, so standard output can be piped to kubectl apply -f -.')
    .action(async (options: InjectCommandOptions & { native?: boolean }, command: Command) => {
      // --native/--no-native: only a flag the user gave counts, not commander's implied default.
      const native = command.getOptionValueSource('native') === 'cli' ? options.native : undefined;
      process.exitCode = await runInject({ ...options, native }, {
        stdin: readStdin,
        stdout: write(process.stdout),
        stderr: write(process.stderr),
        env: process.env,
        errStyle: detectStyle(process.stderr),
      });
    });

  program
    .command('doctor')
    .description('check the installation in the current cluster: one line per check, a fix for each failure, exit code 1 when something is wrong')
    .option('-n, --namespace <name>', 'also check this namespace: exclusion, setup, a dry-run pod; and look only at its pods')
    .option('--pod <name>', 'also check this pod (needs -n): label, injection status and version')
    .option('--release-namespace <name>', 'where the chart is installed', 'pando-system')
    .option('--no-probe', 'skip the server-side dry-run pod (it goes through the webhook and creates nothing)')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .option('--timeout <ms>', 'how long to wait for the webhook', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 100 || n > 60000) throw new InvalidArgumentError('milliseconds from 100 to 60000');
      return n;
    }, 5000)
    .option('--context <name>', 'kubeconfig context')
    .action(async (options: { namespace?: string; pod?: string; releaseNamespace: string; probe: boolean; output: 'text' | 'json'; timeout: number; context?: string }) => {
      if (options.namespace) namespaceName(options.namespace);
      if (options.pod && !options.namespace) throw new CliError('--pod needs the pod\'s namespace', 'add -n NAMESPACE');
      process.exitCode = await runDoctor({ ...options, timeoutMs: options.timeout }, { stdout: write(process.stdout), style: detectStyle(process.stdout) });
    });

  program
    .command('setup-namespace')
    .description('create (or update) ServiceAccount and RoleBinding pando-sidecar, the license Secret and the sidecar\'s pull Secrets in each namespace, by server-side apply')
    .argument('<namespace...>', 'namespaces to set up')
    .option('--release-namespace <name>', 'where the chart is installed (its license Secret is copied)', 'pando-system')
    .option('--dry-run', 'server-side dry run: show what would change, change nothing')
    .option('--delete', 'remove the three objects from each namespace instead (pods already running keep their sidecar)')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .option('--context <name>', 'kubeconfig context')
    .addHelpText('after', '\nIdempotent: running it again reports "unchanged". The license key is copied, never printed.')
    .action(async (namespaces: string[], options: { releaseNamespace: string; dryRun?: boolean; delete?: boolean; output: 'text' | 'json'; context?: string }) => {
      for (const ns of namespaces) namespaceName(ns);
      process.exitCode = await runSetupNamespace(namespaces, options, { stdout: write(process.stdout), style: detectStyle(process.stdout) });
    });

  const rollout = program
    .command('rollout')
    .description('the sidecar rollout after an upgrade (rollout.enabled): status, pause, resume')
    .addHelpText('after', '\nExit codes of status: 0 done, 1 paused, 3 rolling, 2 could not run.');
  for (const [action, description] of [
    ['status', 'target sidecar, workloads per state and per namespace, why paused and the fix; exit 0 done, 1 paused, 3 rolling'],
    ['pause', 'stop the rollout cluster-wide: no further workload is restarted'],
    ['resume', 'continue after a fix (helm rollback, or a corrected version); clears the recorded failure'],
  ] as const) {
    rollout
      .command(action)
      .description(description)
      .option('--release-namespace <name>', 'where the chart is installed', 'pando-system')
      .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
      .option('--context <name>', 'kubeconfig context')
      .action(async (options: { releaseNamespace: string; output: 'text' | 'json'; context?: string }) => {
        namespaceName(options.releaseNamespace);
        process.exitCode = await runRollout(action, options, { stdout: write(process.stdout), style: detectStyle(process.stdout) });
      });
  }

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the message (or the help) already.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    const style = detectStyle(process.stderr);
    if (err instanceof CliError) {
      process.stderr.write(formatError(style, err));
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(formatError(style, new CliError(`unexpected failure: ${(err as Error)?.stack ?? String(err)}`, 'this is a bug in pando: please report it with the command you ran')));
    process.exitCode = 70;
  }
}

await main(process.argv);
