/*
 * C baselines for bench/run.lua: the same system calls as the Lua loops,
 * written plainly. Usage: loops LOOP SECONDS  -> "ok OPS WALL CPU"
 *                         loops httpd PORTFILE [WORKERS]
 *                         loops httpka PORTFILE [PROCESSES]   (keep-alive, epoll)
 * (the server writes its port, then its pid and its workers' pids, to PORTFILE)
 * Built with -O2 into bench/bin/ by bench/run.sh.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double secs;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this process (user + system) */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

/* run body in batches of `batch` until secs have passed; prints
   "ok OPS WALL CPU" (wall-clock and process CPU seconds) */
#define RUN(batch, ...)                                             \
  do {                                                              \
    long ops_ = 0;                                                  \
    double t0_ = now(), c0_ = cpu(), el_;                           \
    do {                                                            \
      for (int i_ = 0; i_ < (batch); i_++) { __VA_ARGS__; }         \
      ops_ += (batch);                                              \
      el_ = now() - t0_;                                            \
    } while (el_ < secs);                                           \
    printf("ok %ld %.6f %.6f\n", ops_, el_, cpu() - c0_);           \
  } while (0)

static void pair(int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
}

static void xsend(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("send");
    }
    buf += r;
    n -= (size_t)r;
  }
}

static void xrecv(int fd, char *buf, size_t n) {
  ssize_t r;
  while ((r = recv(fd, buf, n, 0)) < 0 && errno == EINTR) {
  }
  if (r <= 0) die("recv");
}

static int loop_sendrecv(void) {
  char buf[64] = {0};
  int sv[2];
  pair(sv);
  RUN(100, { xsend(sv[0], buf, 64); xrecv(sv[1], buf, 64); });
  return 0;
}

static int loop_bulk(void) {
  static char buf[65536];
  int sv[2];
  pid_t pid;
  long long bytes = 0;
  double t0, c0, el;
  /* real pages, as the Lua and Python strings are: an untouched static
     buffer would be the shared zero page, always in cache */
  memset(buf, 'b', sizeof buf);
  pair(sv);
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(sv[1]);
    for (;;) {
      size_t n = sizeof buf;
      char *p = buf;
      while (n > 0) {
        ssize_t r = send(sv[0], p, n, MSG_NOSIGNAL);
        if (r < 0) {
          if (errno == EINTR) continue;
          _exit(0);
        }
        p += r;
        n -= (size_t)r;
      }
    }
  }
  close(sv[0]);
  t0 = now();
  c0 = cpu();
  do {
    for (int i = 0; i < 16; i++) {
      ssize_t r = recv(sv[1], buf, sizeof buf, 0);
      if (r <= 0) die("recv");
      bytes += r;
    }
    el = now() - t0;
  } while (el < secs);
  close(sv[1]);
  waitpid(pid, NULL, 0);
  printf("ok %lld %.6f %.6f\n", bytes, el, cpu() - c0);
  return 0;
}

static int loop_pingpong(void) {
  char buf[64] = {0};
  int sv[2];
  pid_t pid;
  pair(sv);
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(sv[1]);
    for (;;) {
      ssize_t r = recv(sv[0], buf, 64, 0);
      if (r <= 0) _exit(0);
      if (send(sv[0], buf, (size_t)r, MSG_NOSIGNAL) < 0) _exit(0);
    }
  }
  close(sv[0]);
  RUN(100, { xsend(sv[1], buf, 64); xrecv(sv[1], buf, 64); });
  close(sv[1]);
  waitpid(pid, NULL, 0);
  return 0;
}

/* the task-switch loop's limit: one process, two non-blocking ends, each
   read tried first and waited for in epoll on EAGAIN, as a scheduler does */
static int loop_taskswitch(void) {
  char c = 'x';
  int sv[2], ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN}, out;
  if (ep < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    die("taskswitch");
  ev.data.fd = sv[0];
  epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
  ev.data.fd = sv[1];
  epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
  RUN(100, {
    xsend(sv[0], &c, 1);
    while (recv(sv[1], &c, 1, 0) < 0) epoll_wait(ep, &out, 1, -1);
    xsend(sv[1], &c, 1);
    while (recv(sv[0], &c, 1, 0) < 0) epoll_wait(ep, &out, 1, -1);
  });
  close(sv[0]);
  close(sv[1]);
  close(ep);
  return 0;
}

static int loop_fdpass(void) {
  int sv[2], fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open");
  pair(sv);
  RUN(100, {
    char data = 'x', in[64];
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * 16)]; } c;
    struct iovec iov = {&data, 1};
    struct msghdr m;
    struct cmsghdr *cm;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = c.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    if (sendmsg(sv[0], &m, MSG_NOSIGNAL) < 0) die("sendmsg");
    iov.iov_base = in;
    iov.iov_len = sizeof in;
    m.msg_control = c.buf;
    m.msg_controllen = sizeof c.buf;
    if (recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) <= 0) die("recvmsg");
    for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
        int got;
        memcpy(&got, CMSG_DATA(cm), sizeof got);
        close(got);
      }
  });
  return 0;
}

static int lockfile(void) {
  char path[] = "/tmp/unixipc-bench-lock-XXXXXX";
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) die("mkstemp");
  unlink(path);
  return fd;
}

static int loop_flock(void) {
  int fd = lockfile();
  RUN(100, {
    if (flock(fd, LOCK_EX) < 0) die("flock");
    if (flock(fd, LOCK_UN) < 0) die("flock");
  });
  return 0;
}

static int loop_fcntl(void) {
  int fd = lockfile();
  RUN(100, {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLKW, &fl) < 0) die("fcntl");
    fl.l_type = F_UNLCK;
    if (fcntl(fd, F_SETLK, &fl) < 0) die("fcntl");
  });
  return 0;
}

static int loop_fork(void) {
  RUN(10, {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    if (waitpid(pid, NULL, 0) != pid) die("waitpid");
  });
  return 0;
}

static int loop_signal(void) {
  sigset_t set;
  pid_t me = getpid();
  int sfd;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");
  RUN(100, {
    struct signalfd_siginfo si;
    if (kill(me, SIGUSR1) < 0) die("kill");
    if (read(sfd, &si, sizeof si) != sizeof si) die("read");
  });
  return 0;
}

/* a small record framed as length + payload, like a channel frame */
struct rec {
  int id;
  int ok;
  int list[3];
  char name[8];
};

static int loop_channel(void) {
  int sv[2];
  pair(sv);
  RUN(100, {
    struct rec r = {1, 1, {1, 2, 3}, "bench"}, got;
    char frame[4 + sizeof r];
    unsigned len = sizeof r;
    memcpy(frame, &len, 4);
    memcpy(frame + 4, &r, sizeof r);
    xsend(sv[0], frame, sizeof frame);
    xrecv(sv[1], (char *)&len, 4);
    xrecv(sv[1], (char *)&got, len);
    if (got.id != 1) die("channel");
  });
  return 0;
}

#define IDLE 1000

/*
 * Timeout 0 in every implementation: with a timeout, poll(2) queues a wait
 * on each descriptor it scans before the first ready one, so the cost would
 * depend on where the ready one sits (the Lua table's order puts it
 * anywhere). The ready one sits in the middle here.
 */
static int loop_poll(void) {
  struct pollfd fds[IDLE + 1];
  int sv[2], i, at = IDLE / 2;
  for (i = 0; i < IDLE; i += 2) {
    pair(sv);
    fds[i].fd = sv[0];
    fds[i + 1].fd = sv[1];
  }
  pair(sv);
  xsend(sv[0], "x", 1);
  fds[IDLE].fd = fds[at].fd;
  fds[at].fd = sv[1];
  for (i = 0; i <= IDLE; i++) fds[i].events = POLLIN;
  RUN(10, {
    if (poll(fds, IDLE + 1, 0) != 1) die("poll");
  });
  return 0;
}

/* ---- prefork HTTP server for wrk ---------------------------------- */

static const char reply[] =
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n";

static void serve(int conn) {
  char buf[8192];
  for (;;) {
    ssize_t r = recv(conn, buf, sizeof buf - 1, 0);
    char *p;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    buf[r] = '\0';
    for (p = buf; (p = strstr(p, "\r\n\r\n")) != NULL; p += 4) xsend(conn, reply, sizeof reply - 1);
  }
  close(conn);
}

static int httpd(const char *portfile, int workers) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), i;
  pid_t pids[64];
  FILE *f;
  if (s < 0) die("socket");
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 128) < 0) die("listen");
  getsockname(s, (struct sockaddr *)&sa, &len);
  if (workers > 64) workers = 64;
  for (i = 0; i < workers; i++) {
    pid_t pid = pids[i] = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) serve(c);
      }
    }
  }
  f = fopen(portfile, "w");
  if (!f) die(portfile);
  fprintf(f, "%d\n%d", ntohs(sa.sin_port), (int)getpid());
  for (i = 0; i < workers; i++) fprintf(f, " %d", (int)pids[i]);
  fprintf(f, "\n");
  fclose(f);
  while (wait(NULL) > 0 || errno == EINTR) {
  }
  return 0;
}

/* ---- keep-alive HTTP server for wrk -c1000: epoll, N processes ------ */

/*
 * The limit for "http keep-alive, many connections": N processes share one
 * listener, each with its own epoll set (the listener added with
 * EPOLLEXCLUSIVE, so a connection wakes one of them), non-blocking
 * connections, level-triggered; every "\r\n\r\n" in what a recv returns
 * is one request (wrk sends each request in one write), answered in one
 * send per recv.
 */
static void kaloop(int s) {
  struct epoll_event ev, evs[256];
  static char buf[65536], out[65536];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.fd = s;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll_ctl");
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1), i;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      ssize_t r;
      size_t k = 0;
      char *p;
      if (fd == s) {
        int c;
        while ((c = accept4(s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          ev.events = EPOLLIN;
          ev.data.fd = c;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0) close(c);
        }
        continue;
      }
      r = recv(fd, buf, sizeof buf - 1, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        close(fd); /* leaves the epoll set with its last descriptor */
        continue;
      }
      buf[r] = '\0';
      for (p = buf; (p = strstr(p, "\r\n\r\n")) != NULL && k + sizeof reply < sizeof out; p += 4) {
        memcpy(out + k, reply, sizeof reply - 1);
        k += sizeof reply - 1;
      }
      if (k > 0 && send(fd, out, k, MSG_NOSIGNAL) < 0 && errno != EAGAIN) close(fd);
    }
  }
}

static int httpka(const char *portfile, int procs) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), i;
  pid_t pids[64];
  FILE *f;
  if (s < 0) die("socket");
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 1024) < 0) die("listen");
  getsockname(s, (struct sockaddr *)&sa, &len);
  if (procs > 64) procs = 64;
  for (i = 0; i < procs; i++) {
    pid_t pid = pids[i] = fork();
    if (pid < 0) die("fork");
    if (pid == 0) kaloop(s);
  }
  f = fopen(portfile, "w");
  if (!f) die(portfile);
  fprintf(f, "%d\n%d", ntohs(sa.sin_port), (int)getpid());
  for (i = 0; i < procs; i++) fprintf(f, " %d", (int)pids[i]);
  fprintf(f, "\n");
  fclose(f);
  while (wait(NULL) > 0 || errno == EINTR) {
  }
  return 0;
}

/* ---- issue 14: programs, pidfds, big values (appended) ------------------ */

#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* posix_spawn /bin/true + waitpid: the limit for "popen true" */
static int loop_popen(void) {
  char *argv[] = {(char *)"/bin/true", NULL};
  RUN(1, {
    pid_t pid;
    int st;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0) die("posix_spawn");
    if (waitpid(pid, &st, 0) != pid) die("waitpid");
  });
  return 0;
}

/* system("/bin/true"): what os.execute does */
static int loop_execute(void) {
  RUN(1, {
    if (system("/bin/true") != 0) die("system");
  });
  return 0;
}

/* spawn + wait through the pidfd: socketpair (spawn's channel), fork, the
   child _exits, pidfd_open, poll until readable, waitid(P_PIDFD) */
static int loop_pidfd(void) {
  RUN(10, {
    int sv[2], pfd;
    siginfo_t si;
    struct pollfd p;
    pid_t pid;
    pair(sv);
    pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    close(sv[1]);
    pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) die("pidfd_open");
    p.fd = pfd;
    p.events = POLLIN;
    if (poll(&p, 1, -1) != 1) die("poll");
    if (waitid((idtype_t)P_PIDFD, (id_t)pfd, &si, WEXITED) < 0) die("waitid");
    close(pfd);
    close(sv[0]);
  });
  return 0;
}

#define BIG (64 << 20)

static char *bigbuf(void) {
  char *b = malloc(BIG);
  if (!b) die("malloc");
  memset(b, 'v', BIG);
  return b;
}

/* values/s received by the parent from a child that sends 64 MiB values:
   through a sealed memfd (memfd = 1) or the socket buffer */
static int bigvalue(int memfd) {
  int sv[2];
  pid_t pid;
  long ops = 0;
  double t0, c0, el;
  char *buf = bigbuf();
  pair(sv);
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(sv[1]);
    for (;;) {
      unsigned len = BIG;
      if (memfd) {
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
        struct msghdr m;
        struct iovec iov = {&len, sizeof len};
        int fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        size_t off = 0;
        if (fd < 0) _exit(1);
        while (off < BIG) {
          ssize_t r = write(fd, buf + off, BIG - off);
          if (r < 0) _exit(1);
          off += (size_t)r;
        }
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        memset(&m, 0, sizeof m);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = u.b;
        m.msg_controllen = sizeof u.b;
        CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &fd, sizeof fd);
        if (sendmsg(sv[0], &m, MSG_NOSIGNAL) < 0) _exit(0);
        close(fd);
      } else {
        if (send(sv[0], &len, sizeof len, MSG_NOSIGNAL) < 0) _exit(0);
        size_t off = 0;
        while (off < BIG) {
          ssize_t r = send(sv[0], buf + off, BIG - off, MSG_NOSIGNAL);
          if (r < 0) _exit(0);
          off += (size_t)r;
        }
      }
    }
  }
  close(sv[0]);
  t0 = now();
  c0 = cpu();
  do {
    unsigned len;
    if (memfd) {
      union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
      struct msghdr m;
      struct iovec iov = {&len, sizeof len};
      struct stat st;
      int fd;
      void *map;
      memset(&m, 0, sizeof m);
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = u.b;
      m.msg_controllen = sizeof u.b;
      if (recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) != sizeof len) die("recvmsg");
      memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
      if ((fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE) == 0 || fstat(fd, &st) < 0 || st.st_size != len)
        die("seals");
      map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (map == MAP_FAILED) die("mmap");
      memcpy(buf, map, len); /* into memory of our own, as a Lua string */
      munmap(map, len);
      close(fd);
    } else {
      size_t off = 0;
      xrecv(sv[1], (char *)&len, sizeof len);
      while (off < len) {
        ssize_t r = recv(sv[1], buf + off, len - off, 0);
        if (r <= 0) die("recv");
        off += (size_t)r;
      }
    }
    ops++;
    el = now() - t0;
  } while (el < secs);
  close(sv[1]);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  free(buf);
  printf("ok %ld %.6f %.6f\n", ops, el, cpu() - c0);
  return 0;
}

static int loop_bigmemfd(void) { return bigvalue(1); }
static int loop_bigsocket(void) { return bigvalue(0); }

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*fn)(void);
  } loops[] = {
    {"sendrecv", loop_sendrecv}, {"bulk", loop_bulk},   {"pingpong", loop_pingpong},
    {"fdpass", loop_fdpass},     {"flock", loop_flock}, {"fcntl", loop_fcntl},
    {"fork", loop_fork},         {"signal", loop_signal}, {"channel", loop_channel},
    {"poll", loop_poll},         {"polltable", loop_poll}, /* C has one way */
    {"taskswitch", loop_taskswitch},
    {"popen", loop_popen},       {"execute", loop_execute}, {"pidfd", loop_pidfd},
    {"bigmemfd", loop_bigmemfd}, {"bigsocket", loop_bigsocket},
    {NULL, NULL}};
  int i;
  if (argc >= 3 && strcmp(argv[1], "httpd") == 0)
    return httpd(argv[2], argc > 3 ? atoi(argv[3]) : 4);
  if (argc >= 3 && strcmp(argv[1], "httpka") == 0)
    return httpka(argv[2], argc > 3 ? atoi(argv[3]) : 2);
  if (argc < 3) {
    fprintf(stderr, "usage: loops LOOP SECONDS | loops httpd PORTFILE [WORKERS]\n");
    return 2;
  }
  secs = atof(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (i = 0; loops[i].name; i++)
    if (strcmp(loops[i].name, argv[1]) == 0) return loops[i].fn();
  printf("na unknown loop\n");
  return 0;
}
