// The kubewire command line. Errors are printed as one clear line, never a stack trace.

import { isMainThread } from 'node:worker_threads';
import { Command } from 'commander';
import { ApiError } from '../client/rest.ts';
import { VERSION } from '../api/version.ts';
import { kubewireVersion } from '../state/paths.ts';
import { CniError } from '../cni/spec/errors.ts';
import { registerCniCommands } from './cni.ts';
import { registerCreateCommands } from './create.ts';
import { registerDemoCommands } from './demo.ts';
import { registerClusterCommands } from './cluster.ts';
import { registerKubeconfigCommands } from './kubeconfig.ts';
import { registerProxyCommand } from './proxy.ts';
import { registerComponentCommands } from './components.ts';
import { defaultCluster, registerKubectlCommands } from './kubectl.ts';
import { registerTraceCommands } from './trace.ts';
import { registerUiCommands } from './ui.ts';
import { clusterFlag, clusterKernel, runInKernel, runsInGuest } from '../kernel/client.ts';
import { commandDone, takeWarmRequest } from '../kernel/warm.ts';
import { mayUseHostKernel } from '../lifecycle/privileges.ts';
import { PermissionDenied } from '../supervisor/supervisor.ts';

// A thread of the daemon (the nodes' pod sandboxes, daemon/sandbox-worker.ts) serves it, runs no command.
if (!isMainThread && (await import('../daemon/sandbox-worker.ts')).servingSandboxes) await new Promise(() => undefined);

// A warm process in a cluster's own kernel waits here for the command it is to be (kernel/guest.ts).
if (process.env.KUBEWIRE_WARM) await takeWarmRequest();

// A reader that went away (`kubewire get pods | head`) ends the command as SIGPIPE ends kubectl:
// quietly, with 128 + 13, never an EPIPE stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(141);
  throw e;
});

const program = new Command();
program
  .name('kubewire')
  .description('Kubernetes host networking on one Linux machine, with the real kernel')
  .version(`kubewire v${kubewireVersion()}`, '-V, --version', "print kubewire's version")
  .showHelpAfterError();
program
  .command('version')
  .description("print kubewire's version, the Kubernetes API version its clusters serve, and Node's")
  .action(() => {
    process.stdout.write(`kubewire v${kubewireVersion()} (serves the Kubernetes API as ${VERSION.gitVersion}; Node.js ${process.version})\n`);
  });
registerClusterCommands(program);
registerKubeconfigCommands(program);
registerKubectlCommands(program);
registerTraceCommands(program);
registerUiCommands(program);
registerCreateCommands(program);
registerCniCommands(program);
registerDemoCommands(program);
registerProxyCommand(program);
registerComponentCommands(program);

try {
  // A cluster in a kernel of its own: the command runs there, as typed (kernel/client.ts).
  const argv = process.argv.slice(2);
  const cluster = clusterFlag(argv) ?? defaultCluster();
  if (!process.env.KUBEWIRE_GUEST && runsInGuest(argv, clusterKernel(cluster) !== undefined)) process.exit(await runInKernel(cluster, argv, process));
  await program.parseAsync(process.argv);
} catch (e) {
  const errno = (e as NodeJS.ErrnoException).code;
  if (e instanceof PermissionDenied) process.stderr.write(`${e.message}\n`);
  else if (errno === 'EACCES' || errno === 'EPERM') process.stderr.write(`permission denied: ${(e as Error).message.replace(/^E(ACCES|PERM): (permission denied|operation not permitted), /i, '')}: ${mayUseHostKernel() ? 'the file or process is not yours' : "this needs root (clusters on this machine's kernel are root's): run it with sudo"}\n`);
  else if (e instanceof CniError) process.stderr.write(`error: ${e.message} (CNI error code ${e.code})\n`);
  else if (e instanceof ApiError) process.stderr.write(`Error from server (${e.reason}): ${e.message}\n`);
  else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
// A process that runs on after its command (up going on as the daemon) reports its status now.
commandDone(Number(process.exitCode ?? 0));
