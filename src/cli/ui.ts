// `kubewire ui`: the page that draws the cluster network, served on 127.0.0.1.

import type { Command } from 'commander';
import { ClusterError } from '../cluster/cluster.ts';
import { linux } from '../dataplane/linux/host.ts';
import { connect, defaultCluster } from './kubectl.ts';

export function registerUiCommands(program: Command): void {
  program
    .command('ui')
    .description('serve a page that draws the cluster network live (nodes, pods, veth pairs, bridges, the underlay, Services, Ingresses) and traces packets on it')
    .option('--port <port>', 'port on 127.0.0.1 (0: any free one)', '8080')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .action(async (o: { port: string; cluster: string }) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ClusterError(`--port ${JSON.stringify(o.port)}: must be a port number (0 for any free one)`);
      if (process.env.KUBEWIRE_GUEST) throw new ClusterError(`cluster ${o.cluster} runs in its own kernel, whose loopback a browser on this machine cannot reach: kubewire ui serves clusters on this machine's kernel`);
      const { client, plan } = connect(o.cluster);
      // Loaded by this command only, as the daemon's and the controllers' code is.
      const { UiServer } = await import('../ui/server.ts');
      const server = new UiServer({ client, plan, dp: linux, port, log: (l) => process.stderr.write(`${l}\n`) });
      const url = await server.start().catch((e: NodeJS.ErrnoException) => {
        throw new ClusterError(e.code === 'EADDRINUSE' ? `--port ${port}: 127.0.0.1:${port} is in use (give another, or --port 0)` : e.message);
      });
      process.stdout.write(`kubewire ui for cluster ${o.cluster}: ${url}  (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.stop();
    });
}
