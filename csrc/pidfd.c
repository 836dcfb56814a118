/*
 * Process handles: ipc.pidfd(pid) over pidfd_open(2). A pidfd names one
 * process for as long as the handle is open, whatever happens to its pid
 * number: signals go to that process or fail with ESRCH, never to a
 * stranger that inherited the number. It is readable (pollable) once the
 * process has ended, so waiting for a process is waiting on a descriptor:
 * with a timeout, inside a task, in a poll set.
 *
 * An object is a uipc_Fd of kind pidfd. Its user values hold the pid (1)
 * and, once h:wait has reaped the process, its status (2), so waiting
 * again answers the same. Kernels without pidfds (before 5.3, waitid's
 * P_PIDFD before 5.4): every call returns nil, "...: Function not
 * implemented", ENOSYS; spawn and popen then fall back on waitpid.
 */
#include "private.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int nopidfd; /* core._nopidfd(true): act as a kernel without pidfds (specs) */

int uipc_havepidfd(void) {
#ifdef SYS_pidfd_open
  return !nopidfd;
#else
  return 0;
#endif
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  if (!nopidfd) return (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  (void)pid;
  errno = ENOSYS;
  return -1;
}

static int pidfd_send_signal_(int fd, int sig) {
#ifdef SYS_pidfd_send_signal
  if (!nopidfd) return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
#endif
  (void)fd, (void)sig;
  errno = ENOSYS;
  return -1;
}

static int pidfd_getfd_(int fd, int target) {
#ifdef SYS_pidfd_getfd
  if (!nopidfd) return (int)syscall(SYS_pidfd_getfd, fd, target, 0);
#endif
  (void)fd, (void)target;
  errno = ENOSYS;
  return -1;
}

enum { UV_PID = 1, UV_STATUS = 2 };

uipc_Fd *uipc_newpidfd(lua_State *L, pid_t pid) {
  uipc_Fd *o = uipc_newkindfd(L, UIPC_KIND_PIDFD);
  if (pid > 0) {
    lua_pushinteger(L, pid);
    lua_setiuservalue(L, -2, UV_PID);
  }
  return o;
}

/* the pid a handle names: recorded when it was made, else (a received or
   duplicated handle) the kernel's "Pid:" line, -1 once reaped */
static lua_Integer handlepid(lua_State *L, int idx, uipc_Fd *o) {
  char path[64], line[128];
  lua_Integer pid = 0;
  FILE *f;
  if (lua_getiuservalue(L, idx, UV_PID) == LUA_TNUMBER) pid = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (pid > 0) return pid;
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", o->fd);
  if ((f = fopen(path, "re")) == NULL) return 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "Pid:", 4) == 0) {
      pid = strtol(line + 4, NULL, 10);
      break;
    }
  fclose(f);
  return pid;
}

/* pidfd(pid) -> handle: pidfd_open(2), close-on-exec */
static int ipc_pidfd(lua_State *L) {
  pid_t pid = (pid_t)uipc_checkint(L, 1, 1, INT_MAX, "pid");
  uipc_Fd *o = uipc_newpidfd(L, pid);
  int fd = pidfd_open_(pid);
  if (fd < 0) return uipc_failerrno(L, "pidfd_open");
  o->fd = fd; /* pidfd_open's descriptors are close-on-exec */
  return 1;
}

/* the os.execute shape: true|nil, "exit"|"signal", code */
static int pushresult(lua_State *L, int how, int code) {
  if (how == CLD_EXITED && code == 0)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  if (how == CLD_EXITED)
    lua_pushliteral(L, "exit");
  else
    lua_pushliteral(L, "signal");
  lua_pushinteger(L, code);
  return 3;
}

/*
 * h:wait([timeout]) -> ok, how, code. waitid(P_PIDFD, WEXITED | WNOHANG)
 * reaps the process if it has ended; otherwise the call waits for the
 * handle to become readable (poll, or the scheduler inside a task) and
 * tries again. Only a child of this process can be waited for (ECHILD
 * otherwise: poll the handle to learn that a stranger ended).
 */
static int wait_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_PIDFD);
  if (!w->resumed) {
    double t = uipc_optseconds(L, 2, "timeout");
    if (t >= 0) w->deadline = uipc_now() + t;
  }
  if (lua_getiuservalue(L, 1, UV_STATUS) == LUA_TNUMBER) { /* reaped before */
    lua_Integer st = lua_tointeger(L, -1);
    return pushresult(L, (int)(st >> 16), (int)(st & 0xffff));
  }
  lua_pop(L, 1);
  for (;;) {
    siginfo_t si;
    int err;
    memset(&si, 0, sizeof si);
    if (nopidfd) {
      errno = ENOSYS;
      return uipc_failerrno(L, "waitid");
    }
    if (waitid((idtype_t)P_PIDFD, (id_t)o->fd, &si, WEXITED | WNOHANG) < 0) {
      if (errno == EINTR) continue;
      return uipc_failerrno(L, "waitid");
    }
    if (si.si_pid != 0) {
      int how = si.si_code == CLD_EXITED ? CLD_EXITED : CLD_KILLED;
      lua_pushinteger(L, ((lua_Integer)how << 16) | (si.si_status & 0xffff));
      lua_setiuservalue(L, 1, UV_STATUS);
      return pushresult(L, how, si.si_status);
    }
    err = uipc_wait(L, w, o->fd, POLLIN);
    if (err) return uipc_waitfail(L, "wait", err);
  }
}

static const uipc_Op wait_op = {"wait", wait_body, NULL};
static int pidfd_wait(lua_State *L) { return uipc_run(L, &wait_op); }

/* h:kill([sig]) -> true: pidfd_send_signal(2); sig a name or number, 0
   probes, default TERM. ESRCH once the process has been reaped. */
static int pidfd_kill(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_PIDFD);
  int sig = uipc_killsig(L, 2);
  return uipc_boolresult(L, pidfd_send_signal_(o->fd, sig), "pidfd_send_signal");
}

/*
 * h:getfd() -> this handle's own descriptor number (LuaSocket's select
 * protocol, as on every object); h:getfd(n) -> a copy of descriptor n of
 * the process (pidfd_getfd(2)), as a descriptor object, close-on-exec.
 * The kernel allows it where ptrace would be allowed (PTRACE_MODE_ATTACH):
 * the same user and no Yama restriction, else EPERM.
 */
static int pidfd_getfd(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1), *n;
  int target, fd;
  if (!o || o->kind != UIPC_KIND_PIDFD) return luaL_typeerror(L, 1, "unixipc pidfd");
  if (lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, o->fd);
    return 1;
  }
  uipc_checkkind(L, 1, UIPC_KIND_PIDFD);
  target = (int)uipc_checkint(L, 2, 0, INT_MAX, "descriptor");
  n = uipc_newfd(L, 0);
  fd = pidfd_getfd_(o->fd, target);
  if (fd < 0) return uipc_failerrno(L, "pidfd_getfd");
  n->fd = fd; /* pidfd_getfd's descriptors are close-on-exec */
  uipc_rewrap(L, -1); /* a socket becomes a socket object, an eventfd an eventfd */
  n = uipc_toobj(L, -1);
  if (!n->issock) uipc_setkind(L, -1, uipc_probekind(fd));
  return 1;
}

/* h:pid() -> the process's pid (-1 once it has been reaped, for a handle
   that did not record it) */
static int pidfd_pid(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_PIDFD);
  lua_pushinteger(L, handlepid(L, 1, o));
  return 1;
}

static int pidfd_tostring(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (!o) return luaL_typeerror(L, 1, "unixipc pidfd");
  if (o->fd < 0)
    lua_pushliteral(L, "pidfd (closed)");
  else
    lua_pushfstring(L, "pidfd (pid %I, fd %d)", handlepid(L, 1, o), o->fd);
  return 1;
}

/* core._nopidfd(on): behave as a kernel without pidfds (the fallbacks' specs) */
static int ipc_nopidfd(lua_State *L) {
  nopidfd = lua_toboolean(L, 1);
  return 0;
}

static const luaL_Reg methods[] = {
  {"wait", pidfd_wait},
  {"kill", pidfd_kill},
  {"getfd", pidfd_getfd},
  {"pid", pidfd_pid},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"pidfd", ipc_pidfd},
  {"_nopidfd", ipc_nopidfd},
  {NULL, NULL}
};

void uipc_open_pidfd(lua_State *L) {
  uipc_newkind(L, UIPC_KIND_PIDFD, methods, pidfd_tostring, 2);
  luaL_setfuncs(L, funcs, 0);
}
