// kubewire_netns: opens a socket inside another network namespace and hands its file
// descriptor to Node, which serves it like any other (net.Server.listen({ fd }),
// dgram bind({ fd })). Node cannot setns(2) by itself; doing it here, on the calling
// thread only and back at once, lets one process serve many pods' ports without a
// helper process per pod. A socket keeps the namespace it was created in.
//
// It also does, without a process, what a pod's start asked `ip` and flock(1) for: add and
// delete a named network namespace, set a link up inside one, take a flock(2). A process
// start from the daemon costs it 2-4 ms of CPU (fork of a large process): at 1,000 pods
// they were half of its work.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char msg[800];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
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

  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) return fail(env, "open /proc/thread-self/ns/net", errno);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) { int e = errno; close(home); return fail(env, path, e); }
  if (setns(target, CLONE_NEWNET) < 0) { int e = errno; close(home); close(target); return fail(env, "setns", e); }
  close(target);

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
  if (setns(home, CLONE_NEWNET) < 0) {
    int e = errno;
    close(home);
    if (fd >= 0) close(fd);
    return fail(env, "setns back to the original namespace", e);
  }
  close(home);
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

// netnsAdd(path): a new network namespace, kept alive by a bind mount at `path` (what `ip
// netns add` does: the calling thread alone enters it, then comes back).
static napi_value netns_add(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[512];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !string_arg(env, argv[0], path, sizeof path)) return NULL;
  int target = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (target < 0) return fail(env, path, errno);
  close(target);
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) { int e = errno; unlink(path); return fail(env, "open /proc/thread-self/ns/net", e); }
  int err = 0;
  const char *step = NULL;
  if (unshare(CLONE_NEWNET) < 0) { err = errno; step = "unshare"; }
  else if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0) { err = errno; step = "mount"; }
  int back = setns(home, CLONE_NEWNET);
  close(home);
  if (back < 0) return fail(env, "setns back to the original namespace", errno);
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

// linkUp(netnsPath, ifname): IFF_UP on an interface inside the namespace (`ip link set dev X up`).
static napi_value link_up(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[512], ifname[IFNAMSIZ + 1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !string_arg(env, argv[0], path, sizeof path) || !string_arg(env, argv[1], ifname, sizeof ifname)) return NULL;
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) return fail(env, "open /proc/thread-self/ns/net", errno);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) { int e = errno; close(home); return fail(env, path, e); }
  if (setns(target, CLONE_NEWNET) < 0) { int e = errno; close(home); close(target); return fail(env, "setns", e); }
  close(target);
  int err = 0;
  const char *step = NULL;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { err = errno; step = "socket"; }
  else {
    struct ifreq r;
    memset(&r, 0, sizeof r);
    memcpy(r.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
    if (ioctl(s, SIOCGIFFLAGS, &r) < 0) { err = errno; step = ifname; }
    else if (!(r.ifr_flags & IFF_UP)) {
      r.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &r) < 0) { err = errno; step = ifname; }
    }
    close(s);
  }
  int back = setns(home, CLONE_NEWNET);
  close(home);
  if (back < 0) return fail(env, "setns back to the original namespace", errno);
  if (err) return fail(env, step, err);
  return NULL;
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

static napi_value init(napi_env env, napi_value exports) {
  const struct { const char *name; napi_callback fn; } fns[] = {
    { "listenIn", listen_in }, { "netnsAdd", netns_add }, { "netnsDel", netns_del }, { "linkUp", link_up }, { "tryLock", try_lock },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
