/*
 * The process environment, and systemd's socket-activation protocol on it:
 * setenv, unsetenv, and listenfds (sd_listen_fds_with_names). ipc.notify
 * (sd_notify) is a datagram on an ordinary socket: lua/unixipc/systemd.lua.
 */
#include "private.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* an environment name: not empty, no '=' and no zero byte (misuse raises) */
static const char *checkenvname(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (n == 0 || strlen(s) != n || strchr(s, '='))
    uipc_argerror(L, idx, "invalid environment name '%s'", s);
  return s;
}

/* setenv(name, value [, overwrite]) -> true: value a string or a number;
   overwrite (default true) false keeps a value already set */
static int ipc_setenv(lua_State *L) {
  const char *name = checkenvname(L, 1);
  size_t n;
  const char *value;
  int overwrite;
  if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
    return uipc_argerror(L, 2, "value must be a string or a number, got %s", luaL_typename(L, 2));
  value = lua_tolstring(L, 2, &n);
  if (strlen(value) != n) return uipc_argerror(L, 2, "value contains a zero byte");
  overwrite = lua_isnoneornil(L, 3) ? 1 : (luaL_checktype(L, 3, LUA_TBOOLEAN), lua_toboolean(L, 3));
  return uipc_boolresult(L, setenv(name, value, overwrite), "setenv");
}

/* unsetenv(name) -> true */
static int ipc_unsetenv(lua_State *L) {
  const char *name = checkenvname(L, 1);
  return uipc_boolresult(L, unsetenv(name), "unsetenv");
}

/* a decimal number from 0 to max, the whole string: -1 otherwise */
static long decimal(const char *s, long max) {
  long v = 0;
  if (!s || !*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > max) return -1;
  }
  return v;
}

static void unsetlisten(void) {
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
}

#define FIRSTFD 3 /* SD_LISTEN_FDS_START */

/*
 * listenfds() -> {obj, ...}, {name, ...}: the descriptors systemd (or a
 * master handing over its listeners, or systemd-socket-activate) passed
 * from 3 on, as objects of their class -- sockets as socket objects of
 * whatever type -- with their names from LISTEN_FDNAMES ("unknown" when
 * it is unset, as sd_listen_fds_with_names says). Two empty tables when
 * LISTEN_PID or LISTEN_FDS is unset or LISTEN_PID is another process. The
 * three variables are unset in every case, so children do not inherit
 * them; the descriptors become close-on-exec. Malformed variables, or a
 * number of names that does not match, fail with EINVAL; a descriptor that
 * is not open, with EBADF, before any is wrapped.
 */
static int ipc_listenfds(lua_State *L) {
  const char *spid = getenv("LISTEN_PID"), *sfds = getenv("LISTEN_FDS");
  const char *snames = getenv("LISTEN_FDNAMES");
  long pid, n, i;
  int objs, names;
  lua_settop(L, 0);
  /* copies first: unsetenv may free what getenv returned */
  if (spid) lua_pushstring(L, spid); else lua_pushnil(L);     /* 1 */
  if (sfds) lua_pushstring(L, sfds); else lua_pushnil(L);     /* 2 */
  if (snames) lua_pushstring(L, snames); else lua_pushnil(L); /* 3 */
  spid = lua_tostring(L, 1);
  sfds = lua_tostring(L, 2);
  snames = lua_tostring(L, 3);
  unsetlisten();
  lua_newtable(L); /* 4 */
  lua_newtable(L); /* 5 */
  objs = 4;
  names = 5;
  if (!spid || !sfds) return 2;
  if ((pid = decimal(spid, INT_MAX)) <= 0)
    return uipc_failmsg(L, "listenfds", lua_pushfstring(L, "LISTEN_PID is not a process id: '%s'", spid), EINVAL);
  if ((pid_t)pid != getpid()) return 2;
  if ((n = decimal(sfds, INT_MAX - FIRSTFD)) < 0)
    return uipc_failmsg(L, "listenfds", lua_pushfstring(L, "LISTEN_FDS is not a count: '%s'", sfds), EINVAL);
  if (snames) {
    long k = 1;
    const char *p;
    for (p = snames; *p; p++) k += *p == ':';
    if (n == 0 && !*snames) k = 0;
    if (k != n)
      return uipc_failmsg(L, "listenfds",
                          lua_pushfstring(L, "LISTEN_FDNAMES has %d names for %d descriptors", (int)k, (int)n),
                          EINVAL);
  }
  for (i = 0; i < n; i++) {
    int fd = (int)(FIRSTFD + i), fl = fcntl(fd, F_GETFD);
    if (fl < 0) {
      int err = errno;
      return uipc_failon(L, "listenfds", lua_pushfstring(L, "descriptor %d", fd), err);
    }
  }
  for (i = 0; i < n; i++) {
    int fd = (int)(FIRSTFD + i), fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    uipc_wrapfd(L, fd);
    lua_rawseti(L, objs, i + 1);
  }
  if (snames) {
    const char *p = snames;
    for (i = 1; i <= n; i++) {
      const char *end = strchr(p, ':');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      lua_pushlstring(L, p, len);
      lua_rawseti(L, names, i);
      p += len + (end ? 1 : 0);
    }
  } else {
    for (i = 1; i <= n; i++) {
      lua_pushliteral(L, "unknown");
      lua_rawseti(L, names, i);
    }
  }
  return 2;
}

static const luaL_Reg funcs[] = {
  {"setenv", ipc_setenv},
  {"unsetenv", ipc_unsetenv},
  {"listenfds", ipc_listenfds},
  {NULL, NULL}
};

void uipc_open_systemd(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
