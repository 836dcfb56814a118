/*
 * Processes: fork, waitpid, kill, getpid, getppid, _exit, setsid, getsid,
 * dup2, chdir, umask, and _forkrun(x), the child side of spawn. exec and
 * popen's core live in exec.c. spawn, popen and daemonize are Lua policy
 * on top of these (lua/unixipc/process.lua).
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
  int sig = uipc_killsig(L, 2);
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
static int ipc_forkrun(lua_State *L);

/* the child's side of _forkrun: fn at 1, its nargs arguments after it */
static int runchild(lua_State *L, int nargs) {
  int code;
  lua_pushcfunction(L, childmsgh);
  lua_insert(L, 1);
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

static int ipc_forkrun(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  pid_t pid;
  luaL_checkany(L, 1);
  fflush(NULL);
  pid = fork();
  if (pid < 0) return uipc_failerrno(L, "fork");
  if (pid > 0) {
    lua_pushinteger(L, pid);
    return 1;
  }
  return runchild(L, nargs);
}

/* what a child tells its parent about a step of its plan that failed */
typedef struct {
  int stage, err, where;
} Report;

static const uipc_Opt spawnopts[] = {UIPC_OPT("fds"), UIPC_OPT("cwd"), UIPC_OPT("setsid"),
                                     UIPC_OPT("pdeathsig"), {NULL, 0}};

/*
 * _forkrunx(opts, fn, ...) -> pid: _forkrun with a plan ({fds =, cwd =,
 * setsid =, pdeathsig =}, exec's, see exec.c) carried out in the child
 * right after fork, in C, before any Lua runs there. fds puts descriptors
 * at the given numbers without closing the others (the child's Lua objects
 * still name them). The parent waits for the plan's outcome on a pipe: a
 * failed step is its own nil, msg, errno (the child is reaped), as with
 * popen.
 */
static int ipc_forkrunx(lua_State *L) {
  int top = lua_gettop(L), nargs = top - 2, pfd[2];
  uipc_Plan plan;
  Report r;
  ssize_t n;
  pid_t pid;
  luaL_checkany(L, 2);
  uipc_options(L, 1, 1, spawnopts, top + 1);
  lua_settop(L, top + 4);
  lua_newtable(L);
  uipc_plancheck(L, top + 1, 1, top + 5, &plan);
  plan.exact = 0;
  if (pipe2(pfd, O_CLOEXEC) < 0) return uipc_failerrno(L, "pipe");
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    int err = errno;
    close(pfd[0]);
    close(pfd[1]);
    return uipc_fail(L, "fork", err);
  }
  if (pid == 0) {
    int i, above = pfd[1];
    close(pfd[0]);
    /* the report pipe goes above every target first, or a target could
       land on it and the close after the plan would close that */
    for (i = 0; i < plan.nmap; i++)
      if (plan.map[i].target >= above) above = plan.map[i].target + 1;
    if (above != pfd[1]) {
      int moved = fcntl(pfd[1], F_DUPFD_CLOEXEC, above);
      if (moved >= 0) {
        close(pfd[1]);
        pfd[1] = moved;
      }
    }
    if (uipc_planapply(&plan) < 0) {
      r.stage = plan.stage;
      r.err = plan.err;
      r.where = plan.where;
      if (write(pfd[1], &r, sizeof r) < 0) { /* the parent sees end of file and a dead child */
      }
      _exit(127);
    }
    close(pfd[1]);
    lua_settop(L, top);
    lua_remove(L, 1);
    return runchild(L, nargs);
  }
  close(pfd[1]);
  while ((n = read(pfd[0], &r, sizeof r)) < 0 && errno == EINTR) {
  }
  close(pfd[0]);
  if (n == (ssize_t)sizeof r) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    plan.stage = r.stage;
    plan.err = r.err;
    plan.where = r.where;
    return uipc_planfail(L, &plan, NULL);
  }
  lua_pushinteger(L, pid);
  return 1;
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

static const luaL_Reg funcs[] = {
  {"fork", ipc_fork},
  {"waitpid", ipc_waitpid},
  {"kill", ipc_kill},
  {"getpid", ipc_getpid},
  {"getppid", ipc_getppid},
  {"_exit", ipc__exit},
  {"_forkrun", ipc_forkrun},
  {"_forkrunx", ipc_forkrunx},
  {"setsid", ipc_setsid},
  {"getsid", ipc_getsid},
  {"dup2", ipc_dup2},
  {"chdir", ipc_chdir},
  {"umask", ipc_umask},
  {NULL, NULL}
};

void uipc_open_process(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
