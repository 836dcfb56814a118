/*
 * Running programs: exec (this process becomes the program) and _spawn (a
 * new process that becomes it at once: popen's core, see
 * lua/unixipc/process.lua), over one plan of what the new program gets --
 * the exact descriptor table, a working directory, a session, a parent-
 * death signal. spawn's forked Lua children use the same plan
 * (process.c's _forkrun).
 *
 * _spawn is clone(CLONE_VM | CLONE_VFORK) + exec, vfork's semantics: the
 * child borrows the parent's memory (no page tables copied, whatever the
 * size of the Lua state) and the parent sleeps until the child has exec'd
 * or died. The child runs only async-signal-safe calls on a stack of its
 * own, on data the parent prepared, and reports a failed step on a
 * close-on-exec pipe, so a missing program is the caller's nil, "exec
 * prog: No such file or directory", ENOENT, never a child exiting 127.
 * CLONE_PIDFD hands the parent a pidfd for the child atomically (Linux
 * 5.2). Where clone is refused (a sandbox, an old kernel) the same child
 * is forked. posix_spawn is not used: it cannot set a parent-death
 * signal, and glibc's does the same clone underneath.
 */
#include "private.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* ---- argv and env ------------------------------------------------------- */

/*
 * The value at idx as a C string for exec: a string or a number, without a
 * zero byte. key (an absolute index) names it in errors: argv[3], env.HOME.
 */
static const char *execstr(lua_State *L, int idx, int arg, const char *t, int key) {
  size_t n;
  const char *s, *why = NULL;
  int vt = lua_type(L, idx);
  if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
    why = lua_pushfstring(L, "must be a string, got %s", lua_typename(L, vt));
  else {
    s = lua_tolstring(L, idx, &n);
    if (strlen(s) == n) return s;
    why = "contains a zero byte";
  }
  if (lua_type(L, key) == LUA_TSTRING)
    uipc_argerror(L, arg, "%s.%s %s", t, lua_tostring(L, key), why);
  uipc_argerror(L, arg, "%s[%I] %s", t, lua_tointeger(L, key), why);
  return NULL;
}

/*
 * The strings handed to execve stay reachable from the anchor table at
 * `anchor` (Lua strings never move), so nothing is collected under the
 * arrays while exec runs.
 */
static char **buildargv(lua_State *L, const char *path, int anchor, size_t *pn) {
  int ist = lua_istable(L, 2);
  size_t n = ist ? lua_rawlen(L, 2) : 0, i;
  char **argv = (char **)lua_newuserdatauv(L, (n + 2) * sizeof(char *), 0);
  lua_rawsetp(L, anchor, argv);
  argv[0] = (char *)path;
  for (i = ist ? 0 : 1; i <= n; i++) {
    lua_pushinteger(L, (lua_Integer)i);
    if (lua_rawget(L, 2) == LUA_TNIL && i == 0) { /* argv[0] defaults to path */
      lua_pop(L, 1);
      continue;
    }
    lua_pushinteger(L, (lua_Integer)i);
    argv[i] = (char *)execstr(L, -2, 2, "argv", lua_gettop(L));
    lua_pop(L, 1);
    lua_rawseti(L, anchor, (lua_Integer)i);
  }
  argv[n + 1] = NULL;
  *pn = n;
  return argv;
}

/* env as {NAME = value, ...} and/or {"NAME=value", ...} */
static char **buildenv(lua_State *L, int anchor) {
  size_t n = 0, i = 0;
  char **envp;
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    n++;
    lua_pop(L, 1);
  }
  envp = (char **)lua_newuserdatauv(L, (n + 1) * sizeof(char *), 0);
  lua_rawsetp(L, anchor, envp);
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    const char *s;
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && !lua_isinteger(L, -2))
      uipc_argerror(L, 3, "env keys must be names or list positions, got %s", lua_typename(L, kt));
    s = execstr(L, -1, 3, "env", lua_gettop(L) - 1);
    if (kt == LUA_TSTRING) {
      size_t kn;
      const char *k = lua_tolstring(L, -2, &kn);
      if (kn == 0 || strlen(k) != kn || strchr(k, '='))
        uipc_argerror(L, 3, "invalid environment name '%s'", k);
      s = lua_pushfstring(L, "%s=%s", k, s);
    } else {
      const char *eq = strchr(s, '=');
      if (!eq || eq == s)
        uipc_argerror(L, 3, "env[%I] must look like \"NAME=value\", got '%s'", lua_tointeger(L, -2), s);
      lua_pushvalue(L, -1);
    }
    /* a finalizer run by an allocation above may have added keys */
    if (i == n) uipc_argerror(L, 3, "env changed while it was read");
    envp[i++] = (char *)s;
    lua_rawseti(L, anchor, (lua_Integer)i);
    lua_pop(L, 1);
  }
  envp[i] = NULL;
  return envp;
}

/* execve, falling back to /bin/sh for a file without a #! line, as execvp does */
static int tryexec(const char *file, char **argv, char **envp, char **shargv, size_t n) {
  int err;
  execve(file, argv, envp);
  err = errno;
  if (err == ENOEXEC) {
    size_t i;
    shargv[0] = (char *)"/bin/sh";
    shargv[1] = (char *)file;
    for (i = 1; i <= n; i++) shargv[i + 1] = argv[i];
    shargv[n + 2] = NULL;
    execve("/bin/sh", shargv, envp);
  }
  return err;
}

/* ignore the signals in set, saving their actions in old (restore = 0), or
   put the saved actions back (restore = 1) */
static void swapignored(const sigset_t *set, struct sigaction *old, int restore) {
  struct sigaction ign;
  int s;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (s = 1; s < NSIG; s++)
    if (sigismember(set, s) == 1) {
      if (restore)
        sigaction(s, &old[s], NULL);
      else
        sigaction(s, &ign, &old[s]);
    }
}

/* everything execve needs, prepared before anything changes (and before a
   vfork child runs, which must not allocate) */
typedef struct {
  const char *file;
  char **argv, **envp;
  size_t n;      /* arguments after argv[0] */
  char **shargv; /* argv for /bin/sh when a file has no #! */
  char *buf;     /* PATH entry + "/" + file */
  const char *path;
} Program;

/* the program of exec(path, argv [, env]) at 1, 2, 3 */
static void buildprogram(lua_State *L, int anchor, Program *x) {
  x->file = lua_tostring(L, 1);
  x->argv = buildargv(L, x->file, anchor, &x->n);
  x->envp = lua_istable(L, 3) ? buildenv(L, anchor) : environ;
  x->shargv = (char **)lua_newuserdatauv(L, (x->n + 3) * sizeof(char *), 0);
  lua_rawsetp(L, anchor, x->shargv);
  x->path = getenv("PATH");
  if (!x->path) x->path = "/bin:/usr/bin";
  x->buf = (char *)lua_newuserdatauv(L, strlen(x->path) + strlen(x->file) + 3, 0);
  lua_rawsetp(L, anchor, x->buf);
}

/* the execvp search over the caller's PATH; returns the errno to report */
static int execsearch(const Program *x) {
  const char *p, *file = x->file;
  char *buf = x->buf;
  size_t flen = strlen(file);
  int err = ENOENT, eacces = 0;
  if (*file == '\0') return ENOENT;
  if (strchr(file, '/')) return tryexec(file, x->argv, x->envp, x->shargv, x->n);
  for (p = x->path;; p++) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);
    if (dlen == 0) {
      buf[0] = '.';
      dlen = 1;
    } else
      memcpy(buf, p, dlen);
    buf[dlen] = '/';
    memcpy(buf + dlen + 1, file, flen + 1);
    err = tryexec(buf, x->argv, x->envp, x->shargv, x->n);
    switch (err) {
      case EACCES: eacces = 1; /* fallthrough: keep looking, as execvp does */
      case ENOENT:
      case ENOTDIR:
      case ENAMETOOLONG:
      case ELOOP:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT: break;
      default: return err;
    }
    if (!end) break;
    p = end;
  }
  return eacces ? EACCES : err;
}

/* the checks exec and _spawn share: path 1, argv 2, env 3 */
static void checkprogram(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
    uipc_argerror(L, 2, "argv must be a table of strings, got %s", luaL_typename(L, 2));
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    uipc_argerror(L, 3, "env must be a table, got %s", luaL_typename(L, 3));
  if (strlen(path) != lua_rawlen(L, 1)) uipc_argerror(L, 1, "path contains a zero byte");
}

/* ---- the plan --------------------------------------------------------- */

static int fdlimit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 20)
    return 1 << 20;
  return (int)rl.rlim_cur;
}

void uipc_plancheck(lua_State *L, int base, int argn, int anchor, uipc_Plan *p) {
  int fds = base, cwd = base + 1, ss = base + 2, pds = base + 3, n = 0, i;
  memset(p, 0, sizeof *p);
  p->parent = getpid();
  if (!lua_isnil(L, fds)) {
    if (!lua_istable(L, fds))
      uipc_argerror(L, argn, "option 'fds' must be a table {[n] = descriptor, ...}, got %s",
                    luaL_typename(L, fds));
    lua_pushnil(L);
    while (lua_next(L, fds)) {
      n++;
      lua_pop(L, 1);
    }
    p->map = (uipc_FdMove *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *p->map, 0);
    lua_rawsetp(L, anchor, p->map);
    p->moved = (int *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(int), 0);
    lua_rawsetp(L, anchor, p->moved);
    lua_pushnil(L);
    while (lua_next(L, fds)) {
      lua_Integer t;
      int src;
      if (!lua_isinteger(L, -2) || (t = lua_tointeger(L, -2)) < 0 || t > INT_MAX) {
        if (lua_type(L, -2) == LUA_TNUMBER)
          uipc_argerror(L, argn, "option 'fds': descriptor numbers go from 0 to 2147483647, got %s",
                        lua_tostring(L, -2));
        uipc_argerror(L, argn, "option 'fds': keys must be descriptor numbers, got %s",
                      luaL_typename(L, -2));
      }
      src = uipc_tofd(L, -1, argn, (int)t, NULL);
      lua_pop(L, 1);
      /* a foreign getfd, or a finalizer run by an allocation, may have added keys */
      if (p->nmap == n) uipc_argerror(L, argn, "option 'fds' changed while it was read");
      /* insertion by target: the lists are short */
      for (i = p->nmap; i > 0 && p->map[i - 1].target > (int)t; i--) p->map[i] = p->map[i - 1];
      p->map[i].target = (int)t;
      p->map[i].source = src;
      p->nmap++;
    }
    for (i = 0; i < p->nmap; i++) p->moved[i] = p->map[i].source; /* nothing moved yet */
    p->exact = 1;
  }
  if (!lua_isnil(L, cwd)) {
    size_t len;
    const char *s;
    if (lua_type(L, cwd) != LUA_TSTRING)
      uipc_argerror(L, argn, "option 'cwd' must be a directory name, got %s", luaL_typename(L, cwd));
    s = lua_tolstring(L, cwd, &len);
    if (strlen(s) != len) uipc_argerror(L, argn, "option 'cwd' contains a NUL byte");
    p->cwd = s; /* anchored: the option table's slot stays on the stack */
  }
  p->setsid = uipc_optbool(L, ss, argn, "setsid", 0);
  if (!lua_isnil(L, pds) && !(lua_isboolean(L, pds) && !lua_toboolean(L, pds))) {
    if (lua_type(L, pds) == LUA_TNUMBER)
      p->pdeathsig = (int)uipc_intarg(L, pds, argn, 1, NSIG - 1, "option 'pdeathsig'");
    else if (lua_type(L, pds) == LUA_TSTRING)
      p->pdeathsig = uipc_signalarg(L, pds, argn);
    else
      uipc_argerror(L, argn, "option 'pdeathsig' must be a signal name or number, got %s",
                    luaL_typename(L, pds));
  }
  p->fdlimit = fdlimit();
  p->keep = -1;
}

static int planerr(uipc_Plan *p, int stage, int err, int where) {
  p->stage = stage;
  p->err = err;
  p->where = where;
  return -1;
}

static int istarget(const uipc_Plan *p, int fd) {
  int lo = 0, hi = p->nmap - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, t = p->map[mid].target;
    if (t == fd) return 1;
    if (t < fd)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return 0;
}

/* close lo..hi (hi -1: to the end), or mark them close-on-exec */
static void closerange(const uipc_Plan *p, int lo, int hi, int cloexec) {
  int fd;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lo, hi < 0 ? ~0U : (unsigned)hi,
              cloexec ? CLOSE_RANGE_CLOEXEC : 0) == 0)
    return;
#endif
  /* before Linux 5.9 (5.11 for CLOSE_RANGE_CLOEXEC): one call per number */
  if (hi < 0 || hi >= p->fdlimit) hi = p->fdlimit - 1;
  for (fd = lo; fd <= hi; fd++) {
    if (cloexec) {
      int fl = fcntl(fd, F_GETFD);
      if (fl >= 0 && !(fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    } else
      close(fd);
  }
}

/*
 * The dup2 shuffle: afterwards each target names the file its source named
 * before, whatever the overlaps (a source that is another entry's target)
 * and cycles ({[0] = 1, [1] = 0}). Sources that are targets are first
 * copied above every target; then each target is dup2'd (which clears
 * close-on-exec), or, when it is its own source, has close-on-exec
 * cleared -- an entry {[n] = n} for a closed n leaves it closed. Exact
 * plans then close every other descriptor.
 */
/* a source that is another entry's target goes above every target first
   (moved[i]: where entry i's source is now); async-signal-safe */
static int lift(uipc_Plan *p) {
  int i, maxt = p->nmap ? p->map[p->nmap - 1].target : -1;
  for (i = 0; i < p->nmap; i++) {
    int s = p->map[i].source;
    p->moved[i] = s;
    if (s != p->map[i].target && istarget(p, s)) {
      int nf = fcntl(s, F_DUPFD_CLOEXEC, maxt + 1);
      if (nf < 0) return planerr(p, UIPC_STAGE_DUP, errno, p->map[i].target);
      p->moved[i] = nf;
    }
  }
  return 0;
}

static int shuffle(uipc_Plan *p) {
  int i;
  if (lift(p) < 0) return -1;
  for (i = 0; i < p->nmap; i++) {
    int s = p->moved[i], t = p->map[i].target;
    if (s == t) {
      int fl = fcntl(t, F_GETFD);
      if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(t, F_SETFD, fl & ~FD_CLOEXEC);
    } else {
      int r;
      while ((r = dup2(s, t)) < 0 && errno == EINTR) {
      }
      if (r < 0) return planerr(p, UIPC_STAGE_DUP, errno, t);
    }
  }
  if (p->exact) {
    int lo = 0;
    for (i = 0; i <= p->nmap; i++) {
      int t = i < p->nmap ? p->map[i].target : INT_MAX;
      if (p->keep >= lo && p->keep < t) { /* the gap holds the one to keep */
        if (p->keep > lo) closerange(p, lo, p->keep - 1, 0);
        lo = p->keep + 1;
      }
      if (i == p->nmap) break;
      if (t > lo) closerange(p, lo, t - 1, 0);
      lo = t + 1;
    }
    closerange(p, lo, -1, 0);
  } else {
    for (i = 0; i < p->nmap; i++)
      if (p->moved[i] != p->map[i].source && p->moved[i] >= 0) close(p->moved[i]);
  }
  return 0;
}

int uipc_planapply(uipc_Plan *p) {
  if (p->setsid && setsid() < 0) return planerr(p, UIPC_STAGE_SETSID, errno, 0);
  if (p->pdeathsig) {
    if (prctl(PR_SET_PDEATHSIG, p->pdeathsig) < 0)
      return planerr(p, UIPC_STAGE_PDEATHSIG, errno, 0);
    /* the parent may have died between fork and prctl: then nobody will
       send the signal, so the child sends it to itself (it is delivered
       when the signal mask allows) */
    if (getppid() != p->parent) kill(getpid(), p->pdeathsig);
  }
  if (p->cwd && chdir(p->cwd) < 0) return planerr(p, UIPC_STAGE_CHDIR, errno, 0);
  if ((p->nmap > 0 || p->exact) && shuffle(p) < 0) return -1;
  return 0;
}

int uipc_planfail(lua_State *L, const uipc_Plan *p, const char *path) {
  switch (p->stage) {
    case UIPC_STAGE_SETSID: return uipc_fail(L, "setsid", p->err);
    case UIPC_STAGE_PDEATHSIG: return uipc_fail(L, "prctl", p->err);
    case UIPC_STAGE_CHDIR: return uipc_failon(L, "chdir", p->cwd, p->err);
    case UIPC_STAGE_DUP: {
      char where[32];
      snprintf(where, sizeof where, "fds[%d]", p->where);
      return uipc_failon(L, "dup2", where, p->err);
    }
    default: return uipc_failon(L, "exec", path ? path : "?", p->err);
  }
}

/* ---- exec: this process becomes the program --------------------------- */

/* what exec changed, to be put back if execve fails */
typedef struct {
  int target, saved, flags; /* saved: copy of target's old file, -1: it was closed */
} Undo;

typedef struct {
  Undo *undo;
  int nundo;
  int *plain, nplain; /* descriptors outside the plan that were not close-on-exec */
  int scanned;        /* plain is complete (/proc/self/fd was read) */
  int oldcwd;
} ExecState;

/* the descriptors that are not close-on-exec (and no targets): exact plans
   mark them close-on-exec, and unmark them if execve fails */
static void scanplain(lua_State *L, const uipc_Plan *p, int anchor, ExecState *st) {
  DIR *d;
  struct dirent *e;
  int cap = 64, dfd;
  st->plain = (int *)lua_newuserdatauv(L, (size_t)cap * sizeof(int), 0);
  lua_rawsetp(L, anchor, st->plain);
  if ((d = opendir("/proc/self/fd")) == NULL) return;
  dfd = dirfd(d);
  while ((e = readdir(d)) != NULL) {
    int fd, fl;
    if (e->d_name[0] == '.') continue;
    fd = atoi(e->d_name);
    if (fd == dfd || istarget(p, fd) || (fl = fcntl(fd, F_GETFD)) < 0 || (fl & FD_CLOEXEC))
      continue;
    if (st->nplain == cap) {
      int *n = (int *)lua_newuserdatauv(L, (size_t)cap * 2 * sizeof(int), 0);
      memcpy(n, st->plain, (size_t)cap * sizeof(int));
      lua_rawsetp(L, anchor, n);
      st->plain = n;
      cap *= 2;
    }
    st->plain[st->nplain++] = fd;
  }
  closedir(d);
  st->scanned = 1;
}

static void undoexec(const uipc_Plan *p, ExecState *st) {
  int i;
  for (i = 0; i < st->nplain; i++) {
    int fl = fcntl(st->plain[i], F_GETFD);
    if (fl >= 0) fcntl(st->plain[i], F_SETFD, fl & ~FD_CLOEXEC);
  }
  for (i = st->nundo - 1; i >= 0; i--) {
    Undo *u = &st->undo[i];
    if (u->saved == -2) /* its own source: close-on-exec as it was */
      fcntl(u->target, F_SETFD, u->flags);
    else if (u->saved >= 0) {
      dup3(u->saved, u->target, (u->flags & FD_CLOEXEC) ? O_CLOEXEC : 0);
      close(u->saved);
    } else
      close(u->target);
  }
  for (i = 0; i < p->nmap; i++)
    if (p->moved[i] != p->map[i].source && p->moved[i] >= 0) close(p->moved[i]);
  if (st->oldcwd >= 0) {
    if (fchdir(st->oldcwd) < 0) { /* nothing better to do */
    }
    close(st->oldcwd);
  }
}

/* the in-process shuffle, recording in st what it changes */
static int shuffleundo(uipc_Plan *p, ExecState *st) {
  int i, maxt = p->nmap ? p->map[p->nmap - 1].target : -1;
  if (lift(p) < 0) return -1;
  for (i = 0; i < p->nmap; i++) {
    int s = p->moved[i], t = p->map[i].target, fl = fcntl(t, F_GETFD);
    Undo *u = &st->undo[st->nundo];
    u->target = t;
    u->flags = fl;
    if (s == t) {
      if (fl < 0) continue; /* closed, and stays so */
      u->saved = -2;
      st->nundo++;
      if (fl & FD_CLOEXEC) fcntl(t, F_SETFD, fl & ~FD_CLOEXEC);
      continue;
    }
    u->saved = -1;
    if (fl >= 0 && (u->saved = fcntl(t, F_DUPFD_CLOEXEC, maxt + 1)) < 0)
      return planerr(p, UIPC_STAGE_DUP, errno, t);
    st->nundo++;
    if (dup2(s, t) < 0) return planerr(p, UIPC_STAGE_DUP, errno, t);
  }
  if (p->exact) {
    /* everything else close-on-exec rather than closed: if execve fails,
       it is all still there */
    if (st->scanned) {
      for (i = 0; i < st->nplain; i++) {
        int fl = fcntl(st->plain[i], F_GETFD);
        if (fl >= 0) fcntl(st->plain[i], F_SETFD, fl | FD_CLOEXEC);
      }
    } else {
      int lo = 0;
      for (i = 0; i < p->nmap; i++) {
        if (p->map[i].target > lo) closerange(p, lo, p->map[i].target - 1, 1);
        lo = p->map[i].target + 1;
      }
      closerange(p, lo, -1, 1);
    }
  }
  return 0;
}

static const uipc_Opt execopts[] = {UIPC_OPT("fds"), UIPC_OPT("cwd"), {NULL, 0}};

/*
 * exec(path, argv [, env [, {fds =, cwd =}]]) -> only returns on failure:
 * nil, msg, errno. argv is the argument list after the program name, as
 * Lua's own `arg`: argv[1], argv[2], ...; argv[0], when present, is the
 * name the program sees as its argv[0] (default: path). env, when given,
 * replaces the environment. path without "/" is searched in the caller's
 * PATH (execvp). C stdio is flushed first, since exec would drop buffered
 * output. The new program gets the signal mask the process had before any
 * unixipc signal bridge blocked signals.
 *
 * fds = {[0] = obj, [1] = obj, [3] = obj, ...} is the program's descriptor
 * table, exactly: each number names the given descriptor's file, and every
 * other descriptor is closed by exec (close-on-exec). cwd: the directory
 * the program starts in (a relative path is found from there).
 *
 * If execve fails, everything is put back -- mask, ignored signals, the
 * descriptors at the plan's numbers, close-on-exec flags, the directory --
 * and the failure is returned. (Without /proc, descriptors that were not
 * close-on-exec stay marked close-on-exec.)
 */
static int ipc_exec(lua_State *L) {
  sigset_t saved, cur, ignored;
  struct sigaction oldact[NSIG];
  Program x;
  uipc_Plan plan;
  ExecState st;
  int anchor, err, swapped, hasopts;
  checkprogram(L);
  lua_settop(L, 4);
  hasopts = uipc_options(L, 4, 4, execopts, 5); /* 5 fds, 6 cwd */
  lua_settop(L, 8);                              /* 7 setsid, 8 pdeathsig: nil */
  lua_newtable(L);
  anchor = lua_gettop(L);
  uipc_plancheck(L, 5, 4, anchor, &plan);
  buildprogram(L, anchor, &x);
  memset(&st, 0, sizeof st);
  st.oldcwd = -1;
  if (hasopts && plan.exact) {
    st.undo = (Undo *)lua_newuserdatauv(L, (size_t)(plan.nmap + 1) * sizeof(Undo), 0);
    lua_rawsetp(L, anchor, st.undo);
    scanplain(L, &plan, anchor, &st);
  }
  fflush(NULL);
  if (plan.cwd) {
    st.oldcwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (chdir(plan.cwd) < 0) {
      err = errno;
      undoexec(&plan, &st);
      return uipc_failon(L, "chdir", plan.cwd, err);
    }
  }
  if (plan.exact && shuffleundo(&plan, &st) < 0) {
    undoexec(&plan, &st);
    return uipc_planfail(L, &plan, x.file);
  }
  /* the exec'd program gets the mask and the ignored signals the process
     had before any signal bridge; both come back if exec fails */
  swapped = uipc_sigsaved(&saved, &ignored) && sigprocmask(SIG_SETMASK, &saved, &cur) == 0;
  if (swapped) swapignored(&ignored, oldact, 0);
  err = execsearch(&x);
  if (swapped) {
    swapignored(&ignored, oldact, 1);
    sigprocmask(SIG_SETMASK, &cur, NULL);
  }
  undoexec(&plan, &st);
  return uipc_failon(L, "exec", x.file, err);
}

/* ---- _spawn: a new process that execs at once ---------------------------- */

typedef struct {
  uipc_Plan plan;
  Program x;
  sigset_t mask;    /* the program's signal mask */
  sigset_t ignored; /* signals the program starts with ignored */
  int errfd;        /* the error pipe's write end (close-on-exec) */
} Child;

/* what the child tells the parent about the step that failed */
typedef struct {
  int stage, err, where;
} Report;

/*
 * The child, of clone(CLONE_VM | CLONE_VFORK) or, where that is refused,
 * of fork. Under CLONE_VM it shares the parent's memory, so any signal
 * handler it ran would run on the parent's data: it starts with every
 * signal blocked (the parent blocked them around clone), sets every caught
 * signal it could receive back to its default, does the plan, restores
 * the program's mask and execs. A step that fails is written to the error
 * pipe, whose close-on-exec write end otherwise closes at exec: the parent
 * reads a report or end of file. (The pipe rather than the shared memory,
 * so a fork -- or a tool that turns vfork into fork, valgrind -- reports
 * the same.) Nothing here allocates or touches Lua.
 */
static int childmain(void *arg) {
  Child *c = (Child *)arg;
  struct sigaction dfl;
  Report r;
  int s;
  memset(&dfl, 0, sizeof dfl);
  sigemptyset(&dfl.sa_mask);
  for (s = 1; s < NSIG; s++) {
    struct sigaction sa;
    if (s == SIGKILL || s == SIGSTOP) continue;
    if (sigismember(&c->ignored, s) == 1) {
      dfl.sa_handler = SIG_IGN;
      sigaction(s, &dfl, NULL);
      continue;
    }
    /* a signal the program starts with blocked cannot arrive before exec,
       and exec itself resets its handler */
    if (sigismember(&c->mask, s) == 1) continue;
    if (sigaction(s, NULL, &sa) < 0) continue; /* the C library's own signals */
    if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
      continue;
    dfl.sa_handler = SIG_DFL;
    sigaction(s, &dfl, NULL);
  }
  /* the error pipe stays open through the plan, above every target */
  if (c->plan.nmap > 0 && c->errfd <= c->plan.map[c->plan.nmap - 1].target)
    c->errfd = fcntl(c->errfd, F_DUPFD_CLOEXEC, c->plan.map[c->plan.nmap - 1].target + 1);
  c->plan.keep = c->errfd;
  if (uipc_planapply(&c->plan) == 0) {
    sigprocmask(SIG_SETMASK, &c->mask, NULL);
    c->plan.err = execsearch(&c->x);
    c->plan.stage = UIPC_STAGE_EXEC;
  }
  r.stage = c->plan.stage;
  r.err = c->plan.err;
  r.where = c->plan.where;
  if (write(c->errfd, &r, sizeof r) < 0) { /* the parent sees end of file and a dead child */
  }
  _exit(127);
  return 0;
}

static int noclonepidfd; /* CLONE_PIDFD refused once (before Linux 5.2) */

/* AddressSanitizer cannot follow a child running on a stack of our own in
   the parent's memory (it takes the stack for a corrupt frame): a
   sanitized build forks, as valgrind makes of vfork anyway */
#if defined(__SANITIZE_ADDRESS__)
#define UIPC_NOVFORK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UIPC_NOVFORK 1
#endif
#endif
#ifndef UIPC_NOVFORK
#define UIPC_NOVFORK 0
#endif
static int novfork = UIPC_NOVFORK; /* clone(CLONE_VM | CLONE_VFORK) refused once: fork */

#define CHILDSTACK 32768

static const uipc_Opt spawnopts[] = {UIPC_OPT("fds"), UIPC_OPT("cwd"), UIPC_OPT("setsid"),
                                     UIPC_OPT("pdeathsig"), {NULL, 0}};

/* clone(CLONE_VM | CLONE_VFORK [| CLONE_PIDFD]) the child, or fork it */
static pid_t startchild(Child *c, char *stacktop, int *pidfd) {
  pid_t pid;
  if (!novfork) {
    int flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
    if (uipc_havepidfd() && !noclonepidfd) flags |= CLONE_PIDFD;
    pid = clone(childmain, stacktop, flags, c, pidfd);
    if (pid < 0 && errno == EINVAL && (flags & CLONE_PIDFD)) {
      noclonepidfd = 1;
      *pidfd = -1;
      pid = clone(childmain, stacktop, flags & ~CLONE_PIDFD, c, pidfd);
    }
    if (pid >= 0 || (errno != EINVAL && errno != ENOSYS && errno != EPERM)) {
      if (!(flags & CLONE_PIDFD) || noclonepidfd) *pidfd = -1;
      return pid;
    }
    novfork = 1;
  }
  *pidfd = -1;
  pid = fork();
  if (pid == 0) childmain(c);
  return pid;
}

/*
 * _spawn(path, argv [, env [, {fds =, cwd =, setsid =, pdeathsig =}]])
 * -> pid, handle | pid, false (no pidfd here) | nil, msg, errno.
 * exec's arguments, in a new process: the caller gets the failure of any
 * step (chdir, dup2, exec) as its own. The handle (a pidfd from
 * CLONE_PIDFD, else pidfd_open) is the caller's to close.
 */
static int ipc_spawn(lua_State *L) {
  char stack[CHILDSTACK] __attribute__((aligned(16)));
  Child c;
  Report r;
  sigset_t all, old;
  uipc_Fd *h;
  int anchor, pidfd = -1, err, pfd[2];
  ssize_t n;
  pid_t pid;
  checkprogram(L);
  lua_settop(L, 4);
  uipc_options(L, 4, 4, spawnopts, 5); /* 5 fds, 6 cwd, 7 setsid, 8 pdeathsig */
  lua_settop(L, 8);
  lua_newtable(L);
  anchor = lua_gettop(L);
  uipc_plancheck(L, 5, 4, anchor, &c.plan);
  buildprogram(L, anchor, &c.x);
  h = uipc_newpidfd(L, 0);
  sigemptyset(&c.ignored);
  if (!uipc_sigsaved(&c.mask, &c.ignored)) sigprocmask(SIG_BLOCK, NULL, &c.mask);
  if (pipe2(pfd, O_CLOEXEC) < 0) return uipc_failerrno(L, "pipe");
  c.errfd = pfd[1];
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid = startchild(&c, stack + sizeof stack, &pidfd);
  err = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  close(pfd[1]);
  if (pid < 0) {
    close(pfd[0]);
    return uipc_fail(L, "clone", err);
  }
  while ((n = read(pfd[0], &r, sizeof r)) < 0 && errno == EINTR) {
  }
  close(pfd[0]);
  if (n == (ssize_t)sizeof r) { /* it never became the program */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (pidfd >= 0) close(pidfd);
    c.plan.stage = r.stage;
    c.plan.err = r.err;
    c.plan.where = r.where;
    return uipc_planfail(L, &c.plan, c.x.file);
  }
#ifdef SYS_pidfd_open
  if (pidfd < 0 && uipc_havepidfd()) pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  lua_pushinteger(L, pid);
  if (pidfd < 0) {
    lua_pushboolean(L, 0);
    return 2;
  }
  h->fd = pidfd; /* CLONE_PIDFD's and pidfd_open's descriptors are close-on-exec */
  lua_pushinteger(L, pid);
  lua_setiuservalue(L, -3, 1);
  lua_pushvalue(L, -2);
  return 2;
}

/* core._spawnmode(m): "vfork" (clone, the default) or "fork", for the
   fallback's specs; returns the mode in force before */
static int ipc_spawnmode(lua_State *L) {
  const char *was = novfork ? "fork" : "vfork";
  if (!lua_isnoneornil(L, 1)) novfork = strcmp(luaL_checkstring(L, 1), "fork") == 0;
  lua_pushstring(L, was);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"exec", ipc_exec},
  {"_spawn", ipc_spawn},
  {"_spawnmode", ipc_spawnmode},
  {NULL, NULL}
};

void uipc_open_exec(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
