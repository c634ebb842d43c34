// kubewire_netns: opens a socket inside another network namespace and hands its file
// descriptor to Node, which serves it like any other (net.Server.listen({ fd }),
// dgram bind({ fd })). Node cannot setns(2) by itself; doing it here, on the calling
// thread only and back at once, lets one process serve many pods' ports without a
// helper process per pod. A socket keeps the namespace it was created in.
//
// It also does, without a process, what a pod's start asked `ip` and flock(1) for: add and
// delete a named network namespace, set a link up inside one, take a flock(2). A process
// start from the daemon costs it 2-6 ms of CPU (libuv forks, and a fork copies the page
// tables of a 100-500 MB process): at 1,000 pods they were half of its work. The tools it
// still needs (ip, iptables-restore, nft) it starts with posix_spawn (clone(CLONE_VM |
// CLONE_VFORK): 0.2 ms whatever the size), inside a namespace without nsenter.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char msg[800];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* Enters the namespace at `path` on this thread, keeping the way home in *home. */
static int enter(napi_env env, const char *path, int *home) {
  *home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*home < 0) { fail(env, "open /proc/thread-self/ns/net", errno); return 0; }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) { int e = errno; close(*home); fail(env, path, e); return 0; }
  int entered = setns(target, CLONE_NEWNET);
  int e = errno;
  close(target);
  if (entered < 0) { close(*home); fail(env, "setns", e); return 0; }
  return 1;
}

/* Back to the namespace `enter` left; false (with an error thrown) if that fails. */
static int leave(napi_env env, int home) {
  int back = setns(home, CLONE_NEWNET);
  int e = errno;
  close(home);
  if (back < 0) { fail(env, "setns back to the original namespace", e); return 0; }
  return 1;
}

// listenIn(netnsPath: string, protocol: "tcp" | "udp", port: number, backlog: number, address?: string): fd
// Without an address: every address, IPv4 and IPv6; with one: that address alone.
static napi_value listen_in(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) { napi_throw_type_error(env, NULL, "listenIn(netns, protocol, port, backlog)"); return NULL; }
  char path[512], proto[8];
  size_t len;
  int32_t port, backlog;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], proto, sizeof proto, &len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_int32(env, argv[3], &backlog) != napi_ok) {
    napi_throw_type_error(env, NULL, "listenIn(netns: string, protocol: string, port: number, backlog: number)");
    return NULL;
  }
  // An explicit address, parsed before leaving this namespace.
  char addr[64] = "";
  struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
  int family = 0;
  if (argc >= 5) {
    napi_valuetype t;
    napi_typeof(env, argv[4], &t);
    if (t == napi_string) {
      if (napi_get_value_string_utf8(env, argv[4], addr, sizeof addr, &len) != napi_ok) { napi_throw_type_error(env, NULL, "address must be a string"); return NULL; }
      if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) family = AF_INET;
      else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) family = AF_INET6;
      else { napi_throw_type_error(env, NULL, "address must be an IPv4 or IPv6 address"); return NULL; }
    }
  }
  int udp = strcmp(proto, "udp") == 0;
  if (!udp && strcmp(proto, "tcp") != 0) { napi_throw_type_error(env, NULL, "protocol must be tcp or udp"); return NULL; }
  if (port < 1 || port > 65535) { napi_throw_range_error(env, NULL, "port must be 1-65535"); return NULL; }

  int home;
  if (!enter(env, path, &home)) return NULL;

  int err = 0;
  const char *step = NULL;
  // IPv6 socket with V6ONLY off: one listener answers IPv4 and IPv6, like Go's net.Listen(":P").
  int fd = socket(family ? family : AF_INET6, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int v4only = family == AF_INET;
  if (fd < 0 && !family) {
    // Namespaces with IPv6 disabled: fall back to IPv4.
    fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    v4only = 1;
  }
  if (fd < 0) { err = errno; step = "socket"; }
  else {
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v4only) {
      if (!family) a4.sin_addr.s_addr = htonl(INADDR_ANY);
      rc = bind(fd, (struct sockaddr *)&a4, sizeof a4);
    } else {
      if (!family) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        a6.sin6_addr = in6addr_any;
      }
      rc = bind(fd, (struct sockaddr *)&a6, sizeof a6);
    }
    if (rc < 0) { err = errno; step = "bind"; }
    else if (!udp && listen(fd, backlog) < 0) { err = errno; step = "listen"; }
    if (err) { close(fd); fd = -1; }
  }
  // Always go home, even after a failure: the rest of the thread must stay where it was.
  if (!leave(env, home)) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (err) return fail(env, step, err);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* The string argument `i` into `buf`; false (with a TypeError thrown) if it is not one. */
static int string_arg(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok || len == 0 || len >= size - 1) {
    napi_throw_type_error(env, NULL, "expected a non-empty string");
    return 0;
  }
  return 1;
}

/* What `ip netns add` does before its first namespace: `dir` (/run/netns, a tmpfs directory
 * that no boot creates) made, and made a shared mount point, bind-mounted onto itself first if
 * it is none, so that a namespace deleted later is unmounted in every mount namespace and
 * freed. Under flock, as iproute2 takes it, so that two starts do not stack two bind mounts.
 * Returns 0 or an errno, with *step naming what failed. */
static int prepare_netns_dir(const char *dir, const char **step) {
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) { *step = "mkdir"; return errno; }
  int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock < 0) { *step = "open"; return errno; }
  if (flock(lock, LOCK_EX) < 0) { int e = errno; close(lock); *step = "flock"; return e; }
  int err = 0, made = 0;
  while (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
    /* EINVAL: not a mount point yet; make it one (once), then try again */
    if (errno != EINVAL || made) { err = errno; *step = "mount --make-shared"; break; }
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) { err = errno; *step = "mount --bind"; break; }
    made = 1;
  }
  close(lock);
  return err;
}

// netnsAdd(path): a new network namespace, kept alive by a bind mount at `path` (what `ip
// netns add` does: the calling thread alone enters it, then comes back). Its directory is
// prepared as `ip netns add` prepares it.
static napi_value netns_add(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[512];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !string_arg(env, argv[0], path, sizeof path)) return NULL;
  char dir[512];
  memcpy(dir, path, sizeof dir);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    const char *prep = NULL;
    int e = prepare_netns_dir(dir, &prep);
    if (e) {
      char what[600];
      snprintf(what, sizeof what, "%s %s", prep, dir);
      return fail(env, what, e);
    }
  }
  int target = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (target < 0) return fail(env, path, errno);
  close(target);
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) { int e = errno; unlink(path); return fail(env, "open /proc/thread-self/ns/net", e); }
  int err = 0;
  const char *step = NULL;
  if (unshare(CLONE_NEWNET) < 0) { err = errno; step = "unshare"; }
  else if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0) { err = errno; step = "mount"; }
  if (!leave(env, home)) return NULL;
  if (err) { unlink(path); return fail(env, step, err); }
  return NULL;
}

// netnsDel(path): the namespace's mount detached and its file removed (`ip netns del`).
static napi_value netns_del(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[512];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !string_arg(env, argv[0], path, sizeof path)) return NULL;
  if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return fail(env, "umount", errno);
  if (unlink(path) < 0 && errno != ENOENT) return fail(env, path, errno);
  return NULL;
}

/* The interface flags of `ifname` in the current namespace, IFF_UP added first when `up`. */
static int if_flags(const char *ifname, int up, short *flags, const char **step) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { *step = "socket"; return errno; }
  struct ifreq r;
  memset(&r, 0, sizeof r);
  memcpy(r.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
  int err = 0;
  if (ioctl(s, SIOCGIFFLAGS, &r) < 0) err = errno;
  else if (up && !(r.ifr_flags & IFF_UP)) {
    r.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &r) < 0) err = errno;
  }
  close(s);
  *flags = r.ifr_flags;
  if (err) *step = ifname;
  return err;
}

// linkUp(netnsPath, ifname): IFF_UP on an interface inside the namespace (`ip link set dev X up`).
// linkFlags(netnsPath, ifname): its flags (IFF_RUNNING is "operstate UP or UNKNOWN").
static napi_value link_flags_in(napi_env env, napi_callback_info info, int up) {
  size_t argc = 2;
  napi_value argv[2];
  char path[512], ifname[IFNAMSIZ + 1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !string_arg(env, argv[0], path, sizeof path) || !string_arg(env, argv[1], ifname, sizeof ifname)) return NULL;
  int home;
  if (!enter(env, path, &home)) return NULL;
  const char *step = NULL;
  short flags = 0;
  int err = if_flags(ifname, up, &flags, &step);
  if (!leave(env, home)) return NULL;
  if (err) return fail(env, step, err);
  napi_value result;
  napi_create_int32(env, (uint16_t)flags, &result);
  return result;
}
static napi_value link_up(napi_env env, napi_callback_info info) { return link_flags_in(env, info, 1); }
static napi_value link_flags(napi_env env, napi_callback_info info) { return link_flags_in(env, info, 0); }

// sysctlIn(netnsPath, key, value): writes /proc/sys/<key> as seen from inside the namespace
// (the net/ tree is that of the opening thread's namespace); false when the key does not exist.
static napi_value sysctl_in(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[512], key[400], value[256], file[420];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !string_arg(env, argv[0], path, sizeof path) || !string_arg(env, argv[1], key, sizeof key) || !string_arg(env, argv[2], value, sizeof value)) return NULL;
  if (strstr(key, "..")) { napi_throw_type_error(env, NULL, "sysctlIn: a key is a path under /proc/sys"); return NULL; }
  snprintf(file, sizeof file, "/proc/sys/%s", key);
  int home;
  if (!enter(env, path, &home)) return NULL;
  int err = 0, found = 1;
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) { if (errno == ENOENT) found = 0; else err = errno; }
  else {
    if (write(fd, value, strlen(value)) < 0) err = errno;
    close(fd);
  }
  if (!leave(env, home)) return NULL;
  if (err) return fail(env, file, err);
  napi_value result;
  napi_get_boolean(env, found, &result);
  return result;
}

// tryLock(fd, exclusive): flock(2) without waiting; true when the lock is taken.
static napi_value try_lock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool exclusive;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_bool(env, argv[1], &exclusive) != napi_ok) {
    napi_throw_type_error(env, NULL, "tryLock(fd: number, exclusive: boolean)");
    return NULL;
  }
  int taken = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0;
  if (!taken && errno != EWOULDBLOCK && errno != EINTR) return fail(env, "flock", errno);
  napi_value result;
  napi_get_boolean(env, taken, &result);
  return result;
}

/* { pid, stdin, stdout, stderr } of a started child: this side's ends of its stdio pipes, handed
 * over (set to -1 in `pipes`, so that the caller's clean-up leaves them open). */
static napi_value started(napi_env env, pid_t pid, int pipes[][2]) {
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_int32(env, pid, &v);
  napi_set_named_property(env, result, "pid", v);
  const char *names[3] = { "stdin", "stdout", "stderr" };
  for (int i = 0; i < 3; i++) {
    int *mine = i == 0 ? &pipes[i][1] : &pipes[i][0];
    napi_create_int32(env, *mine, &v);
    napi_set_named_property(env, result, names[i], v);
    *mine = -1;
  }
  return result;
}

extern char **environ;

// spawn(file, argv, netns): { pid, stdin, stdout, stderr } - `file` started with posix_spawn,
// its stdio on three pipes whose other ends (close-on-exec) are returned, in the network
// namespace at `netns` when it is not empty (the calling thread enters it for the spawn and
// comes back: the child inherits the thread's namespaces). Signals are reset to their
// defaults and unblocked in the child (Node ignores SIGPIPE). Reap it with waitPid.
static napi_value spawn_tool(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char file[512], netns[512] = "";
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_array = false;
  if (argc < 3 || !string_arg(env, argv[0], file, sizeof file) || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) {
    if (!is_array) napi_throw_type_error(env, NULL, "spawn(file: string, argv: string[], netns: string)");
    return NULL;
  }
  size_t netns_len;
  if (napi_get_value_string_utf8(env, argv[2], netns, sizeof netns, &netns_len) != napi_ok || netns_len >= sizeof netns - 1) {
    napi_throw_type_error(env, NULL, "spawn: netns must be a path or empty");
    return NULL;
  }
  uint32_t n;
  napi_get_array_length(env, argv[1], &n);
  char **args = calloc(n + 1, sizeof *args);
  if (!args) return fail(env, "spawn", ENOMEM);
  napi_value result = NULL;
  int pipes[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    napi_get_element(env, argv[1], i, &v);
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) { napi_throw_type_error(env, NULL, "spawn: argv must be strings"); goto out; }
    args[i] = malloc(len + 1);
    if (!args[i]) { fail(env, "spawn", ENOMEM); goto out; }
    napi_get_value_string_utf8(env, v, args[i], len + 1, &len);
  }
  for (int i = 0; i < 3; i++)
    if (pipe2(pipes[i], O_CLOEXEC) < 0) { fail(env, "pipe2", errno); goto out; }
  // The child's ends become its 0, 1 and 2 (dup2 clears close-on-exec on the copy).
  posix_spawn_file_actions_adddup2(&actions, pipes[0][0], 0);
  posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipes[2][1], 2);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  int home = -1;
  if (netns[0] && !enter(env, netns, &home)) goto out;
  pid_t pid;
  int err = posix_spawn(&pid, file, &actions, &attr, args, environ);
  if (home >= 0 && !leave(env, home)) goto out;
  if (err) { fail(env, file, err); goto out; }
  result = started(env, pid, pipes);
out:
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      if (pipes[i][j] >= 0) close(pipes[i][j]);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  for (uint32_t i = 0; i < n; i++) free(args[i]);
  free(args);
  return result;
}

// waitPid(pid): null while the process runs, else { code, signal } (it is reaped).
static napi_value wait_pid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t pid;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &pid) != napi_ok) { napi_throw_type_error(env, NULL, "waitPid(pid: number)"); return NULL; }
  int status;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG); while (r < 0 && errno == EINTR);
  if (r < 0) return fail(env, "waitpid", errno);
  napi_value result, v;
  if (r == 0) { napi_get_null(env, &result); return result; }
  napi_create_object(env, &result);
  if (WIFEXITED(status)) napi_create_int32(env, WEXITSTATUS(status), &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "code", v);
  if (WIFSIGNALED(status)) napi_create_int32(env, WTERMSIG(status), &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "signal", v);
  return result;
}

// socketIn(netnsPath: string, family: 4 | 6): fd
// An unconnected, non-blocking TCP socket created inside the namespace: the caller connects it
// (to that namespace's localhost, for a port-forward) as any socket of its own.
static napi_value socket_in(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[512];
  int32_t family;
  if (argc < 2) { napi_throw_type_error(env, NULL, "socketIn(netns, family)"); return NULL; }
  if (!string_arg(env, argv[0], path, sizeof path)) return NULL;
  if (napi_get_value_int32(env, argv[1], &family) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, NULL, "socketIn(netns: string, family: 4 | 6)");
    return NULL;
  }
  int home;
  if (!enter(env, path, &home)) return NULL;
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int err = errno;
  if (!leave(env, home)) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (fd < 0) return fail(env, "socket", err);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* What a program started by spawnIn needs done between clone and exec. */
struct spawn_in {
  const char *file, *cwd, *netns, *view, *hostname;
  char **argv, **envp;
  int fds[3]; /* the child's stdin, stdout, stderr */
  int report; /* close-on-exec: the step that failed, if one did */
};

/* Why a child could not become its program: the exit status a shell would give (126: set-up, 127: exec). */
struct spawn_failure { int status, err; char step[96]; };

static void report_failure(const struct spawn_in *s, int status, const char *step, int err) {
  struct spawn_failure f = { .status = status, .err = err };
  strncpy(f.step, step, sizeof f.step - 1);
  ssize_t w = write(s->report, &f, sizeof f);
  (void)w;
  _exit(status);
}

/* dir/name into `out` (dir under 512 bytes, name under 16: spawn_in checks the one, the other is ours). */
static void join_path(char *out, const char *dir, const char *name) {
  size_t d = strlen(dir), n = strlen(name);
  memcpy(out, dir, d);
  out[d] = '/';
  memcpy(out + d + 1, name, n + 1);
}

/* The child, on its own stack and the parent's memory (the parent waits until it execs or exits):
 * system calls only, no allocation. */
static int spawn_in_child(void *arg) {
  const struct spawn_in *s = arg;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); /* Node's handlers and its ignored SIGPIPE */
  if (setsid() < 0) report_failure(s, 126, "setsid", errno);
  if (s->netns[0]) {
    int fd = open(s->netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) report_failure(s, 126, s->netns, errno);
    if (setns(fd, CLONE_NEWNET) < 0) report_failure(s, 126, "setns", errno);
    close(fd);
  }
  if (s->view[0]) {
    /* What `unshare --mount --uts --propagation private` and the view's mounts did: the pod's
     * resolv.conf, hosts and hostname over /etc's (those /etc has), its hostname set. */
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0) report_failure(s, 126, "unshare", errno);
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) report_failure(s, 126, "mount --make-rprivate /", errno);
    static const char *const files[] = { "resolv.conf", "hosts", "hostname" };
    for (int i = 0; i < 3; i++) {
      char src[600], dst[64];
      join_path(dst, "/etc", files[i]);
      if (access(dst, F_OK) < 0) continue;
      join_path(src, s->view, files[i]);
      if (mount(src, dst, NULL, MS_BIND, NULL) < 0) report_failure(s, 126, dst, errno);
    }
    if (sethostname(s->hostname, strlen(s->hostname)) < 0) report_failure(s, 126, "sethostname", errno);
  }
  if (chdir(s->cwd) < 0) report_failure(s, 126, s->cwd, errno);
  for (int i = 0; i < 3; i++)
    if (dup2(s->fds[i], i) < 0) report_failure(s, 126, "dup2", errno);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(s->file, s->argv, s->envp);
  report_failure(s, 127, s->file, errno);
  return 127;
}

/* A JS array of strings as a NULL-terminated vector (freed by free_vector); NULL with an error thrown. */
static char **string_vector(napi_env env, napi_value array, const char *what) {
  bool is_array = false;
  uint32_t n;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok) {
    char msg[100];
    snprintf(msg, sizeof msg, "spawnIn: %s must be an array of strings", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  char **v = calloc(n + 1, sizeof *v);
  if (!v) { fail(env, "spawnIn", ENOMEM); return NULL; }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    size_t len;
    napi_get_element(env, array, i, &e);
    if (napi_get_value_string_utf8(env, e, NULL, 0, &len) != napi_ok || !(v[i] = malloc(len + 1))) {
      for (uint32_t j = 0; j < i; j++) free(v[j]);
      free(v);
      char msg[100];
      snprintf(msg, sizeof msg, "spawnIn: %s must be an array of strings", what);
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
    napi_get_value_string_utf8(env, e, v[i], len + 1, &len);
  }
  return v;
}

static void free_vector(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

// spawnIn(file, argv, env, cwd, netns, view, hostname): { pid, stdin, stdout, stderr } - a
// program (`file`: a path) started with its stdio on pipes, leading a session of its own, inside
// the network namespace at `netns` unless empty, with a pod's view of names from the directory
// `view` unless empty (its resolv.conf, hosts and hostname bound over /etc's in a mount
// namespace of its own, `hostname` set in a UTS namespace of its own): what nsenter, unshare
// and a shell did before it, in one clone (CLONE_VM | CLONE_VFORK, as posix_spawn) and one
// exec. A failure before the exec throws, its code KW_SETUP (a shell's 126) or KW_EXEC (127).
// Reap it with waitPid.
static napi_value spawn_in(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) { napi_throw_type_error(env, NULL, "spawnIn(file, argv, env, cwd, netns, view, hostname)"); return NULL; }
  char file[512], cwd[512], netns[512], view[512], hostname[65];
  const struct { napi_value v; char *buf; size_t size; int may_be_empty; const char *name; } strings[] = {
    { argv[0], file, sizeof file, 0, "file" }, { argv[3], cwd, sizeof cwd, 0, "cwd" }, { argv[4], netns, sizeof netns, 1, "netns" },
    { argv[5], view, sizeof view, 1, "view" }, { argv[6], hostname, sizeof hostname, 1, "hostname" },
  };
  for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
    size_t len;
    if (napi_get_value_string_utf8(env, strings[i].v, strings[i].buf, strings[i].size, &len) != napi_ok || len >= strings[i].size - 1 || (!len && !strings[i].may_be_empty)) {
      char msg[100];
      snprintf(msg, sizeof msg, "spawnIn: %s must be a%s string shorter than %zu bytes", strings[i].name, strings[i].may_be_empty ? "" : " non-empty", strings[i].size - 1);
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
  }
  char **args = string_vector(env, argv[1], "argv");
  if (!args) return NULL;
  char **envp = string_vector(env, argv[2], "env");
  if (!envp) { free_vector(args); return NULL; }
  napi_value result = NULL;
  int pipes[4][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
  const size_t stack_size = 256 * 1024;
  char *stack = malloc(stack_size);
  if (!stack) { fail(env, "spawnIn", ENOMEM); goto out; }
  for (int i = 0; i < 4; i++)
    if (pipe2(pipes[i], O_CLOEXEC) < 0) { fail(env, "pipe2", errno); goto out; }
  struct spawn_in s = { .file = file, .cwd = cwd, .netns = netns, .view = view, .hostname = hostname, .argv = args, .envp = envp,
                        .fds = { pipes[0][0], pipes[1][1], pipes[2][1] }, .report = pipes[3][1] };
  /* No signal handler of this process may run on the child's stack before it execs. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = clone(spawn_in_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &s);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) { fail(env, "clone", clone_errno); goto out; }
  /* The child has exec'd (its copy of the report pipe closed with it) or exited: read what it said. */
  close(pipes[3][1]);
  pipes[3][1] = -1;
  struct spawn_failure f;
  ssize_t got;
  do got = read(pipes[3][0], &f, sizeof f); while (got < 0 && errno == EINTR);
  if (got == (ssize_t)sizeof f) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    char msg[700];
    snprintf(msg, sizeof msg, "%s: %s", f.step, strerror(f.err));
    napi_value error, message, code;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
    napi_create_string_utf8(env, f.status == 127 ? "KW_EXEC" : "KW_SETUP", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &error);
    napi_throw(env, error);
    goto out;
  }
  result = started(env, pid, pipes);
out:
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 2; j++)
      if (pipes[i][j] >= 0) close(pipes[i][j]);
  free(stack);
  free_vector(args);
  free_vector(envp);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct { const char *name; napi_callback fn; } fns[] = {
    { "listenIn", listen_in }, { "netnsAdd", netns_add }, { "netnsDel", netns_del }, { "linkUp", link_up }, { "linkFlags", link_flags }, { "sysctlIn", sysctl_in }, { "tryLock", try_lock },
    { "spawn", spawn_tool }, { "spawnIn", spawn_in }, { "waitPid", wait_pid }, { "socketIn", socket_in },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
