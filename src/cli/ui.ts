// `kubewire ui`: the page that draws the cluster network, served on 127.0.0.1 with a token.

import { isIP } from 'node:net';
import type { Command } from 'commander';
import { ClusterError } from '../cluster/cluster.ts';
import { linux } from '../dataplane/linux/host.ts';
import { DEFAULT_UI_PORT } from '../ui/guard.ts';
import { connect, defaultCluster } from './kubectl.ts';

export function registerUiCommands(program: Command): void {
  program
    .command('ui')
    .description('serve a page that draws the cluster network live (nodes, pods, veth pairs, bridges, the underlay, Services, Ingresses) and traces packets on it; open the URL it prints (it holds a token)')
    .option('--port <port>', `port (0: any free one)`, String(DEFAULT_UI_PORT))
    .option('--address <ip>', 'address to listen on (only loopback names and this address are answered; the token guards the rest)', '127.0.0.1')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .action(async (o: { port: string; address: string; cluster: string }) => {
      const port = Number(o.port);
      if (!/^\d+$/.test(o.port) || port > 65535) throw new ClusterError(`--port ${JSON.stringify(o.port)}: must be a port number (0 for any free one)`);
      if (!isIP(o.address)) throw new ClusterError(`--address ${JSON.stringify(o.address)}: must be an IP address (127.0.0.1, ::1, ...)`);
      if (process.env.KUBEWIRE_GUEST) throw new ClusterError(`cluster ${o.cluster} runs in its own kernel, whose loopback a browser on this machine cannot reach: kubewire ui serves clusters on this machine's kernel`);
      const { client, plan } = connect(o.cluster);
      // Loaded by this command only, as the daemon's and the controllers' code is.
      const { UiServer } = await import('../ui/server.ts');
      const server = new UiServer({ client, plan, dp: linux, port, address: o.address, log: (l) => process.stderr.write(`${l}\n`) });
      const url = await server.start().catch((e: NodeJS.ErrnoException) => {
        throw new ClusterError(e.code === 'EADDRINUSE' ? `--port ${port}: ${o.address}:${port} is in use (give another, or --port 0)` : e.code === 'EADDRNOTAVAIL' ? `--address ${o.address}: not an address of this machine` : e.message);
      });
      if (!/^(127\.|::1$)/.test(o.address)) process.stderr.write(`kubewire ui listens on ${o.address}: plain HTTP, guarded by its token only; anyone who sees the URL can run traces as root\n`);
      process.stdout.write(`kubewire ui for cluster ${o.cluster}: ${url}  (open it: the token in it lets the page in; Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.stop();
    });
}
