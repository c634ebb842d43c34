// Entry point of the plugin executables that `kubewire cni install` writes: one bundle,
// several plugins, chosen by the first argument (the installed wrapper passes its name).

import { linux } from '../../dataplane/linux/host.ts';
import { runPlugin } from '../skel/skel.ts';
import { PLUGINS } from './registry.ts';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  const funcs = PLUGINS[name];
  if (!funcs) {
    process.stderr.write(`unknown kubewire CNI plugin ${JSON.stringify(name)}; known: ${Object.keys(PLUGINS).join(', ')}\n`);
    process.exitCode = 1;
    return;
  }
  const needsStdin = Boolean(process.env.CNI_COMMAND) && process.env.CNI_COMMAND !== 'VERSION';
  const stdin = needsStdin || !process.stdin.isTTY ? await readStdin() : Buffer.alloc(0);
  process.exitCode = await runPlugin(name, funcs, {
    env: process.env,
    stdin,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
  }, linux);
}

void main();
