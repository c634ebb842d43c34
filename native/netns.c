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
//
// Those calls wait on the kernel: a namespace's creation and a link's flags take the RTNL
// lock that every `ip` of every pod's start holds in turn, an unmount waits for an RCU grace
// period, and a vfork waits until the child has exec'd. On the event loop those waits held
// up every API request (at 1,000 pods starting, p99 about 1 s). Each of them is therefore
// also offered as a promise (`promises.netnsAdd(...)`, as fs.promises): the same code runs
// on a thread of its own, which enters the namespace, does the work and comes back. Not on
// libuv's pool: its four threads also serve fs and dns, and these waits would queue them.
// `promises.run` starts a tool and gives back its exit status and output once it has ended:
// input, output and reaping all done by that thread, none of it by the event loop.

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
#include <poll.h>
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

/* Why an operation failed, written by code that may run on any thread (no napi there): the
 * errno, the step it names, and an error code for JS (NULL: none). */
struct outcome {
  int err;
  const char *code;
  char step[600];
};

static int failed(struct outcome *o, const char *step, int err) {
  o->err = err;
  snprintf(o->step, sizeof o->step, "%s", step);
  return 0;
}

/* The JS Error for a failed outcome: "step: strerror", its code set when there is one. */
static napi_value outcome_error(napi_env env, const struct outcome *o) {
  char msg[800];
  snprintf(msg, sizeof msg, "%s: %s", o->step, strerror(o->err));
  napi_value error, message, code = NULL;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  if (o->code) napi_create_string_utf8(env, o->code, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  return error;
}

/* Enters the namespace at `path` on this thread, keeping the way home in *home. */
static int enter_ns(const char *path, int *home, struct outcome *o) {
  *home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*home < 0) return failed(o, "open /proc/thread-self/ns/net", errno);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) { int e = errno; close(*home); return failed(o, path, e); }
  int entered = setns(target, CLONE_NEWNET);
  int e = errno;
  close(target);
  if (entered < 0) { close(*home); return failed(o, "setns", e); }
  return 1;
}

/* Back to the namespace `enter_ns` left. A thread that cannot go back must not run anything
 * else (a pool thread would resolve names and open sockets in a pod's namespace): that is
 * a broken kernel, so the process stops. */
static void leave_ns(int home) {
  if (setns(home, CLONE_NEWNET) < 0) {
    fprintf(stderr, "kubewire_netns: setns back to the original namespace: %s\n", strerror(errno));
    abort();
  }
  close(home);
}

static int enter(napi_env env, const char *path, int *home) {
  struct outcome o = { 0 };
  if (enter_ns(path, home, &o)) return 1;
  napi_throw(env, outcome_error(env, &o));
  return 0;
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
  leave_ns(home);
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

/* ---- The operations offered both ways (on the calling thread, or as a promise on a pool
 * thread): each is plain C over a job that holds its arguments and its results. ---- */

enum op { NETNS_ADD, NETNS_DEL, LINK_UP, LINK_FLAGS, SYSCTL_IN, SPAWN, SPAWN_IN, RUN };

/* Bytes that grow (a tool's output). */
struct bytes { char *data; size_t len, cap; };

struct job {
  enum op op;
  napi_threadsafe_function done;
  napi_deferred deferred;
  /* arguments */
  char path[512];      /* the namespace (or, for SPAWN_IN, the program's netns; may be empty for the spawns) */
  char name[512];      /* ifname, sysctl key, or the program's file */
  char value[512];     /* sysctl value, or SPAWN_IN's cwd */
  char view[512], hostname[65];
  char **argv, **envp;
  char *input;         /* RUN: written to the tool's stdin */
  size_t input_len;
  /* results */
  struct outcome out;
  int number;          /* link flags, or whether a sysctl key exists */
  pid_t pid;
  int fds[3];          /* this side's ends of a started program's stdin, stdout, stderr */
  int status;          /* RUN: how the tool ended (waitpid) */
  struct bytes output[2]; /* RUN: its stdout and stderr */
};

static void free_vector(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static void free_job(struct job *j) {
  free_vector(j->argv);
  free_vector(j->envp);
  free(j->input);
  free(j->output[0].data);
  free(j->output[1].data);
  free(j);
}

// netnsAdd(path): a new network namespace, kept alive by a bind mount at `path` (what `ip
// netns add` does: the calling thread alone enters it, then comes back). Its directory is
// prepared as `ip netns add` prepares it.
static int netns_add(struct job *j) {
  char dir[512];
  memcpy(dir, j->path, sizeof dir);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    const char *prep = NULL;
    int e = prepare_netns_dir(dir, &prep);
    if (e) {
      char what[600];
      snprintf(what, sizeof what, "%s %s", prep, dir);
      return failed(&j->out, what, e);
    }
  }
  int target = open(j->path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (target < 0) return failed(&j->out, j->path, errno);
  close(target);
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) { int e = errno; unlink(j->path); return failed(&j->out, "open /proc/thread-self/ns/net", e); }
  int ok = 1;
  if (unshare(CLONE_NEWNET) < 0) ok = failed(&j->out, "unshare", errno);
  else if (mount("/proc/thread-self/ns/net", j->path, "none", MS_BIND, NULL) < 0) ok = failed(&j->out, "mount", errno);
  leave_ns(home);
  if (!ok) unlink(j->path);
  return ok;
}

// netnsDel(path): the namespace's mount detached and its file removed (`ip netns del`).
static int netns_del(struct job *j) {
  if (umount2(j->path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return failed(&j->out, "umount", errno);
  if (unlink(j->path) < 0 && errno != ENOENT) return failed(&j->out, j->path, errno);
  return 1;
}

// linkUp(netnsPath, ifname): IFF_UP on an interface inside the namespace (`ip link set dev X up`).
// linkFlags(netnsPath, ifname): its flags (IFF_RUNNING is "operstate UP or UNKNOWN").
static int link_flags(struct job *j) {
  int home;
  if (!enter_ns(j->path, &home, &j->out)) return 0;
  int ok = 1;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) ok = failed(&j->out, "socket", errno);
  else {
    struct ifreq r;
    memset(&r, 0, sizeof r);
    memcpy(r.ifr_name, j->name, strnlen(j->name, IFNAMSIZ - 1));
    if (ioctl(s, SIOCGIFFLAGS, &r) < 0) ok = failed(&j->out, j->name, errno);
    else if (j->op == LINK_UP && !(r.ifr_flags & IFF_UP)) {
      r.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &r) < 0) ok = failed(&j->out, j->name, errno);
    }
    j->number = (uint16_t)r.ifr_flags;
    close(s);
  }
  leave_ns(home);
  return ok;
}

// sysctlIn(netnsPath, key, value): writes /proc/sys/<key> as seen from inside the namespace
// (the net/ tree is that of the opening thread's namespace); false when the key does not exist.
static int sysctl_in(struct job *j) {
  char file[600];
  snprintf(file, sizeof file, "/proc/sys/%s", j->name);
  int home;
  if (!enter_ns(j->path, &home, &j->out)) return 0;
  int ok = 1;
  j->number = 1;
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) j->number = 0;
    else ok = failed(&j->out, file, errno);
  } else {
    if (write(fd, j->value, strlen(j->value)) < 0) ok = failed(&j->out, file, errno);
    close(fd);
  }
  leave_ns(home);
  return ok;
}

/* Three pipes for a child's stdio (close-on-exec): the child's ends into child[], ours into
 * j->fds. False, nothing left open, when they cannot be made. */
static int stdio_pipes(struct job *j, int child[3]) {
  int pipes[3][2];
  for (int i = 0; i < 3; i++) {
    if (pipe2(pipes[i], O_CLOEXEC) < 0) {
      int e = errno;
      for (int k = 0; k < i; k++) { close(pipes[k][0]); close(pipes[k][1]); }
      return failed(&j->out, "pipe2", e);
    }
  }
  for (int i = 0; i < 3; i++) {
    child[i] = i == 0 ? pipes[i][0] : pipes[i][1];
    j->fds[i] = i == 0 ? pipes[i][1] : pipes[i][0];
  }
  return 1;
}

static void close_all(int fds[3]) {
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) { close(fds[i]); fds[i] = -1; }
}

// spawn(file, argv, netns): { pid, stdin, stdout, stderr } - `file` started with posix_spawn,
// its stdio on three pipes whose other ends (close-on-exec) are returned, in the network
// namespace at `netns` when it is not empty (the calling thread enters it for the spawn and
// comes back: the child inherits the thread's namespaces). Signals are reset to their
// defaults and unblocked in the child (Node ignores SIGPIPE). Its environment is this
// process's at the call. Reap it with waitPid.
static int spawn_tool(struct job *j) {
  int child[3];
  if (!stdio_pipes(j, child)) return 0;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  // The child's ends become its 0, 1 and 2 (dup2 clears close-on-exec on the copy).
  for (int i = 0; i < 3; i++) posix_spawn_file_actions_adddup2(&actions, child[i], i);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  int ok = 1, home = -1;
  if (j->path[0] && !enter_ns(j->path, &home, &j->out)) ok = 0;
  else {
    int err = posix_spawn(&j->pid, j->name, &actions, &attr, j->argv, j->envp);
    if (home >= 0) leave_ns(home);
    if (err) ok = failed(&j->out, j->name, err);
  }
  for (int i = 0; i < 3; i++) close(child[i]);
  if (!ok) close_all(j->fds);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return ok;
}

static int append(struct bytes *b, const char *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return 0;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
  return 1;
}

// run(file, argv, netns, input): { code, signal, stdout, stderr } - spawn's tool, `input` written
// to its stdin (then closed), its stdout and stderr read until they end, and reaped: the
// status as waitPid gives it, the output as Buffers. A tool that stops reading its input
// early is not an error (the status tells).
static int run_tool(struct job *j) {
  if (!spawn_tool(j)) return 0;
  for (int i = 0; i < 3; i++) fcntl(j->fds[i], F_SETFL, fcntl(j->fds[i], F_GETFL) | O_NONBLOCK);
  size_t written = 0;
  if (!j->input_len) { close(j->fds[0]); j->fds[0] = -1; }
  int ok = 1;
  char buf[65536];
  while (j->fds[0] >= 0 || j->fds[1] >= 0 || j->fds[2] >= 0) {
    struct pollfd p[3];
    for (int i = 0; i < 3; i++) p[i] = (struct pollfd){ .fd = j->fds[i], .events = i == 0 ? POLLOUT : POLLIN };
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      ok = failed(&j->out, "poll", errno);
      break;
    }
    if (p[0].revents) {
      ssize_t n = write(j->fds[0], j->input + written, j->input_len - written);
      if (n > 0) written += n;
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == j->input_len) { close(j->fds[0]); j->fds[0] = -1; } /* EPIPE: it stopped reading */
    }
    for (int i = 1; i < 3; i++) {
      if (!p[i].revents) continue;
      ssize_t n = read(j->fds[i], buf, sizeof buf);
      if (n > 0 && !append(&j->output[i - 1], buf, n)) { ok = failed(&j->out, "run", ENOMEM); break; }
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { close(j->fds[i]); j->fds[i] = -1; }
    }
    if (!ok) break;
  }
  close_all(j->fds);
  /* Its output has ended; after a failure here it may still run: it is reaped all the same. */
  while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR) {}
  return ok;
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

// spawnIn(file, argv, env, cwd, netns, view, hostname): { pid, stdin, stdout, stderr } - a
// program (`file`: a path) started with its stdio on pipes, leading a session of its own, inside
// the network namespace at `netns` unless empty, with a pod's view of names from the directory
// `view` unless empty (its resolv.conf, hosts and hostname bound over /etc's in a mount
// namespace of its own, `hostname` set in a UTS namespace of its own): what nsenter, unshare
// and a shell did before it, in one clone (CLONE_VM | CLONE_VFORK, as posix_spawn) and one
// exec. A failure before the exec throws, its code KW_SETUP (a shell's 126) or KW_EXEC (127).
// Reap it with waitPid.
static int spawn_in(struct job *j) {
  int child[3], report[2] = { -1, -1 };
  const size_t stack_size = 256 * 1024;
  char *stack = malloc(stack_size);
  if (!stack) return failed(&j->out, "spawnIn", ENOMEM);
  if (!stdio_pipes(j, child)) { free(stack); return 0; }
  int ok = 1;
  if (pipe2(report, O_CLOEXEC) < 0) ok = failed(&j->out, "pipe2", errno);
  else {
    struct spawn_in s = { .file = j->name, .cwd = j->value, .netns = j->path, .view = j->view, .hostname = j->hostname, .argv = j->argv, .envp = j->envp,
                          .fds = { child[0], child[1], child[2] }, .report = report[1] };
    /* No signal handler of this process may run on the child's stack before it execs. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(spawn_in_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &s);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) ok = failed(&j->out, "clone", clone_errno);
    else {
      /* The child has exec'd (its copy of the report pipe closed with it) or exited: read what it said. */
      close(report[1]);
      report[1] = -1;
      struct spawn_failure f;
      ssize_t got;
      do got = read(report[0], &f, sizeof f); while (got < 0 && errno == EINTR);
      if (got == (ssize_t)sizeof f) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        f.step[sizeof f.step - 1] = 0;
        ok = failed(&j->out, f.step, f.err);
        j->out.code = f.status == 127 ? "KW_EXEC" : "KW_SETUP";
      } else j->pid = pid;
    }
  }
  for (int i = 0; i < 2; i++)
    if (report[i] >= 0) close(report[i]);
  for (int i = 0; i < 3; i++) close(child[i]);
  if (!ok) close_all(j->fds);
  free(stack);
  return ok;
}

static int run_job(struct job *j) {
  switch (j->op) {
    case NETNS_ADD: return netns_add(j);
    case NETNS_DEL: return netns_del(j);
    case LINK_UP:
    case LINK_FLAGS: return link_flags(j);
    case SYSCTL_IN: return sysctl_in(j);
    case SPAWN: return spawn_tool(j);
    case SPAWN_IN: return spawn_in(j);
    case RUN: return run_tool(j);
  }
  return failed(&j->out, "unknown operation", EINVAL);
}

/* What a job that succeeded returns to JS. */
static napi_value job_value(napi_env env, struct job *j) {
  napi_value result, v;
  switch (j->op) {
    case LINK_UP:
    case LINK_FLAGS: napi_create_int32(env, j->number, &result); return result;
    case SYSCTL_IN: napi_get_boolean(env, j->number, &result); return result;
    case SPAWN:
    case SPAWN_IN: {
      napi_create_object(env, &result);
      napi_create_int32(env, j->pid, &v);
      napi_set_named_property(env, result, "pid", v);
      const char *names[3] = { "stdin", "stdout", "stderr" };
      for (int i = 0; i < 3; i++) {
        napi_create_int32(env, j->fds[i], &v);
        napi_set_named_property(env, result, names[i], v);
        j->fds[i] = -1; /* handed over */
      }
      return result;
    }
    case RUN: {
      napi_create_object(env, &result);
      if (WIFEXITED(j->status)) napi_create_int32(env, WEXITSTATUS(j->status), &v); else napi_get_null(env, &v);
      napi_set_named_property(env, result, "code", v);
      if (WIFSIGNALED(j->status)) napi_create_int32(env, WTERMSIG(j->status), &v); else napi_get_null(env, &v);
      napi_set_named_property(env, result, "signal", v);
      const char *names[2] = { "stdout", "stderr" };
      for (int i = 0; i < 2; i++) {
        napi_create_buffer_copy(env, j->output[i].len, j->output[i].len ? j->output[i].data : "", NULL, &v);
        napi_set_named_property(env, result, names[i], v);
      }
      return result;
    }
    default: napi_get_undefined(env, &result); return result;
  }
}

/* A JS array of strings as a NULL-terminated vector (freed by free_vector); NULL with an error thrown. */
static char **string_vector(napi_env env, napi_value array, const char *fn, const char *what) {
  bool is_array = false;
  uint32_t n;
  char msg[100];
  snprintf(msg, sizeof msg, "%s: %s must be an array of strings", fn, what);
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  char **v = calloc(n + 1, sizeof *v);
  if (!v) { fail(env, fn, ENOMEM); return NULL; }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    size_t len;
    napi_get_element(env, array, i, &e);
    if (napi_get_value_string_utf8(env, e, NULL, 0, &len) != napi_ok || !(v[i] = malloc(len + 1))) {
      free_vector(v);
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
    napi_get_value_string_utf8(env, e, v[i], len + 1, &len);
  }
  return v;
}

extern char **environ;

/* A copy of this process's environment, taken on the JS thread (which alone changes it). */
static char **environment(void) {
  size_t n = 0;
  while (environ[n]) n++;
  char **v = calloc(n + 1, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(v[i] = strdup(environ[i]))) { free_vector(v); return NULL; }
  return v;
}

/* One string argument into `buf` (empty allowed when may_be_empty); false with a TypeError thrown. */
static int string_into(napi_env env, napi_value v, char *buf, size_t size, int may_be_empty, const char *fn, const char *name) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok && len < size - 1 && (len || may_be_empty)) return 1;
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s must be a%s string shorter than %zu bytes", fn, name, may_be_empty ? "" : " non-empty", size - 1);
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

/* The job a call describes, its arguments checked; NULL with a TypeError thrown. */
static struct job *parse_job(napi_env env, enum op op, size_t argc, napi_value *argv) {
  static const struct { const char *fn; size_t argc; } usage[] = {
    [NETNS_ADD] = { "netnsAdd(path)", 1 }, [NETNS_DEL] = { "netnsDel(path)", 1 }, [LINK_UP] = { "linkUp(netns, ifname)", 2 },
    [LINK_FLAGS] = { "linkFlags(netns, ifname)", 2 }, [SYSCTL_IN] = { "sysctlIn(netns, key, value)", 3 },
    [SPAWN] = { "spawn(file, argv, netns)", 3 }, [SPAWN_IN] = { "spawnIn(file, argv, env, cwd, netns, view, hostname)", 7 },
    [RUN] = { "run(file, argv, netns, input)", 4 },
  };
  const char *fn = usage[op].fn;
  if (argc < usage[op].argc) { napi_throw_type_error(env, NULL, fn); return NULL; }
  struct job *j = calloc(1, sizeof *j);
  if (!j) { fail(env, fn, ENOMEM); return NULL; }
  j->op = op;
  j->fds[0] = j->fds[1] = j->fds[2] = -1;
  int ok = 1;
  switch (op) {
    case NETNS_ADD:
    case NETNS_DEL: ok = string_into(env, argv[0], j->path, sizeof j->path, 0, fn, "path"); break;
    case LINK_UP:
    case LINK_FLAGS: ok = string_into(env, argv[0], j->path, sizeof j->path, 0, fn, "netns") && string_into(env, argv[1], j->name, IFNAMSIZ + 1, 0, fn, "ifname"); break;
    case SYSCTL_IN:
      ok = string_into(env, argv[0], j->path, sizeof j->path, 0, fn, "netns") && string_into(env, argv[1], j->name, 400, 0, fn, "key") &&
           string_into(env, argv[2], j->value, 256, 0, fn, "value");
      if (ok && strstr(j->name, "..")) { napi_throw_type_error(env, NULL, "sysctlIn: a key is a path under /proc/sys"); ok = 0; }
      break;
    case SPAWN:
    case RUN:
      ok = string_into(env, argv[0], j->name, sizeof j->name, 0, fn, "file") && string_into(env, argv[2], j->path, sizeof j->path, 1, fn, "netns") &&
           (j->argv = string_vector(env, argv[1], op == RUN ? "run" : "spawn", "argv")) != NULL;
      if (ok && !(j->envp = environment())) { fail(env, fn, ENOMEM); ok = 0; }
      if (ok && op == RUN) {
        size_t len;
        if (napi_get_value_string_utf8(env, argv[3], NULL, 0, &len) != napi_ok) { napi_throw_type_error(env, NULL, "run: input must be a string"); ok = 0; }
        else if (!(j->input = malloc(len + 1))) { fail(env, fn, ENOMEM); ok = 0; }
        else napi_get_value_string_utf8(env, argv[3], j->input, len + 1, &j->input_len);
      }
      break;
    case SPAWN_IN:
      ok = string_into(env, argv[0], j->name, sizeof j->name, 0, "spawnIn", "file") && string_into(env, argv[3], j->value, sizeof j->value, 0, "spawnIn", "cwd") &&
           string_into(env, argv[4], j->path, sizeof j->path, 1, "spawnIn", "netns") && string_into(env, argv[5], j->view, sizeof j->view, 1, "spawnIn", "view") &&
           string_into(env, argv[6], j->hostname, sizeof j->hostname, 1, "spawnIn", "hostname") &&
           (j->argv = string_vector(env, argv[1], "spawnIn", "argv")) != NULL && (j->envp = string_vector(env, argv[2], "spawnIn", "env")) != NULL;
      break;
  }
  if (!ok) { free_job(j); return NULL; }
  return j;
}

/* On the JS thread once a job's thread is done: its promise settled, the job freed. `env` is
 * NULL when the environment is going away: nothing to settle then, only to free. */
static void settle(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  struct job *j = data;
  if (env) {
    if (j->out.err) napi_reject_deferred(env, j->deferred, outcome_error(env, &j->out));
    else napi_resolve_deferred(env, j->deferred, job_value(env, j));
  }
  close_all(j->fds); /* not handed over */
  free_job(j);
}

static void *job_thread(void *arg) {
  struct job *j = arg;
  napi_threadsafe_function done = j->done;
  run_job(j);
  napi_call_threadsafe_function(done, j, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

/* The job on a detached thread of its own (signals blocked there: handlers run on the JS
 * thread); its promise (rejected at once if no thread can be had). */
static napi_value start_job(napi_env env, struct job *j) {
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "kubewire_netns", NAPI_AUTO_LENGTH, &name);
  int err = 0;
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, settle, &j->done) != napi_ok) {
    failed(&j->out, "napi_create_threadsafe_function", ENOMEM);
  } else {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    err = pthread_create(&thread, &attr, job_thread, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (!err) return promise;
    napi_release_threadsafe_function(j->done, napi_tsfn_abort);
    failed(&j->out, "pthread_create", err);
  }
  napi_reject_deferred(env, j->deferred, outcome_error(env, &j->out));
  free_job(j);
  return promise;
}

/* The entry point of every operation: `data` is its op; the `promises` variants carry
 * ASYNC in it and run the job on a thread of its own. */
#define ASYNC 0x100

static napi_value call(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  void *data;
  napi_get_cb_info(env, info, &argc, argv, NULL, &data);
  int how = (int)(intptr_t)data;
  struct job *j = parse_job(env, (enum op)(how & ~ASYNC), argc, argv);
  if (!j) return NULL;
  if (how & ASYNC) return start_job(env, j);
  napi_value result = NULL;
  if (run_job(j)) result = job_value(env, j);
  else napi_throw(env, outcome_error(env, &j->out));
  free_job(j);
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
  leave_ns(home);
  if (fd < 0) return fail(env, "socket", err);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct { const char *name; napi_callback fn; } plain[] = {
    { "listenIn", listen_in }, { "tryLock", try_lock }, { "waitPid", wait_pid }, { "socketIn", socket_in },
  };
  const struct { const char *name; enum op op; } ops[] = {
    { "netnsAdd", NETNS_ADD }, { "netnsDel", NETNS_DEL }, { "linkUp", LINK_UP }, { "linkFlags", LINK_FLAGS },
    { "sysctlIn", SYSCTL_IN }, { "spawn", SPAWN }, { "spawnIn", SPAWN_IN }, { "run", RUN },
  };
  napi_value fn, promises;
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
    napi_create_function(env, plain[i].name, NAPI_AUTO_LENGTH, plain[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, plain[i].name, fn);
  }
  napi_create_object(env, &promises);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    napi_create_function(env, ops[i].name, NAPI_AUTO_LENGTH, call, (void *)(intptr_t)ops[i].op, &fn);
    napi_set_named_property(env, exports, ops[i].name, fn);
    napi_create_function(env, ops[i].name, NAPI_AUTO_LENGTH, call, (void *)(intptr_t)(ops[i].op | ASYNC), &fn);
    napi_set_named_property(env, promises, ops[i].name, fn);
  }
  napi_set_named_property(env, exports, "promises", promises);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
