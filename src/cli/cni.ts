// `kubewire cni ...`: install the plugins, and drive a network like cnitool does.

import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { DEFAULT_SERVER_SOCKET } from '../cni/install.ts';
import { registerInstall } from './cni-install.ts';
import { loadDefaultConfList } from '../cni/runtime/conflist.ts';
import { CniRuntime, type RuntimeConf } from '../cni/runtime/runtime.ts';
import { convertResult, type Attachment } from '../cni/spec/types.ts';
import { validateContainerID } from '../cni/spec/names.ts';
import { linux } from '../dataplane/linux/host.ts';

interface RuntimeFlags {
  confDir: string;
  binDir: string;
  cacheDir: string;
  containerId?: string;
  ifname: string;
  args?: string;
  capArgs?: string;
  hostNetns?: string;
}

function withRuntimeFlags(cmd: Command): Command {
  return cmd
    .option('--conf-dir <dir>', 'CNI configuration directory (first file is used)', process.env.NETCONFPATH ?? '/etc/cni/net.d')
    .option('--bin-dir <dirs>', 'plugin directories, colon-separated (CNI_PATH)', process.env.CNI_PATH ?? '/opt/cni/bin')
    .option('--cache-dir <dir>', 'result cache root', '/var/lib/cni')
    .option('--container-id <id>', 'container ID (default: derived from the netns path, as cnitool does)')
    .option('--ifname <name>', 'interface name in the container', process.env.CNI_IFNAME ?? 'eth0')
    .option('--args <k=v;...>', 'CNI_ARGS', process.env.CNI_ARGS)
    .option('--cap-args <json>', 'capability arguments as JSON, e.g. {"portMappings":[...]}', process.env.CAP_ARGS)
    .option('--host-netns <path>', 'run the plugins inside this network namespace');
}

function runtimeOf(flags: RuntimeFlags): CniRuntime {
  return new CniRuntime({ dataplane: linux, path: flags.binDir.split(':').filter(Boolean), cacheDir: flags.cacheDir, hostNetns: flags.hostNetns });
}

function runtimeConf(netns: string, flags: RuntimeFlags): RuntimeConf {
  let capabilityArgs: Record<string, unknown> | undefined;
  if (flags.capArgs) {
    try {
      capabilityArgs = JSON.parse(flags.capArgs) as Record<string, unknown>;
    } catch {
      throw new Error('--cap-args is not valid JSON');
    }
  }
  const args = (flags.args ?? '').split(';').filter(Boolean).map((kv): [string, string] => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--args entry ${JSON.stringify(kv)} is not KEY=VALUE`);
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  });
  const containerID = flags.containerId ?? `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;
  const problem = validateContainerID(containerID);
  if (problem) throw new Error(`--container-id: container ID ${problem}`);
  return { containerID, netns, ifName: flags.ifname, args, capabilityArgs };
}

export function registerCniCommands(program: Command): void {
  const cni = program.command('cni').description('CNI plugins and runtime');

  registerInstall(cni);

  cni
    .command('server')
    .description('serve the installed CNI shims: kubewire\'s plugins run in this process, a call costs no Node.js start (one per node, as a DaemonSet)')
    .option('--socket <path>', 'unix socket the shims connect to (kubewire cni install --socket)', DEFAULT_SERVER_SOCKET)
    .action(async (opts: { socket: string }) => {
      const { CniServer } = await import('../cni/server/server.ts'); // the plugins' code, loaded by this command only
      const server = new CniServer({ socket: opts.socket, dataplane: linux });
      await server.listen();
      process.stderr.write(`serving kubewire's CNI plugins on ${opts.socket}\n`);
      const stop = (): void => void server.close().finally(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });

  for (const verb of ['add', 'check', 'del'] as const) {
    withRuntimeFlags(cni.command(`${verb} <netns>`).description(`${verb.toUpperCase()} the container at <netns> (a path) to the network`)).action(
      async (netns: string, flags: RuntimeFlags) => {
        const conf = runtimeConf(netns, flags);
        const list = loadDefaultConfList(flags.confDir);
        const rt = runtimeOf(flags);
        if (verb === 'add') {
          const result = await rt.addNetworkList(list, conf);
          process.stdout.write(`${JSON.stringify(convertResult(result, list.cniVersion), null, 2)}\n`);
        } else if (verb === 'check') {
          await rt.checkNetworkList(list, conf);
        } else {
          await rt.delNetworkList(list, conf);
        }
      },
    );
  }

  withRuntimeFlags(cni.command('status').description('ask every plugin of the network whether it is ready for ADD')).action(async (flags: RuntimeFlags) => {
    await runtimeOf(flags).getStatusNetworkList(loadDefaultConfList(flags.confDir));
    process.stdout.write('ready\n');
  });

  withRuntimeFlags(cni.command('gc').description('release everything held for attachments not listed as valid'))
    .option('--valid <id/ifname,...>', 'the attachments that are still valid', '')
    .action(async (flags: RuntimeFlags & { valid: string }) => {
      const valid: Attachment[] = flags.valid.split(',').filter(Boolean).map((a) => {
        const [containerID = '', ifname = 'eth0'] = a.split('/');
        return { containerID, ifname };
      });
      await runtimeOf(flags).gcNetworkList(loadDefaultConfList(flags.confDir), valid);
    });
}
