// A command run in a kernel of its own: Debian's user-mode Linux (`linux.uml`, Linux 6.1 as
// an ordinary process, no KVM), booted with the host's filesystem as its root (hostfs) and
// its own modules (IPVS and its schedulers, dummy links, bridge, netfilter...), which this
// host's kernel may lack. Nothing of it reaches the host's network: the UML kernel has no
// network device but its own loopback, /run (so /var/run/netns and the xtables lock) is a
// tmpfs of its own, and it powers off when the command ends. The command's output and exit
// status come back through files in a scratch directory; the kernel's console goes to a log.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCaptured } from './supervisor.ts';

export const UML_KERNEL = '/usr/bin/linux.uml';
const UML_MODULES = '/usr/lib/uml/modules';

/**
 * Modules a cluster's lab needs inside UML. Debian's UML kernel has x_tables (iptables-legacy)
 * and IPVS, but nf_tables without the ip family (CONFIG_NF_TABLES_IPV4 is off): nftables
 * mode and iptables-nft cannot run there, iptables-legacy and IPVS can.
 */
export const LAB_MODULES = ['veth', 'bridge', 'br_netfilter', 'dummy', 'nf_conntrack', 'nf_nat', 'ip_tables', 'iptable_nat', 'iptable_filter', 'iptable_mangle', 'ipt_REJECT', 'xt_tcpudp', 'xt_comment', 'xt_mark', 'xt_MASQUERADE', 'xt_conntrack', 'xt_addrtype', 'xt_statistic', 'xt_recent', 'xt_multiport', 'xt_nat', 'xt_set', 'ip_set', 'ip_set_hash_ip', 'ip_set_hash_ipport', 'ip_set_hash_ipportip', 'ip_set_hash_ipportnet', 'ip_set_hash_net', 'ip_set_bitmap_port', 'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_sh', 'ip_vs_mh'];

/** Why UML cannot run here, or undefined when it can. */
export function umlMissing(): string | undefined {
  if (!existsSync(UML_KERNEL)) return `${UML_KERNEL} is missing (apt-get install user-mode-linux)`;
  if (!existsSync(UML_MODULES) || !readdirSync(UML_MODULES).length) return `${UML_MODULES} holds no module tree`;
  return undefined;
}

export interface UmlRun {
  /** A shell command line, run by /bin/sh inside UML as root. */
  command: string;
  /** Its working directory (a host path: hostfs shows the host's tree). */
  cwd: string;
  env?: Record<string, string>;
  modules?: string[];
  memMB?: number;
  /** The kernel is killed after this long (its command counts as failed). */
  timeoutMs?: number;
}

export interface UmlResult {
  /** The command's exit status; undefined when the kernel ended before it did. */
  code: number | undefined;
  output: string;
  /** The kernel's console: boot messages, module loads, panics. */
  console: string;
  seconds: number;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Boots a UML kernel, runs `command` in it, powers it off; the scratch directory goes either way. */
export async function runInUml(r: UmlRun): Promise<UmlResult> {
  const missing = umlMissing();
  if (missing) throw new Error(`user-mode Linux is not available: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'kw-uml-'));
  const started = performance.now();
  try {
    // modprobe -d DIR looks in DIR/lib/modules/<release>: point it at the UML module tree.
    const release = readdirSync(UML_MODULES)[0]!;
    mkdirSync(join(dir, 'mods', 'lib', 'modules'), { recursive: true });
    symlinkSync(join(UML_MODULES, release), join(dir, 'mods', 'lib', 'modules', release));
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...r.env };
    const init = [
      '#!/bin/sh',
      'mount -t proc proc /proc',
      'mount -t sysfs sys /sys',
      // The kernel's own /run: namespaces (/var/run/netns), locks and pid files stay inside it.
      'mount -t tmpfs run /run',
      'mkdir -p /run/netns /run/lock',
      `for m in ${(r.modules ?? LAB_MODULES).join(' ')}; do modprobe -q -d ${quote(join(dir, 'mods'))} "$m" || echo "kubewire: module $m not loaded" >&2; done`,
      ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
      `cd ${quote(r.cwd)}`,
      `/bin/sh -c ${quote(r.command)} > ${quote(join(dir, 'out'))} 2>&1 < /dev/null`,
      `echo $? > ${quote(join(dir, 'code'))}`,
      'sync',
      'echo o > /proc/sysrq-trigger',
      'sleep 30',
    ].join('\n');
    writeFileSync(join(dir, 'init'), `${init}\n`, { mode: 0o755 });
    const kernel = runCaptured([UML_KERNEL, `mem=${r.memMB ?? 1024}M`, 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${join(dir, 'init')}`, 'con0=fd:0,fd:1', 'con=null'], { input: '' });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), r.timeoutMs ?? 600_000);
    });
    const ended = await Promise.race([kernel, timeout]);
    clearTimeout(timer);
    if (!ended) {
      // Its threads are its processes: end the whole group that runCaptured started.
      await runCaptured(['pkill', '-KILL', '-f', join(dir, 'init')]).catch(() => undefined);
    }
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
    const code = read('code').trim();
    return { code: code === '' ? undefined : Number(code), output: read('out'), console: ended?.stdout ?? '', seconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
