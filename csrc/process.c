/*
 * Processes: fork, waitpid, kill, getpid, getppid, _exit, setsid, getsid,
 * dup2, exec, chdir, umask. spawn and daemonize are Lua policy on top of
 * these (lua/unixipc/process.lua).
 */
#include "private.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* fork() -> pid | 0. C stdio is flushed first so nothing buffered is written twice. */
static int ipc_fork(lua_State *L) {
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid < 0) return uipc_failerrno(L, "fork");
  lua_pushinteger(L, pid);
  return 1;
}

/* push pid, how, code for a wait status, in os.execute's words: "exit"
   (code: the exit status), "signal" (code: the signal), and the two
   states os.execute never sees, "stop" (the signal) and "continue" */
int uipc_pushstatus(lua_State *L, pid_t pid, int status) {
  lua_pushinteger(L, pid);
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(status));
  } else if (WIFSTOPPED(status)) {
    lua_pushliteral(L, "stop");
    lua_pushinteger(L, WSTOPSIG(status));
  } else {
    lua_pushliteral(L, "continue");
    lua_pushinteger(L, SIGCONT);
  }
  return 3;
}

/* waitpid(pid | -1 [, "nohang"]) -> pid, how, code; 0 when nohang finds nothing */
static int ipc_waitpid(lua_State *L) {
  lua_Integer pid = uipc_optint(L, 1, -1, INT_MIN, INT_MAX, "pid");
  int flags = uipc_checkflags(L, 2, &uipc_waitflags), status = 0;
  pid_t r = (pid_t)UIPC_RETRY(waitpid((pid_t)pid, &status, flags));
  if (r < 0) return uipc_failerrno(L, "waitpid");
  if (r == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  return uipc_pushstatus(L, r, status);
}

/* kill(pid [, sig]): sig a name ("TERM", "SIGTERM"), a number, or 0 to
   probe; default TERM */
static int ipc_kill(lua_State *L) {
  pid_t pid = (pid_t)uipc_checkint(L, 1, INT_MIN, INT_MAX, "pid");
  int sig;
  if (lua_isnoneornil(L, 2))
    sig = SIGTERM;
  else if (lua_isinteger(L, 2) && lua_tointeger(L, 2) == 0)
    sig = 0;
  else
    sig = uipc_checksignal(L, 2);
  if (kill(pid, sig) < 0) return uipc_failerrno(L, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

/* message handler for _forkrun's child: a traceback, as lua.c's msghandler */
static int childmsgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/*
 * _forkrun(fn, ...) -> pid, the child side of spawn. The child calls
 * fn(...) under lua_pcall from C and then always _exits: 0 when fn returns,
 * 1 with the traceback on stderr when it raises, C stdio flushed. No error
 * can escape into the caller's code in the child, not even one raised by a
 * hook right after fork (lua.c turns SIGINT into such an error), which a
 * fork + pcall written in Lua cannot promise. One exception, for
 * daemonize: when fn returns _forkrun itself, the child returns 0 to its
 * caller, like fork.
 */
static int ipc_forkrun(lua_State *L) {
  int nargs = lua_gettop(L) - 1, code;
  pid_t pid;
  luaL_checkany(L, 1);
  lua_pushcfunction(L, childmsgh);
  lua_insert(L, 1);
  fflush(NULL);
  pid = fork();
  if (pid < 0) return uipc_failerrno(L, "fork");
  if (pid > 0) {
    lua_pushinteger(L, pid);
    return 1;
  }
  if (lua_pcall(L, nargs, 1, 1) == LUA_OK) {
    if (lua_tocfunction(L, -1) == ipc_forkrun) {
      lua_pushinteger(L, 0);
      return 1;
    }
    code = 0;
  } else {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    code = 1;
  }
  fflush(NULL);
  _exit(code);
  return 0;
}

static int ipc_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int ipc_getppid(lua_State *L) {
  lua_pushinteger(L, getppid());
  return 1;
}

/* _exit([code]): true -> 0, false -> 1, like os.exit; no atexit, no stdio flush */
static int ipc__exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? 0 : 1;
  else
    code = (int)uipc_optint(L, 1, 0, INT_MIN, INT_MAX, "exit code");
  _exit(code);
  return 0;
}


/* setsid() -> sid: a new session and process group led by the caller */
static int ipc_setsid(lua_State *L) {
  pid_t sid = setsid();
  if (sid < 0) return uipc_failerrno(L, "setsid");
  lua_pushinteger(L, sid);
  return 1;
}

/* getsid([pid]) -> sid of pid (default the caller) */
static int ipc_getsid(lua_State *L) {
  pid_t pid = (pid_t)uipc_optint(L, 1, 0, 0, INT_MAX, "pid");
  pid_t sid = getsid(pid);
  if (sid < 0) return uipc_failerrno(L, "getsid");
  lua_pushinteger(L, sid);
  return 1;
}

/*
 * dup2(from, to) -> to. The new descriptor is NOT close-on-exec: that is
 * the point of dup2 before exec (stdin/stdout/stderr of the next program).
 * dup2(fd, fd) leaves the kernel table alone, so there we clear FD_CLOEXEC
 * ourselves and the descriptor survives exec as the caller meant. Output
 * buffered in C stdio for stdout/stderr is flushed first, so it goes where
 * it was written rather than to the new target.
 */
static int ipc_dup2(lua_State *L) {
  int from = uipc_checkfd(L, 1), to = uipc_checkfd(L, 2);
  uipc_Fd *o = uipc_toobj(L, 2);
  if (to == 1) fflush(stdout);
  if (to == 2) fflush(stderr);
  if (from == to) {
    int fl = fcntl(to, F_GETFD);
    if (fl < 0 || ((fl & FD_CLOEXEC) && fcntl(to, F_SETFD, fl & ~FD_CLOEXEC) < 0))
      return uipc_failerrno(L, "dup2");
  } else if (UIPC_RETRY(dup2(from, to)) < 0)
    return uipc_failerrno(L, "dup2");
  /* a unixipc object given as `to` now stands for from's file */
  if (o && from != to) uipc_rewrap(L, 2);
  lua_pushinteger(L, to);
  return 1;
}

/* chdir(path) -> true */
static int ipc_chdir(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  return uipc_pathresult(L, chdir(path), "chdir", path);
}

/* umask([mask]) -> previous mask; without an argument only reads it */
static int ipc_umask(lua_State *L) {
  mode_t old;
  if (lua_isnoneornil(L, 1)) {
    old = umask(022);
    umask(old);
  } else {
    old = umask((mode_t)uipc_checkint(L, 1, 0, 0777, "mask"));
  }
  lua_pushinteger(L, old);
  return 1;
}

/* ---- exec ------------------------------------------------------------ */

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

/* the execvp search over the caller's PATH; returns the errno to report */
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

/* scratch for execsearch, allocated before the signal mask is swapped so
   no memory error can escape with the mask changed */
typedef struct {
  char **shargv; /* argv for /bin/sh when a file has no #! */
  char *buf;     /* PATH entry + "/" + file */
  const char *path;
} ExecScratch;

static void execprep(lua_State *L, const char *file, size_t n, int anchor, ExecScratch *x) {
  x->shargv = (char **)lua_newuserdatauv(L, (n + 3) * sizeof(char *), 0);
  lua_rawsetp(L, anchor, x->shargv);
  x->path = getenv("PATH");
  if (!x->path) x->path = "/bin:/usr/bin";
  x->buf = (char *)lua_newuserdatauv(L, strlen(x->path) + strlen(file) + 3, 0);
  lua_rawsetp(L, anchor, x->buf);
}

static int execsearch(const char *file, char **argv, char **envp, size_t n, const ExecScratch *x) {
  char **shargv = x->shargv;
  const char *p;
  char *buf = x->buf;
  size_t flen = strlen(file);
  int err = ENOENT, eacces = 0;
  if (*file == '\0') return ENOENT;
  if (strchr(file, '/')) return tryexec(file, argv, envp, shargv, n);
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
    err = tryexec(buf, argv, envp, shargv, n);
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

/*
 * exec(path, argv [, env]) -> only returns on failure: nil, msg, errno.
 * argv is the argument list after the program name, as Lua's own `arg`:
 * argv[1], argv[2], ...; argv[0], when present, is the name the program
 * sees as its argv[0] (default: path). env, when given, replaces the
 * environment. path without "/" is searched in the caller's PATH (execvp).
 * C stdio is flushed first, since exec would drop buffered output. The new
 * program gets the signal mask the process had before any unixipc signal
 * bridge blocked signals; if exec fails, the current mask is put back.
 */
static int ipc_exec(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char **argv, **envp = environ;
  size_t n;
  sigset_t saved, cur, ignored;
  struct sigaction oldact[NSIG];
  ExecScratch scratch;
  int anchor, err, swapped;
  if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
    return uipc_argerror(L, 2, "argv must be a table of strings, got %s", luaL_typename(L, 2));
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    return uipc_argerror(L, 3, "env must be a table, got %s", luaL_typename(L, 3));
  if (strlen(path) != lua_rawlen(L, 1))
    return uipc_argerror(L, 1, "path contains a zero byte");
  lua_settop(L, 3);
  lua_newtable(L);
  anchor = lua_gettop(L);
  argv = buildargv(L, path, anchor, &n);
  if (lua_istable(L, 3)) envp = buildenv(L, anchor);
  execprep(L, path, n, anchor, &scratch);
  fflush(NULL);
  /* the exec'd program gets the mask and the ignored signals the process
     had before any signal bridge; both come back if exec fails */
  swapped = uipc_sigsaved(&saved, &ignored) && sigprocmask(SIG_SETMASK, &saved, &cur) == 0;
  if (swapped) swapignored(&ignored, oldact, 0);
  err = execsearch(path, argv, envp, n, &scratch);
  if (swapped) {
    swapignored(&ignored, oldact, 1);
    sigprocmask(SIG_SETMASK, &cur, NULL);
  }
  return uipc_failon(L, "exec", path, err);
}

static const luaL_Reg funcs[] = {
  {"fork", ipc_fork},
  {"waitpid", ipc_waitpid},
  {"kill", ipc_kill},
  {"getpid", ipc_getpid},
  {"getppid", ipc_getppid},
  {"_exit", ipc__exit},
  {"_forkrun", ipc_forkrun},
  {"setsid", ipc_setsid},
  {"getsid", ipc_getsid},
  {"dup2", ipc_dup2},
  {"exec", ipc_exec},
  {"chdir", ipc_chdir},
  {"umask", ipc_umask},
  {NULL, NULL}
};

void uipc_open_process(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
