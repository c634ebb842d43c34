// kubewire-cni-shim: the CNI plugin executable a runtime starts for every call, thin as
// Multus's thick-plugin shim and Cilium's cilium-cni are. It hands the call (its CNI_*
// environment, the configuration on stdin, its own network namespace) to the plugin server
// on the node over a unix socket and gives back the server's answer as its own: stdout,
// stderr, exit code. A Node.js plugin start costs 40-60 ms; this one costs about one.
//
// Installed as a copy per plugin name (bridge, host-local, ...): the plugin is the name it
// was started by (argv[0]). The server is found through `kubewire-cni.sock` beside it (a
// symlink to the server's socket, written by `kubewire cni install`). Without a server (no
// socket, nobody listening, or a server that declines the call) it execs the plugin itself,
// `kubewire-cni-node NAME` beside it (Node.js and the plugin bundle), as without the shim:
// the spec's behaviour is the plugins' own either way.
//
// Request (client -> server), integers little-endian:
//   "KWCNI1\n", u32 n, n bytes of records, each a tag byte and a NUL-terminated string:
//     'P' plugin name, 'I' pid, 'N' netns "dev:ino", 'M' mount ns "dev:ino", 'C' cwd,
//     'E' one environment entry KEY=VALUE
//   u32 m, m bytes of stdin
// Answer (server -> client):
//   'A' the server has started the call (from here on, no fallback: it may have acted), then
//   'R', i32 exit code, u32 len + stdout, u32 len + stderr.
//   Or 'F' before 'A': the server declines (another mount namespace, a plugin it does not
//   run...), and the shim execs the plugin itself.
// The marker string below lets kubewire's runtime recognise its own plugins (invoke/marker.ts).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

__attribute__((used)) static const char MARKER[] = "kubewire-cni-plugin: shim";
#define SOCKET_NAME "kubewire-cni.sock"
#define FALLBACK_NAME "kubewire-cni-node"
#define MAX_STDIN (64u << 20)

struct buf { char *data; size_t len, cap; };

static void put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { perror("kubewire-cni-shim: out of memory"); exit(1); }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
  unsigned char x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff };
  put(b, x, 4);
}

static void put_record(struct buf *b, char tag, const char *s) {
  put(b, &tag, 1);
  put(b, s, strlen(s) + 1);
}

static uint32_t get_u32(const unsigned char *x) {
  return (uint32_t)x[0] | ((uint32_t)x[1] << 8) | ((uint32_t)x[2] << 16) | ((uint32_t)x[3] << 24);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* 1 when n bytes were read, 0 on EOF or error before that. */
static int read_all(int fd, void *dst, size_t n) {
  char *p = dst;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    p += r;
    n -= (size_t)r;
  }
  return 1;
}

static void read_stdin(struct buf *in) {
  char chunk[65536];
  for (;;) {
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return; /* EOF, or no stdin at all: the plugin reports what it lacks */
    if (in->len + (size_t)r > MAX_STDIN) { fputs("kubewire-cni-shim: configuration on stdin larger than 64 MiB\n", stderr); exit(1); }
    put(in, chunk, (size_t)r);
  }
}

/* "dev:ino" of a namespace file, or "" when it cannot be read. */
static void ns_id(const char *path, char *out, size_t n) {
  struct stat st;
  if (stat(path, &st) < 0) { out[0] = 0; return; }
  snprintf(out, n, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

/* The spec's error JSON on stdout, exit 1: what a plugin says when it cannot do the call. */
static void cni_error(int code, const char *msg, const char *details) {
  printf("{\"code\":%d,\"msg\":\"%s\",\"details\":\"%s\"}", code, msg, details);
  fflush(stdout);
  exit(1);
}

/* Runs the plugin in this process's place (Node.js), its stdin the bytes already read, if any. */
static void fallback(const char *dir, const char *name, const struct buf *in, int stdin_read) {
  char path[PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, FALLBACK_NAME) >= sizeof path) cni_error(999, "kubewire-cni-shim: plugin directory path too long", dir);
  if (stdin_read) {
    int fd = memfd_create("cni-stdin", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, in->data ? in->data : "", in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0) cni_error(999, "kubewire-cni-shim: cannot keep the configuration for the plugin", strerror(errno));
    if (dup2(fd, 0) < 0) cni_error(999, "kubewire-cni-shim: dup2", strerror(errno));
    close(fd);
  }
  char *argv[] = { path, (char *)name, NULL };
  execv(path, argv);
  cni_error(999, "kubewire-cni-shim: cannot start the plugin " FALLBACK_NAME, strerror(errno));
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGPIPE, SIG_IGN);
  /* The plugin is the name this file was started by; the socket and the fallback are beside it. */
  char exe[PATH_MAX];
  const char *argv0 = argv[0] && argv[0][0] ? argv[0] : "";
  if (!strchr(argv0, '/')) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) cni_error(999, "kubewire-cni-shim: cannot find its own path", strerror(errno));
    exe[n] = 0;
  } else if ((size_t)snprintf(exe, sizeof exe, "%s", argv0) >= sizeof exe) {
    cni_error(999, "kubewire-cni-shim: path too long", "");
  }
  const char *slash = strrchr(argv0, '/');
  const char *name = slash ? slash + 1 : argv0;
  if (!*name) name = strrchr(exe, '/') + 1;
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(exe, '/') - exe), exe);
  if (!dir[0]) strcpy(dir, "/");

  struct buf in = { 0 };
  const char *command = getenv("CNI_COMMAND");
  /* Without a command the plugin prints what it is: not worth a server. */
  if (!command || !*command) fallback(dir, name, &in, 0);
  read_stdin(&in);

  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s", dir, SOCKET_NAME) >= sizeof addr.sun_path) fallback(dir, name, &in, 1);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) fallback(dir, name, &in, 1);

  struct buf req = { 0 }, rec = { 0 };
  char text[PATH_MAX + 32];
  put_record(&rec, 'P', name);
  snprintf(text, sizeof text, "%ld", (long)getpid());
  put_record(&rec, 'I', text);
  ns_id("/proc/self/ns/net", text, sizeof text);
  put_record(&rec, 'N', text);
  ns_id("/proc/self/ns/mnt", text, sizeof text);
  put_record(&rec, 'M', text);
  if (getcwd(text, sizeof text)) put_record(&rec, 'C', text);
  for (char **e = environ; *e; e++) put_record(&rec, 'E', *e);
  put(&req, "KWCNI1\n", 7);
  put_u32(&req, (uint32_t)rec.len);
  put(&req, rec.data, rec.len);
  put_u32(&req, (uint32_t)in.len);
  if (in.len) put(&req, in.data, in.len);
  /* A server that goes before taking the call has done nothing: run the plugin here. */
  if (write_all(s, req.data, req.len) < 0) fallback(dir, name, &in, 1);

  char verdict;
  if (!read_all(s, &verdict, 1) || verdict == 'F') fallback(dir, name, &in, 1);
  if (verdict != 'A') cni_error(999, "kubewire-cni-shim: the plugin server answered out of protocol", "");
  unsigned char head[9];
  if (!read_all(s, head, 9) || head[0] != 'R') {
    /* It took the call and went away: it may have done part of it. Say so; the runtime retries or DELs. */
    cni_error(11, "kubewire-cni-shim: the plugin server went away during the call; try again", "");
  }
  int32_t code = (int32_t)get_u32(head + 1);
  for (int fd = 1; fd <= 2; fd++) {
    uint32_t len = get_u32(head + 5);
    char *out = malloc(len ? len : 1);
    if (!out || !read_all(s, out, len)) cni_error(11, "kubewire-cni-shim: the plugin server went away during the call; try again", "");
    write_all(fd, out, len);
    free(out);
    if (fd == 1 && !read_all(s, head + 5, 4)) cni_error(11, "kubewire-cni-shim: the plugin server went away during the call; try again", "");
  }
  return code;
}
