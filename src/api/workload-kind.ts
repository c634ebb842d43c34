// What runs a container whose image kubewire cannot pull (pure): a command from the host
// filesystem, one of kubewire's own images, a built-in workload (hello, agnhost netexec or
// serve-hostname) served by the workload host, or nothing (idle). Shared by the node agent
// and by the API's warnings (a built-in workload cannot take another user).

export type WorkloadKind = 'hello' | 'netexec' | 'serve-hostname';

export interface WorkloadSpec {
  container: string;
  kind: WorkloadKind;
  ports: Array<{ port: number; protocol: 'TCP' | 'UDP' }>;
}

/** A container of one of kubewire's own images: the kubewire subcommand it runs, and Node's flags for it. */
export interface KubewireCommand {
  command: string;
  node: string[];
}

/** kubewire's own images that run as a process of kubewire's (the cluster DNS). */
const KUBEWIRE_IMAGES: Record<string, KubewireCommand> = {
  // Young generation semi-spaces of 2 MB rather than 16: a query's garbage is small and short-lived,
  // and under a flood of queries the larger ones were tens of MB of the pod's RSS (bench:dns-abuse).
  'kubewire/dns': { command: 'dns-server', node: ['--max-semi-space-size=2'] },
};

/** What a container of one of kubewire's own images runs, or undefined (pure). */
export function kubewireCommand(c: { image: string; command?: string[] }): KubewireCommand | undefined {
  if (c.command?.length) return undefined;
  return KUBEWIRE_IMAGES[c.image.replace(/^(docker\.io\/)?/, '').replace(/[:@].*$/, '')];
}

/** What a container of an image we cannot run should run instead, from its args (pure). */
export function workloadFor(c: { name: string; image: string; command?: string[]; args?: string[]; ports?: Array<{ containerPort: number; protocol?: string }> }): WorkloadSpec | 'process' | 'idle' {
  const ports = (c.ports ?? []).filter((p) => p.protocol !== 'SCTP').map((p) => ({ port: p.containerPort, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' }));
  const agnhost = /(^|\/)agnhost(:|@|$)/.test(c.image);
  if (agnhost && !c.command?.length) {
    const [verb, ...flags] = c.args ?? [];
    const flag = (name: string, fallback: number): number => {
      const f = flags.find((x) => x.startsWith(`--${name}=`));
      return f ? Number(f.split('=')[1]) : fallback;
    };
    if (verb === 'netexec') {
      const http = flag('http-port', 8080);
      const udp = flag('udp-port', 8081);
      return { container: c.name, kind: 'netexec', ports: [{ port: http, protocol: 'TCP' }, ...(udp > 0 ? [{ port: udp, protocol: 'UDP' as const }] : [])] };
    }
    if (verb === 'serve-hostname') {
      const port = flag('port', 9376);
      const udp = flags.includes('--udp') || flags.includes('--udp=true');
      const tcp = !flags.includes('--tcp=false');
      return { container: c.name, kind: 'serve-hostname', ports: [...(tcp || !udp ? [{ port, protocol: 'TCP' as const }] : []), ...(udp ? [{ port, protocol: 'UDP' as const }] : [])] };
    }
  }
  if (c.command?.length || c.args?.length || kubewireCommand(c)) return 'process';
  return ports.length ? { container: c.name, kind: 'hello', ports } : 'idle';
}

