// `kubewire demo cni`: the seed's pod-to-pod picture built with kubewire's CNI plugins on
// the real kernel, in namespaces the demo creates and removes.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { installPlugins } from '../cni/install.ts';
import { loadDefaultConfList } from '../cni/runtime/conflist.ts';
import { CniRuntime } from '../cni/runtime/runtime.ts';
import { Lab } from '../lab/lab.ts';
import { demoCluster } from './demo-cluster.ts';
import { linux } from '../dataplane/linux/host.ts';

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const step = (s: string): void => say(`\n\x1b[1m==> ${s}\x1b[0m`);

export function registerDemoCommands(program: Command): void {
  const demo = program
    .command('demo')
    .description('a two-node cluster, a Deployment over both nodes, and a pod-to-pod request across nodes with no NAT (the cluster stays up)')
    .option('--cluster <name>', 'cluster to create or use', process.env.KUBEWIRE_CLUSTER || 'kubewire')
    .action(async (o: { cluster: string }) => demoCluster(o.cluster));
  demo.command('cni').description('two pods on one node joined by veth pairs to a bridge, wired by the CNI plugins').action(demoCni);
}

async function demoCni(): Promise<void> {
  const lab = new Lab(`kw-demo-${process.pid}`);
  try {
    step('A node, two pod network namespaces and an outside client (all lab namespaces)');
    const node = await lab.netns('node');
    const podA = await lab.netns('pod-a');
    const podB = await lab.netns('pod-b');
    const external = await lab.netns('external');
    await lab.link({ netns: node, ifName: 'eth0', address: '192.168.100.10/24' }, { netns: external, ifName: 'eth0', address: '192.168.100.200/24' });
    say(`node ${node}\npods ${podA}, ${podB}\nexternal ${external} (192.168.100.200, reaches the node at 192.168.100.10)`);

    step('kubewire cni install: plugins into a CNI bin directory');
    const bin = lab.dir('bin');
    installPlugins({ dir: bin });
    say(`installed bridge, host-local, loopback, portmap into ${bin}`);
    const confDir = lab.dir('net.d');
    const conflist = {
      cniVersion: '1.1.0',
      name: 'kubewire',
      plugins: [
        { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: lab.dir('ipam') } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
    writeFileSync(join(confDir, '10-kubewire.conflist'), JSON.stringify(conflist, null, 2));
    const list = loadDefaultConfList(confDir);
    const rt = new CniRuntime({ dataplane: linux, path: [bin], cacheDir: lab.dir('cache'), hostNetns: node });
    const loList = { ...list, name: 'cni-loopback', plugins: [{ type: 'loopback' }] };

    step('Pod start: the runtime calls CNI twice per pod, for lo and for eth0');
    const ips: Record<string, string> = {};
    const owners = new Map<string, string>(); // MAC or interface name -> what it is
    for (const [name, netns, ports] of [['pod-a', podA, []], ['pod-b', podB, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]]] as const) {
      const t0 = performance.now();
      await rt.addNetworkList(loList, { containerID: name, netns, ifName: 'lo' });
      const result = await rt.addNetworkList(list, { containerID: name, netns, ifName: 'eth0', capabilityArgs: { portMappings: ports } });
      ips[name] = result.ips![0]!.address.split('/')[0]!;
      const host = result.interfaces![1]!;
      owners.set(result.interfaces![2]!.mac!, `${name}'s eth0`);
      owners.set(host.name, `${name}'s host veth`);
      say(`${name}: eth0 ${result.ips![0]!.address} gw ${result.ips![0]!.gateway}; host end ${host.name} on cni0 (${(performance.now() - t0).toFixed(0)} ms)`);
    }

    step('An HTTP server in pod-b; a request from pod-a crosses the bridge with no NAT');
    const server = await lab.echoServer(podB, 80, 'pod-b');
    const fetchFrom = (netns: string, url: string): Promise<string> => lab.httpGet(netns, url);
    say(`pod-a -> http://${ips['pod-b']}/ : ${(await fetchFrom(podA, `http://${ips['pod-b']}/`)).trim()}`);
    say(`(pod-a's own IP is ${ips['pod-a']}: the server saw the pod's real address)`);

    step('What the bridge learnt: its forwarding database (FDB) and the pods\' neighbour (ARP) tables');
    const learnt = (await linux.at(node).fdb('cni0')).filter((e) => e.state !== 'permanent');
    for (const e of learnt) say(`${e.mac} dev ${e.ifname} master cni0   <- ${owners.get(e.mac) ?? 'unknown'} learnt on ${owners.get(e.ifname) ?? e.ifname}`);
    const neighbours = await linux.at(podA).neighbours('eth0');
    say(`pod-a neighbours:\n${neighbours.map((n) => `${n.dst} dev ${n.dev} lladdr ${n.lladdr ?? '-'} ${(n.state ?? []).join(',')}`).join('\n')}`);

    step('portmap: hostPort 8080 on the node reaches pod-b:80, from outside the node');
    say(`external -> http://192.168.100.10:8080/ : ${(await fetchFrom(external, 'http://192.168.100.10:8080/')).trim()}`);
    say((await linux.at(node).iptablesSave('nat')).split('\n').filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT ')).join('\n'));

    step('Pod stop: DEL in reverse order; nothing is left');
    server.kill();
    for (const [name, netns] of [['pod-a', podA], ['pod-b', podB]] as const) {
      await rt.delNetworkList(list, { containerID: name, netns, ifName: 'eth0' });
      await rt.delNetworkList(loList, { containerID: name, netns, ifName: 'lo' });
    }
    const ports = await linux.at(node).links('cni0');
    say(`ports left on cni0: ${ports.length ? ports.map((l) => l.ifname).join(', ') : 'none'}`);
    say(`masquerade/portmap chains left: ${(await linux.at(node).iptablesSave('nat')).split('\n').filter((l) => /^:CNI-(DN-)?[0-9a-f]/.test(l)).length}`);
  } finally {
    await lab.cleanup();
    say('\nlab namespaces removed');
  }
}
