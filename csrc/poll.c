/*
 * poll({[obj] = "r" | "w" | "rw" | "p", ...} [, timeout]) over poll(2): no
 * FD_SETSIZE limit. Returns {[obj] = events} for the ready ones, {} on
 * timeout. Result letters: r (in), p (urgent/priority), w (out), e (error),
 * h (hang-up), n (not open).
 */
#include "private.h"

#include <math.h>
#include <poll.h>
#include <string.h>

#define STACKFDS 64

/* a foreign object (LuaSocket, cqueues, ...) that answers getfd() or fileno() */
static int foreign(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) return 1;
  if (t != LUA_TUSERDATA || uipc_toobj(L, idx) || luaL_testudata(L, idx, LUA_FILEHANDLE)) return 0;
  if (luaL_getmetafield(L, idx, "__index") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

/* descriptor of a poll key: ours, an io file, an integer, or a foreign object */
static int keyfd(lua_State *L, int idx) {
  lua_Integer fd;
  idx = lua_absindex(L, idx); /* the calls below push */
  if (!foreign(L, idx)) return uipc_checkfd(L, idx);
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

static int ipc_poll(lua_State *L) {
  struct pollfd stackfds[STACKFDS], *fds = stackfds;
  double timeout = uipc_optseconds(L, 2, "timeout"), deadline;
  size_t n = 0, i;
  int r;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    n++;
    lua_pop(L, 1);
  }
  if (n > STACKFDS) fds = (struct pollfd *)lua_newuserdatauv(L, n * sizeof *fds, 0);
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    fds[i].fd = keyfd(L, -2);
    fds[i].events = checkevents(L, -1);
    fds[i].revents = 0;
    i++;
    lua_pop(L, 1);
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
  if (r == 0) return 1;
  /* the table is unchanged, so lua_next visits keys in the same order */
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    short re = fds[i++].revents;
    lua_pop(L, 1);
    if (re) {
      char buf[8];
      int k = 0;
      if (re & POLLIN) buf[k++] = 'r';
      if (re & POLLPRI) buf[k++] = 'p';
      if (re & POLLOUT) buf[k++] = 'w';
      if (re & POLLERR) buf[k++] = 'e';
      if (re & POLLHUP) buf[k++] = 'h';
      if (re & POLLNVAL) buf[k++] = 'n';
      lua_pushvalue(L, -1);
      lua_pushlstring(L, buf, (size_t)k);
      lua_rawset(L, -4);
    }
  }
  return 1;
}

static const luaL_Reg funcs[] = {
  {"poll", ipc_poll},
  {NULL, NULL}
};

void uipc_open_poll(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
