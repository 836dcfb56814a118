/*
 * Processes: fork, waitpid, kill, getpid, getppid, _exit.
 * (exec, dup2, setsid and the spawn layer come with the process issue.)
 */
#include "private.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* fork() -> pid | 0. C stdio is flushed first so nothing buffered is written twice. */
static int ipc_fork(lua_State *L) {
  pid_t pid;
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    int err = errno;
    return uipc_fail(L, "fork", err);
  }
  lua_pushinteger(L, pid);
  return 1;
}

static const uipc_Const waitflags[] = {
  {"nohang", WNOHANG}, {"untraced", WUNTRACED}, {"continued", WCONTINUED}, {NULL, 0}
};

/* push pid, how, code for a wait status; returns 3 */
int uipc_pushstatus(lua_State *L, pid_t pid, int status) {
  lua_pushinteger(L, pid);
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    lua_pushliteral(L, "signaled");
    lua_pushinteger(L, WTERMSIG(status));
  } else if (WIFSTOPPED(status)) {
    lua_pushliteral(L, "stopped");
    lua_pushinteger(L, WSTOPSIG(status));
  } else {
    lua_pushliteral(L, "continued");
    lua_pushinteger(L, SIGCONT);
  }
  return 3;
}

/* waitpid(pid | -1 [, "nohang"]) -> pid, how, code; 0 when nohang finds nothing */
static int ipc_waitpid(lua_State *L) {
  lua_Integer pid = luaL_optinteger(L, 1, -1);
  int flags = uipc_checkflags(L, 2, waitflags, "wait option"), status = 0;
  pid_t r = (pid_t)UIPC_RETRY(waitpid((pid_t)pid, &status, flags));
  if (r < 0) {
    int err = errno;
    return uipc_fail(L, "waitpid", err);
  }
  if (r == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  return uipc_pushstatus(L, r, status);
}

/* kill(pid, sig): sig a name ("TERM", "SIGTERM"), a number, or 0 to probe */
static int ipc_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = (lua_type(L, 2) == LUA_TNUMBER && lua_tointeger(L, 2) == 0) ? 0
            : lua_isnoneornil(L, 2)                                        ? SIGTERM
                                                                           : uipc_checksignal(L, 2);
  if (kill(pid, sig) < 0) {
    int err = errno;
    return uipc_fail(L, "kill", err);
  }
  lua_pushboolean(L, 1);
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
    code = (int)luaL_optinteger(L, 1, 0);
  _exit(code);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"fork", ipc_fork},
  {"waitpid", ipc_waitpid},
  {"kill", ipc_kill},
  {"getpid", ipc_getpid},
  {"getppid", ipc_getppid},
  {"_exit", ipc__exit},
  {NULL, NULL}
};

void uipc_open_process(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
