// kubewire-spawner: starts the tools a daemon runs (ip, iptables-restore, nft...) on its
// behalf, from a process of a few hundred KB. Started from the daemon itself (a process of
// 200-500 MB with a dozen threads), each start held its event loop: a fork copies the page
// tables; posix_spawn (clone(CLONE_VM | CLONE_VFORK)) waits for the child's exec and maps a
// stack in the daemon's address space, and its threads, page faults and V8's own mappings
// then queue behind one another on that address space's lock (measured at 1,000 pods
// starting, load 15-30: 10-20 ms per start, the loop busy 100%). Here a start is a fork of
// this small process, and the daemon only writes a request and reads an answer.
//
// One request at a time is read from stdin, answers go to stdout, integers little-endian:
//   request: u32 n (bytes that follow), u32 id, u16 len + netns path (empty: this one),
//            u16 argc, argc x (u32 len + arg) (argv[0] is the program's path),
//            u32 len + stdin bytes
//   answer:  u32 n, u32 id, i32 err (0, or the errno that kept the program from starting),
//            i32 exit code (-1 when a signal ended it), i32 signal (0: none),
//            u32 len + stdout, u32 len + stderr (when err: "step: strerror(err)")
// Jobs run side by side: each child's input, output and exit are served by one poll loop.
// It exits once stdin ends (its daemon is gone) and the jobs under way are done.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct bytes { char *data; size_t len, cap; };

static void append(struct bytes *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) { perror("kubewire-spawner: realloc"); exit(70); }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
}

struct job {
  uint32_t id;
  pid_t pid;
  int in, out, err, report; /* our ends; -1 once closed */
  char *input;
  size_t input_len, written;
  struct bytes output[2];
  int status, exited, failed_errno;
  char failed_step[256];
  struct job *next;
};

static struct job *jobs;
static struct bytes answers; /* what is still to be written to stdout */
static size_t answers_sent;

static uint32_t get32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t get16(const unsigned char *p) { return p[0] | p[1] << 8; }
static void put32(struct bytes *b, uint32_t v) {
  unsigned char p[4] = { v, v >> 8, v >> 16, v >> 24 };
  append(b, p, 4);
}

/* A child's report: the errno and step that kept it from its exec. */
struct report { int err; char step[252]; };

static void child_fail(int fd, const char *step, int err) {
  struct report r = { .err = err };
  strncpy(r.step, step, sizeof r.step - 1);
  ssize_t w = write(fd, &r, sizeof r);
  (void)w;
  _exit(127);
}

static void answer(struct job *j) {
  int failed = j->failed_errno != 0;
  const struct bytes *err = &j->output[1];
  char why[512];
  snprintf(why, sizeof why, "%s: %s", j->failed_step, strerror(j->failed_errno));
  struct bytes message = { .data = why, .len = strlen(why) };
  if (failed) err = &message; /* "step: strerror", as the native helper's own errors read */
  put32(&answers, 4 + 4 + 4 + 4 + 4 + (failed ? 0 : j->output[0].len) + 4 + err->len);
  put32(&answers, j->id);
  put32(&answers, (uint32_t)j->failed_errno);
  put32(&answers, (uint32_t)(WIFEXITED(j->status) && !failed ? WEXITSTATUS(j->status) : -1));
  put32(&answers, (uint32_t)(WIFSIGNALED(j->status) && !failed ? WTERMSIG(j->status) : 0));
  put32(&answers, failed ? 0 : j->output[0].len);
  if (!failed) append(&answers, j->output[0].data, j->output[0].len);
  put32(&answers, err->len);
  append(&answers, err->data, err->len);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Starts the job a request describes (parsed from `p`, `n` bytes); an answer at once if it cannot. */
static void start(const unsigned char *p, size_t n) {
  struct job *j = calloc(1, sizeof *j);
  if (!j) { perror("kubewire-spawner: calloc"); exit(70); }
  j->in = j->out = j->err = j->report = -1;
  const unsigned char *end = p + n;
  char netns[512] = "";
  char **argv = NULL;
  uint16_t argc = 0;
  if (n < 8) goto bad;
  j->id = get32(p);
  p += 4;
  uint16_t len = get16(p);
  p += 2;
  if (len >= sizeof netns || p + len > end) goto bad;
  memcpy(netns, p, len);
  netns[len] = 0;
  p += len;
  if (p + 2 > end) goto bad;
  argc = get16(p);
  p += 2;
  if (!argc) goto bad;
  argv = calloc(argc + 1, sizeof *argv);
  if (!argv) goto bad;
  for (uint16_t i = 0; i < argc; i++) {
    if (p + 4 > end) goto bad;
    uint32_t l = get32(p);
    p += 4;
    if (l > (size_t)(end - p) || !(argv[i] = strndup((const char *)p, l))) goto bad;
    p += l;
  }
  if (p + 4 > end) goto bad;
  j->input_len = get32(p);
  p += 4;
  if (j->input_len > (size_t)(end - p)) goto bad;
  j->input = malloc(j->input_len + 1);
  if (!j->input) goto bad;
  memcpy(j->input, p, j->input_len);

  int pipes[4][2];
  for (int i = 0; i < 4; i++)
    if (pipe2(pipes[i], O_CLOEXEC) < 0) {
      j->failed_errno = errno;
      snprintf(j->failed_step, sizeof j->failed_step, "pipe2");
      for (int k = 0; k < i; k++) { close(pipes[k][0]); close(pipes[k][1]); }
      goto done;
    }
  pid_t pid = fork();
  if (pid == 0) {
    /* The child: default signals, none blocked, inside the namespace, its stdio on the pipes. */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int report = pipes[3][1];
    if (netns[0]) {
      int fd = open(netns, O_RDONLY | O_CLOEXEC);
      if (fd < 0) child_fail(report, netns, errno);
      if (setns(fd, CLONE_NEWNET) < 0) child_fail(report, "setns", errno);
      close(fd);
    }
    if (dup2(pipes[0][0], 0) < 0 || dup2(pipes[1][1], 1) < 0 || dup2(pipes[2][1], 2) < 0) child_fail(report, "dup2", errno);
    execve(argv[0], argv, environ);
    child_fail(report, argv[0], errno);
  }
  int fork_errno = errno;
  close(pipes[0][0]);
  close(pipes[1][1]);
  close(pipes[2][1]);
  close(pipes[3][1]);
  j->in = pipes[0][1];
  j->out = pipes[1][0];
  j->err = pipes[2][0];
  j->report = pipes[3][0];
  if (pid < 0) {
    j->failed_errno = fork_errno;
    snprintf(j->failed_step, sizeof j->failed_step, "fork");
    close_fd(&j->in);
    close_fd(&j->out);
    close_fd(&j->err);
    close_fd(&j->report);
    goto done;
  }
  j->pid = pid;
  for (int *fd = &j->in; fd <= &j->report; fd++) fcntl(*fd, F_SETFL, O_NONBLOCK);
  if (!j->input_len) close_fd(&j->in);
  j->next = jobs;
  jobs = j;
  for (uint16_t i = 0; i < argc; i++) free(argv[i]);
  free(argv);
  return;
bad:
  j->failed_errno = EINVAL;
  snprintf(j->failed_step, sizeof j->failed_step, "kubewire-spawner: malformed request");
done:
  if (argv) {
    for (uint16_t i = 0; i < argc; i++) free(argv[i]);
    free(argv);
  }
  answer(j);
  free(j->input);
  free(j);
}

/* Reads what a child's pipe has; closes it at EOF. */
static void drain(int *fd, struct bytes *into) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) { append(into, buf, n); continue; }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_fd(fd);
    return;
  }
}

int main(void) {
  closefrom(3); /* descriptors its starter left open: not for the tools */
  signal(SIGPIPE, SIG_IGN); /* a child that stops reading its input: EPIPE, not death */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) { perror("kubewire-spawner: signalfd"); return 70; }
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  struct bytes requests = { 0 };
  int reading = 1;
  for (;;) {
    /* Answers first: finished jobs. */
    for (struct job **jp = &jobs; *jp;) {
      struct job *j = *jp;
      if (j->exited && j->out < 0 && j->err < 0 && j->report < 0) {
        close_fd(&j->in);
        answer(j);
        *jp = j->next;
        free(j->input);
        free(j->output[0].data);
        free(j->output[1].data);
        free(j);
      } else jp = &j->next;
    }
    if (!reading && !jobs && answers_sent == answers.len) return 0;
    size_t count = 0;
    for (struct job *j = jobs; j; j = j->next) count++;
    struct pollfd *fds = calloc(3 + 4 * count, sizeof *fds);
    struct job **owner = calloc(3 + 4 * count, sizeof *owner);
    if (!fds || !owner) { perror("kubewire-spawner: calloc"); return 70; }
    size_t nfds = 0;
    fds[nfds++] = (struct pollfd){ .fd = reading ? 0 : -1, .events = POLLIN };
    fds[nfds++] = (struct pollfd){ .fd = answers_sent < answers.len ? 1 : -1, .events = POLLOUT };
    fds[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    for (struct job *j = jobs; j; j = j->next) {
      int *mine[4] = { &j->in, &j->out, &j->err, &j->report };
      for (int i = 0; i < 4; i++) {
        if (*mine[i] < 0) continue;
        owner[nfds] = j;
        fds[nfds++] = (struct pollfd){ .fd = *mine[i], .events = i == 0 ? POLLOUT : POLLIN };
      }
    }
    if (poll(fds, nfds, -1) < 0 && errno != EINTR) { perror("kubewire-spawner: poll"); return 70; }
    if (fds[0].revents) {
      char buf[65536];
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) append(&requests, buf, n);
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) reading = 0;
      size_t used = 0;
      while (requests.len - used >= 4) {
        uint32_t len = get32((unsigned char *)requests.data + used);
        if (requests.len - used - 4 < len) break;
        start((unsigned char *)requests.data + used + 4, len);
        used += 4 + len;
      }
      memmove(requests.data, requests.data + used, requests.len - used);
      requests.len -= used;
    }
    if (fds[1].revents) {
      ssize_t n = write(1, answers.data + answers_sent, answers.len - answers_sent);
      if (n > 0) answers_sent += n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) return 0; /* the daemon is gone */
      if (answers_sent == answers.len) answers_sent = answers.len = 0;
    }
    if (fds[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {}
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (struct job *j = jobs; j; j = j->next)
          if (j->pid == pid) { j->status = status; j->exited = 1; }
    }
    for (size_t i = 3; i < nfds; i++) {
      if (!fds[i].revents) continue;
      struct job *j = owner[i];
      if (fds[i].fd == j->in) {
        ssize_t n = write(j->in, j->input + j->written, j->input_len - j->written);
        if (n > 0) j->written += n;
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || j->written == j->input_len) close_fd(&j->in);
      } else if (fds[i].fd == j->out) drain(&j->out, &j->output[0]);
      else if (fds[i].fd == j->err) drain(&j->err, &j->output[1]);
      else if (fds[i].fd == j->report) {
        struct report r;
        ssize_t n = read(j->report, &r, sizeof r);
        if (n == (ssize_t)sizeof r) {
          r.step[sizeof r.step - 1] = 0;
          j->failed_errno = r.err ? r.err : EIO;
          snprintf(j->failed_step, sizeof j->failed_step, "%s", r.step);
        }
        if (n >= 0 || (errno != EAGAIN && errno != EINTR)) close_fd(&j->report);
      }
    }
    free(fds);
    free(owner);
  }
}
