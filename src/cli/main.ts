// The kubewire command line. Errors are printed as one clear line, never a stack trace.

import { Command } from 'commander';
import { ApiError } from '../apiserver/client.ts';
import { CniError } from '../cni/spec/errors.ts';
import { registerCniCommands } from './cni.ts';
import { registerCreateCommands } from './create.ts';
import { registerDemoCommands } from './demo.ts';
import { registerClusterCommands } from './cluster.ts';
import { registerKubectlCommands } from './kubectl.ts';

const program = new Command();
program
  .name('kubewire')
  .description('Kubernetes host networking on one Linux machine, with the real kernel')
  .showHelpAfterError();
registerClusterCommands(program);
registerKubectlCommands(program);
registerCreateCommands(program);
registerCniCommands(program);
registerDemoCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CniError) process.stderr.write(`error: ${e.message} (CNI error code ${e.code})\n`);
  else if (e instanceof ApiError) process.stderr.write(`Error from server (${e.reason}): ${e.message}\n`);
  else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
