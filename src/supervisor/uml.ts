// Kernels of their own: Debian's user-mode Linux (`linux.uml`, Linux 6.1 as an ordinary
// process, no KVM), booted with the host's filesystem as its root (hostfs) and its own modules
// (IPVS and its schedulers, dummy links, bridge, netfilter...), which this host's kernel may
// lack. Nothing of it reaches the host's network: the kernel has no network device but its own
// loopback, and /run (so /var/run/netns, the xtables lock, kubewire's state) is a tmpfs of its
// own. Its init mounts that, loads the modules, then runs one command as PID 1's only child
// (PID 1 reaps the orphans a cluster's daemons leave) and powers the kernel off when it ends.
//
// Two uses: runInUml (a command to its end, its output collected: tests) and startKernel
// (a kernel kept running with a channel to its guest: `kubewire up --kernel uml`).

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { runCaptured } from './supervisor.ts';

export const UML_KERNEL = '/usr/bin/linux.uml';
const UML_MODULES = '/usr/lib/uml/modules';

/**
 * Modules a cluster's lab needs inside UML. Debian's UML kernel has x_tables (iptables-legacy)
 * and IPVS, but nf_tables without the ip family (CONFIG_NF_TABLES_IPV4 is off): nftables
 * mode and iptables-nft cannot run there, iptables-legacy and IPVS can.
 */
export const LAB_MODULES = ['veth', 'bridge', 'br_netfilter', 'dummy', 'nf_conntrack', 'nf_nat', 'ip_tables', 'iptable_nat', 'iptable_filter', 'iptable_mangle', 'ipt_REJECT', 'xt_tcpudp', 'xt_comment', 'xt_mark', 'xt_MASQUERADE', 'xt_conntrack', 'xt_addrtype', 'xt_statistic', 'xt_recent', 'xt_multiport', 'xt_nat', 'xt_set', 'ip_set', 'ip_set_hash_ip', 'ip_set_hash_ipport', 'ip_set_hash_ipportip', 'ip_set_hash_ipportnet', 'ip_set_hash_net', 'ip_set_bitmap_port', 'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_sh', 'ip_vs_mh', 'iptable_raw', 'xt_TRACE', 'nfnetlink_log', 'xt_connmark', 'nf_conntrack_netlink', 'vxlan'];

/** The console device inside the guest that startKernel's channel reaches (con1). */
export const GUEST_CHANNEL = '/dev/tty1';

/** Why UML cannot run here, or undefined when it can. */
export function umlMissing(): string | undefined {
  if (!existsSync(UML_KERNEL)) return `${UML_KERNEL} is missing (apt-get install user-mode-linux)`;
  if (!existsSync(UML_MODULES) || !readdirSync(UML_MODULES).length) return `${UML_MODULES} holds no module tree`;
  return undefined;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface GuestBoot {
  /** A host directory for the init script and the module tree's link (kept while the kernel runs). */
  dir: string;
  /** The guest's one command: a shell command line, run as root from `cwd` (a host path: hostfs shows the host's tree). */
  command: string;
  cwd: string;
  env?: Record<string, string>;
  modules?: string[];
}

/** Writes the guest's init into `b.dir` and returns its path. */
export function writeGuestInit(b: GuestBoot): string {
  // modprobe -d DIR looks in DIR/lib/modules/<release>: point it at the UML module tree.
  const release = readdirSync(UML_MODULES)[0]!;
  const mods = join(b.dir, 'mods');
  mkdirSync(join(mods, 'lib', 'modules'), { recursive: true });
  if (!existsSync(join(mods, 'lib', 'modules', release))) symlinkSync(join(UML_MODULES, release), join(mods, 'lib', 'modules', release));
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', TMPDIR: '/run/tmp', ...b.env };
  // PID 1 forks the command and reaps every process until it ends (detached daemons are
  // re-parented to it), then syncs and powers off.
  const reaper = 'my $c = fork(); if ($c == 0) { exec("/bin/sh", "-c", $ARGV[0]); exit 127 } while (1) { my $p = waitpid(-1, 0); last if $p == $c || $p < 0 } system("sync"); open(my $t, ">", "/proc/sysrq-trigger"); print $t "o"; close($t); sleep 30';
  const init = [
    '#!/bin/sh',
    'mount -t proc proc /proc',
    'mount -t sysfs sys /sys',
    'mount -t tmpfs run /run',
    'mkdir -p /run/netns /run/lock /run/tmp',
    // Pseudo-terminals (exec -t, script(1)): the kernel's own devtmpfs /dev has no devpts on it.
    'mkdir -p /dev/pts && mount -t devpts -o gid=5,mode=620,ptmxmode=0666 devpts /dev/pts',
    // One modprobe for all (a process start costs tens of milliseconds in UML); each one missing is named.
    `modprobe -a -q -d ${quote(mods)} ${(b.modules ?? LAB_MODULES).join(' ')} || for m in ${(b.modules ?? LAB_MODULES).join(' ')}; do modprobe -q -d ${quote(mods)} "$m" || echo "kubewire: module $m not loaded" >&2; done`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
    `cd ${quote(b.cwd)}`,
    `exec perl -e ${quote(reaper)} ${quote(b.command)}`,
  ].join('\n');
  const path = join(b.dir, 'init');
  writeFileSync(path, `${init}\n`, { mode: 0o755 });
  return path;
}

/**
 * The kernel's command line: hostfs root, `init`, `memMB` of memory; con0 on stdio, con1 on fds
 * 3 (in) and 4 (out) when `channel`. Its pid files go to `umlDir` (uml_dir), not ~/.uml: an
 * ordinary user such as nobody may have no home to write to, and the kernel panics without it.
 */
export function kernelArgv(init: string, memMB: number, channel: boolean, umlDir: string): string[] {
  return [UML_KERNEL, `mem=${memMB}M`, `uml_dir=${umlDir}`, 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${init}`, 'con0=fd:0,fd:1', ...(channel ? ['con1=fd:3,fd:4'] : []), 'con=null'];
}

/**
 * Starts a kernel that runs `b.command` and keeps running until it ends: its console (con0)
 * appended to `consoleFd`, its channel to the guest (GUEST_CHANNEL inside) on stdio[3]
 * (to the guest) and stdio[4] (from it). The kernel leads its own process group: stopping
 * the group stops every host process it runs on.
 */
export function startKernel(b: GuestBoot, memMB: number, consoleFd: number): ChildProcess {
  const init = writeGuestInit(b);
  const argv = kernelArgv(init, memMB, true, b.dir);
  return spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', consoleFd, consoleFd, 'pipe', 'pipe'], detached: true });
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

/** Boots a UML kernel, runs `command` in it, powers it off; the scratch directory goes either way. */
export async function runInUml(r: UmlRun): Promise<UmlResult> {
  const missing = umlMissing();
  if (missing) throw new Error(`user-mode Linux is not available: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'kw-uml-'));
  const started = performance.now();
  try {
    const command = `/bin/sh -c ${quote(r.command)} > ${quote(join(dir, 'out'))} 2>&1 < /dev/null; echo $? > ${quote(join(dir, 'code'))}`;
    const init = writeGuestInit({ dir, command, cwd: r.cwd, ...(r.env ? { env: r.env } : {}), ...(r.modules ? { modules: r.modules } : {}) });
    const kernel = runCaptured(kernelArgv(init, r.memMB ?? 1024, false, dir), { input: '' });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), r.timeoutMs ?? 600_000);
    });
    const ended = await Promise.race([kernel, timeout]);
    clearTimeout(timer);
    if (!ended) {
      // Its threads are its processes: end every one whose command line names this init.
      await runCaptured(['pkill', '-KILL', '-f', init]).catch(() => undefined);
    }
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
    const code = read('code').trim();
    return { code: code === '' ? undefined : Number(code), output: read('out'), console: ended?.stdout ?? '', seconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
