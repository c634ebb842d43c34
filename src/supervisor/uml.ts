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

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { runCaptured, toolPath } from './supervisor.ts';

export const UML_KERNEL = '/usr/bin/linux.uml';
const UML_MODULES = '/usr/lib/uml/modules';

/**
 * Modules a cluster's lab needs inside UML. Debian's UML kernel has x_tables (iptables-legacy)
 * and IPVS, but nf_tables without the ip family (CONFIG_NF_TABLES_IPV4 is off): nftables
 * mode and iptables-nft cannot run there, iptables-legacy and IPVS can. Every cluster: links,
 * iptables' tables and matches, ipsets (NetworkPolicy), what `trace` reads (TRACE, NFLOG,
 * conntrack events).
 */
const BASE_MODULES = ['veth', 'bridge', 'br_netfilter', 'nf_conntrack', 'nf_nat', 'ip_tables', 'iptable_nat', 'iptable_filter', 'iptable_mangle', 'ipt_REJECT', 'xt_tcpudp', 'xt_comment', 'xt_mark', 'xt_MASQUERADE', 'xt_conntrack', 'xt_addrtype', 'xt_statistic', 'xt_recent', 'xt_multiport', 'xt_nat', 'xt_set', 'ip_set', 'ip_set_hash_ip', 'ip_set_hash_ipport', 'ip_set_hash_ipportip', 'ip_set_hash_ipportnet', 'ip_set_hash_net', 'ip_set_bitmap_port', 'iptable_raw', 'xt_TRACE', 'nf_log_syslog', 'nfnetlink_log', 'xt_connmark', 'nf_conntrack_netlink'];
/** IPVS mode: the virtual servers, their schedulers, kube-ipvs0 (a dummy link). */
const IPVS_MODULES = ['dummy', 'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_sh', 'ip_vs_mh'];
export const LAB_MODULES = [...BASE_MODULES, ...IPVS_MODULES, 'vxlan'];

/**
 * The modules a cluster loads at boot (pure): a module's load is a tenth of a second or more
 * in UML, so IPVS and VXLAN only for the modes that use them. Anything else the kernel asks
 * for later still loads, on demand (the init's modprobe helper).
 */
export function clusterModules(spec: { mode?: string; proxyMode?: string }): string[] {
  return [...BASE_MODULES, ...(spec.proxyMode === 'ipvs' ? IPVS_MODULES : []), ...(spec.mode === 'vxlan' ? ['vxlan'] : [])];
}

/**
 * The module files to load, each after the ones it needs, from a modules.dep (pure): modprobe's
 * order (a module's dependencies are listed deepest last), with no module twice. Names use
 * `_` or `-` alike, as modprobe's do.
 */
export function moduleLoadOrder(names: string[], modulesDep: string): { files: string[]; missing: string[] } {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon);
    deps.set(file, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
    byName.set(moduleName(file), file);
  }
  const files: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const name of names) {
    const file = byName.get(name.replace(/-/g, '_'));
    if (!file) {
      missing.push(name);
      continue;
    }
    for (const f of [...deps.get(file)!].reverse().concat(file)) {
      if (!seen.has(f)) files.push(f);
      seen.add(f);
    }
  }
  return { files, missing };
}

const moduleName = (file: string) => basename(file).replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_');

/** The console device inside the guest that startKernel's channel reaches (con1). */
export const GUEST_CHANNEL = '/dev/tty1';

/** Why UML cannot run here, or undefined when it can. */
export function umlMissing(): string | undefined {
  if (!existsSync(UML_KERNEL)) return `${UML_KERNEL} is missing (apt-get install user-mode-linux)`;
  if (!existsSync(UML_MODULES) || !readdirSync(UML_MODULES).length) return `${UML_MODULES} holds no module tree`;
  return undefined;
}

export interface GuestBoot {
  /** A host directory for the init script and the modules' copies (kept while the kernel runs). */
  dir: string;
  /** The guest's one command: a shell command line, run as root from `cwd` (a host path: hostfs shows the host's tree). */
  command: string;
  cwd: string;
  env?: Record<string, string>;
  modules?: string[];
}

/** Numbers of the system calls the init makes itself (perl's syscall): by the host's architecture. */
const SYSCALLS: Record<string, { mount: number; finitModule: number; sync: number }> = {
  x64: { mount: 165, finitModule: 313, sync: 162 },
  arm64: { mount: 40, finitModule: 273, sync: 81 },
};

/** A perl string literal. */
const perlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Writes the guest's init into `b.dir` and returns its path. The init is one perl process,
 * PID 1 for the kernel's whole life: a process start costs 0.1-0.5 s in UML, so it mounts
 * with mount(2) and loads each module with finit_module(2) itself, where a shell would start
 * mount four times and modprobe (which reads its indexes through hostfs). It loads the
 * modules the host copied into `dir/ko` (without their debug sections: a quarter of the
 * bytes to read and copy), in dependency order, once the host says they are there
 * (`dir/ko/ready`, written by prepareModules while the kernel boots). The kernel's own
 * requests (a module nobody listed) go to a helper that runs modprobe on the module tree.
 * Then it forks the command, reaps every process until that one ends (detached daemons are
 * re-parented to it), syncs and powers off. Each phase is a line on the console with the
 * kernel's uptime (kernel.log).
 */
export function writeGuestInit(b: GuestBoot): string {
  const release = readdirSync(UML_MODULES)[0]!;
  // modprobe -d DIR looks in DIR/lib/modules/<release>: point it at the UML module tree.
  const mods = join(b.dir, 'mods');
  mkdirSync(join(mods, 'lib', 'modules'), { recursive: true });
  if (!existsSync(join(mods, 'lib', 'modules', release))) symlinkSync(join(UML_MODULES, release), join(mods, 'lib', 'modules', release));
  const helper = join(b.dir, 'modprobe');
  writeFileSync(helper, `#!/bin/sh\nexec modprobe -d ${quote(mods)} "$@"\n`, { mode: 0o755 });
  const { files, missing } = moduleLoadOrder(b.modules ?? LAB_MODULES, readFileSync(join(UML_MODULES, release, 'modules.dep'), 'utf8'));
  const ko = join(b.dir, 'ko');
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', TMPDIR: '/run/tmp', ...b.env };
  const sys = SYSCALLS[process.arch];
  const path = join(b.dir, 'init');
  writeFileSync(path, sys ? perlInit(sys, ko, files, missing, helper, env, b) : shellInit(mods, b.modules ?? LAB_MODULES, env, b), { mode: 0o755 });
  return path;
}

function perlInit(sys: (typeof SYSCALLS)[string], ko: string, files: string[], missing: string[], helper: string, env: Record<string, string>, b: GuestBoot): string {
  const list = (xs: string[]) => `(${xs.map(perlString).join(', ')})`;
  return `#!/usr/bin/perl
# PID 1 of a kubewire cluster's user-mode Linux kernel (written by src/supervisor/uml.ts).
use strict;
sub uptime { open(my $f, '<', '/proc/uptime') or return '?'; my ($t) = split(' ', scalar <$f>); return $t }
sub note { print STDERR "kubewire-init: ", uptime(), " s: $_[0]\\n" }
sub mnt { my ($type, $dir, $opts) = @_; my ($s, $d, $t, $o) = ($type, $dir, $type, $opts // ''); syscall(${sys.mount}, $s, $d, $t, 0, $o) == 0 or print STDERR "kubewire-init: cannot mount $type on $dir: $!\\n" }
mnt('proc', '/proc');
note('init');
mnt('sysfs', '/sys');
mnt('tmpfs', '/run');
mkdir($_) for ('/run/netns', '/run/lock', '/run/tmp', '/dev/pts');
# Pseudo-terminals (exec -t, script(1)): the kernel's own devtmpfs /dev has no devpts on it.
mnt('devpts', '/dev/pts', 'gid=5,mode=620,ptmxmode=0666');
if (open(my $h, '>', '/proc/sys/kernel/modprobe')) { print $h ${perlString(helper)}; close($h) }
for (my $i = 0; $i < 3000 && ! -e ${perlString(join(ko, 'ready'))}; $i++) { select(undef, undef, undef, 0.01) }
my $none = '';
for my $m (${list(files.map((f) => basename(f)))}) {
  my $f;
  my $ok = open($f, '<', ${perlString(`${ko}/`)} . $m) && (syscall(${sys.finitModule}, fileno($f), $none, 0) == 0 || $! == 17);
  print STDERR "kubewire: module $m not loaded: $!\\n" unless $ok;
  close($f) if $f;
}
print STDERR "kubewire: module $_ not loaded: not in the module tree\\n" for ${list(missing)};
note('modules loaded');
%ENV = (%ENV, ${list(Object.entries(env).flat())});
my $cwd = ${perlString(b.cwd)};
chdir($cwd) or print STDERR "kubewire-init: cannot enter $cwd: $!\\n";
my $c = fork();
if ($c == 0) { exec('/bin/sh', '-c', ${perlString(b.command)}); exit 127 }
while (1) { my $p = waitpid(-1, 0); last if $p == $c || $p < 0 }
syscall(${sys.sync});
open(my $t, '>', '/proc/sysrq-trigger'); print $t 'o'; close($t);
sleep 30;
`;
}

/** The same init for an architecture whose system call numbers are not listed: a shell and modprobe. */
function shellInit(mods: string, modules: string[], env: Record<string, string>, b: GuestBoot): string {
  const reaper = 'my $c = fork(); if ($c == 0) { exec("/bin/sh", "-c", $ARGV[0]); exit 127 } while (1) { my $p = waitpid(-1, 0); last if $p == $c || $p < 0 } system("sync"); open(my $t, ">", "/proc/sysrq-trigger"); print $t "o"; close($t); sleep 30';
  return [
    '#!/bin/sh',
    'mount -t proc proc /proc',
    'mount -t sysfs sys /sys',
    'mount -t tmpfs run /run',
    'mkdir -p /run/netns /run/lock /run/tmp',
    'mkdir -p /dev/pts && mount -t devpts -o gid=5,mode=620,ptmxmode=0666 devpts /dev/pts',
    `modprobe -a -q -d ${quote(mods)} ${modules.join(' ')} || for m in ${modules.join(' ')}; do modprobe -q -d ${quote(mods)} "$m" || echo "kubewire: module $m not loaded" >&2; done`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
    `cd ${quote(b.cwd)}`,
    `exec perl -e ${quote(reaper)} ${quote(b.command)}`,
    '',
  ].join('\n');
}

/**
 * Copies the modules the init loads into `dir/ko`, debug sections stripped when binutils'
 * strip is there (else the files as they are), then writes `dir/ko/ready`: the init waits
 * for it. Started beside the kernel's boot, which takes longer.
 */
export async function prepareModules(dir: string, modules: string[] = LAB_MODULES): Promise<void> {
  const ko = join(dir, 'ko');
  try {
    const release = readdirSync(UML_MODULES)[0]!;
    const { files } = moduleLoadOrder(modules, readFileSync(join(UML_MODULES, release, 'modules.dep'), 'utf8'));
    mkdirSync(ko, { recursive: true });
    const copies = files.map((f) => join(ko, basename(f)));
    files.forEach((f, i) => copyFileSync(join(UML_MODULES, release, f), copies[i]!));
    await runCaptured([toolPath('strip'), '--strip-debug', ...copies]).catch(() => undefined); // no strip: the copies load as they are
  } finally {
    // Even after a failure: the init then names each module it could not load.
    mkdirSync(ko, { recursive: true });
    writeFileSync(join(ko, 'ready'), '');
  }
}

/**
 * The kernel's command line: hostfs root, `init`, `memMB` of memory; con0 on stdio, con1 on fds
 * 3 (in) and 4 (out) when `channel`. Its pid files go to `umlDir` (uml_dir), not ~/.uml: an
 * ordinary user such as nobody may have no home to write to, and the kernel panics without it.
 * No legacy BSD ptys (pty_init makes 512 devices: 1-5 s of the boot) and no serial lines
 * (ssl_init: over a second): nothing uses them. The console's lines carry the kernel's uptime.
 */
export function kernelArgv(init: string, memMB: number, channel: boolean, umlDir: string): string[] {
  return [UML_KERNEL, `mem=${memMB}M`, `uml_dir=${umlDir}`, 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${init}`, 'con0=fd:0,fd:1', ...(channel ? ['con1=fd:3,fd:4'] : []), 'con=null', 'ssl=none', 'pty.legacy_count=0', 'printk.time=1'];
}

/**
 * Starts a kernel that runs `b.command` and keeps running until it ends: its console (con0)
 * appended to `consoleFd`, its channel to the guest (GUEST_CHANNEL inside) on stdio[3]
 * (to the guest) and stdio[4] (from it). The kernel leads its own process group: stopping
 * the group stops every host process it runs on. The modules' copies are made while it boots.
 */
export function startKernel(b: GuestBoot, memMB: number, consoleFd: number): ChildProcess {
  const init = writeGuestInit(b);
  const argv = kernelArgv(init, memMB, true, b.dir);
  const kernel = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', consoleFd, consoleFd, 'pipe', 'pipe'], detached: true });
  void prepareModules(b.dir, b.modules);
  return kernel;
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
    await prepareModules(dir, r.modules); // while the kernel boots
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
