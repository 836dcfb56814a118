/*
 * poll({[obj] = "r" | "w" | "rw" | "p", ...} [, timeout]) over poll(2): no
 * FD_SETSIZE limit. Returns {[obj] = events} for the ready ones, {} on
 * timeout. Result letters: r (in), p (urgent/priority), w (out), e (error),
 * h (hang-up), n (not open).
 */
#include "private.h"

#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define STACKFDS 64

/* a foreign object (LuaSocket, cqueues, ...) that answers getfd() or fileno() */
static int foreign(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) return 1;
  if (t != LUA_TUSERDATA) return 0;
  if (luaL_getmetafield(L, idx, "__index") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

/* descriptor of a poll key (errors name argument #1, the set): ours
   (checked first: the common case), an integer, an io file, or a foreign
   object; the messages are uipc_checkfd's */
static int keyfd(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  luaL_Stream *p;
  lua_Integer fd;
  if (o) {
    if (o->fd < 0) uipc_argerror(L, 1, "attempt to use a closed %s", o->issock ? "socket" : "descriptor");
    return o->fd;
  }
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (!lua_isinteger(L, idx)) uipc_argerror(L, 1, "descriptor must be an integer");
    fd = lua_tointeger(L, idx);
    if (fd < 0 || fd > INT_MAX) uipc_argerror(L, 1, "descriptor must not be negative");
    return (int)fd;
  }
  if ((p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE)) != NULL) {
    if (p->closef == NULL) uipc_argerror(L, 1, "attempt to use a closed file");
    return fileno(p->f);
  }
  idx = lua_absindex(L, idx);
  if (!foreign(L, idx))
    uipc_argerror(L, 1, "descriptor expected: unixipc object, io file, integer or object with "
                  "getfd/fileno, got %s", luaL_typename(L, idx));
  if (lua_getfield(L, idx, "getfd") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, idx, "fileno");
  }
  if (!lua_isfunction(L, -1))
    uipc_argerror(L, 1, "poll key has no getfd or fileno method");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  fd = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (fd < 0) uipc_argerror(L, 1, "poll key is closed");
  return (int)fd;
}

static short checkevents(lua_State *L, int idx) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
  short ev = 0;
  if (!*s)
    uipc_argerror(L, 1, "poll events must be \"r\", \"w\" or \"rw\", got %s", luaL_typename(L, idx));
  for (; *s; s++) {
    switch (*s) {
      case 'r': ev |= POLLIN; break;
      case 'w': ev |= POLLOUT; break;
      case 'p': ev |= POLLPRI; break;
      default: uipc_argerror(L, 1, "unknown poll event '%c'", *s);
    }
  }
  return ev;
}

/*
 * One walk over the set copies each key and value onto the Lua stack; the
 * pollfd array is built from there, and the ready keys are found by index
 * afterwards. A set too large for the Lua stack (about 500,000 keys, more
 * than poll(2) takes under any usual RLIMIT_NOFILE) fails with EINVAL.
 */
static int ipc_poll(lua_State *L) {
  struct pollfd stackfds[STACKFDS], *fds = stackfds;
  double timeout = uipc_optseconds(L, 2, "timeout"), deadline;
  const char *lastev = NULL;
  short lastbits = 0;
  int n = 0, i, r, res;
  const int base = 3; /* key i at base + 2i, its events at base + 2i + 1 */
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if ((++n & 63) == 1 && !lua_checkstack(L, 2 * 64 + 8)) return uipc_fail(L, "poll", EINVAL);
    lua_pushvalue(L, -2); /* keep key and value; the copy drives lua_next */
  }
  if (!lua_checkstack(L, 16)) return uipc_fail(L, "poll", EINVAL); /* keyfd, the result */
  if (n > STACKFDS) fds = (struct pollfd *)lua_newuserdatauv(L, (size_t)n * sizeof *fds, 0);
  for (i = 0; i < n; i++) {
    int k = base + 2 * i;
    /* the events strings are interned: one parse serves a run of equal ones */
    const char *ev = lua_type(L, k + 1) == LUA_TSTRING ? lua_tostring(L, k + 1) : NULL;
    fds[i].fd = keyfd(L, k);
    if (ev == NULL || ev != lastev) {
      lastbits = checkevents(L, k + 1);
      lastev = ev;
    }
    fds[i].events = lastbits;
    fds[i].revents = 0;
  }
  deadline = timeout >= 0 ? uipc_now() + timeout : -1;
  for (;;) {
    int ms = -1;
    if (deadline >= 0) {
      double left = deadline - uipc_now();
      ms = left <= 0 ? 0 : (int)ceil(left * 1000);
    }
    r = poll(fds, (nfds_t)n, ms);
    if (r >= 0) break;
    if (errno != EINTR) {
      int err = errno;
      return uipc_fail(L, "poll", err);
    }
  }
  lua_createtable(L, 0, r);
  res = lua_gettop(L);
  for (i = 0; i < n && r > 0; i++) {
    short re = fds[i].revents;
    if (re) {
      char buf[8];
      int k = 0;
      if (re & POLLIN) buf[k++] = 'r';
      if (re & POLLPRI) buf[k++] = 'p';
      if (re & POLLOUT) buf[k++] = 'w';
      if (re & POLLERR) buf[k++] = 'e';
      if (re & POLLHUP) buf[k++] = 'h';
      if (re & POLLNVAL) buf[k++] = 'n';
      lua_pushvalue(L, base + 2 * i);
      lua_pushlstring(L, buf, (size_t)k);
      lua_rawset(L, res);
      r--;
    }
  }
  return 1;
}

static const luaL_Reg funcs[] = {
  {"poll", ipc_poll},
  {NULL, NULL}
};

void uipc_open_poll(lua_State *L) {
  uipc_setfuncs(L, funcs);
}
