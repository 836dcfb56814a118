/*
 * Sockets: creation, bind/listen/accept/connect, send/recv, options.
 * Every descriptor is close-on-exec; every send carries MSG_NOSIGNAL.
 */
#include "private.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* opts.nonblock -> SOCK_NONBLOCK; opts.timeout -> seconds */
static int sockopts(lua_State *L, int idx, double *timeout) {
  int extra = 0;
  *timeout = -1;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "nonblock"), lua_toboolean(L, -1)) extra |= SOCK_NONBLOCK;
  lua_pop(L, 1);
  lua_getfield(L, idx, "timeout");
  *timeout = uipc_optseconds(L, lua_gettop(L), "opts.timeout");
  lua_pop(L, 1);
  if (*timeout >= 0) extra |= SOCK_NONBLOCK;
  return extra;
}

static void initnew(uipc_Fd *o, int fd, int family, int type, int extra, double timeout) {
  o->fd = fd;
  o->family = family;
  o->type = type;
  o->timeout = timeout;
  o->onb = (unsigned char)((extra & SOCK_NONBLOCK) != 0);
  o->usernb = (unsigned char)(o->onb && timeout < 0);
}

/* socketpair([type [, opts]]) */
static int ipc_socketpair(lua_State *L) {
  int type = lua_isnoneornil(L, 1) ? SOCK_STREAM : uipc_checktype(L, 1);
  double timeout;
  int extra = sockopts(L, 2, &timeout), sv[2], err;
  uipc_Fd *a = uipc_newfd(L, 1), *b = uipc_newfd(L, 1);
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | extra, 0, sv) < 0) {
    err = errno;
    return uipc_fail(L, "socketpair", err);
  }
  initnew(a, sv[0], AF_UNIX, type, extra, timeout);
  initnew(b, sv[1], AF_UNIX, type, extra, timeout);
  return 2;
}

/* socket(family, type [, opts]) */
static int ipc_socket(lua_State *L) {
  int family = uipc_checkfamily(L, 1);
  int type = lua_isnoneornil(L, 2) ? SOCK_STREAM : uipc_checktype(L, 2);
  double timeout;
  int extra = sockopts(L, 3, &timeout), fd, err;
  uipc_Fd *o;
  if (family == AF_UNSPEC) return luaL_argerror(L, 1, "family must be unix, inet or inet6");
  o = uipc_newfd(L, 1);
  fd = socket(family, type | SOCK_CLOEXEC | extra, 0);
  if (fd < 0) {
    err = errno;
    return uipc_fail(L, "socket", err);
  }
  initnew(o, fd, family, type, extra, timeout);
  return 1;
}

static int sock_bind(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = uipc_toaddr(L, 2, o->family, o->type, &ss, &len, 1);
  if (rc) return uipc_addrfail(L, "bind", rc);
  return uipc_boolresult(L, bind(o->fd, (struct sockaddr *)&ss, len), "bind");
}

static int sock_listen(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  lua_Integer backlog = luaL_optinteger(L, 2, SOMAXCONN);
  if (backlog < 0) return luaL_argerror(L, 2, "backlog must not be negative");
  return uipc_boolresult(L, listen(o->fd, backlog > 0x7fffffff ? 0x7fffffff : (int)backlog), "listen");
}

/* accept() -> conn, addr. The new socket is blocking whatever the listener is. */
static int sock_accept(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  uipc_Fd *c = uipc_newfd(L, 1);
  struct sockaddr_storage ss;
  socklen_t len;
  double deadline = -1;
  int fd, err;
  for (;;) {
    len = sizeof ss;
    fd = accept4(o->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd >= 0) break;
    if ((err = uipc_block(o, errno, POLLIN, &deadline)) != 0)
      return err == ETIMEDOUT ? uipc_timeout(L) : uipc_fail(L, "accept", err);
  }
  c->fd = fd;
  c->family = o->family;
  c->type = o->type;
  uipc_pushaddr(L, (struct sockaddr *)&ss, len);
  return 2;
}

/*
 * connect(addr). Blocking: waits (EINTR leaves the connection in progress,
 * so we wait for it rather than call connect again). Timed: EINPROGRESS,
 * then poll for writability and read SO_ERROR. Non-blocking: returns the
 * EINPROGRESS failure; poll for "w" then getoption("error").
 */
static int sock_connect(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = uipc_toaddr(L, 2, o->family, o->type, &ss, &len, 0), err;
  double deadline;
  if (rc) return uipc_addrfail(L, "connect", rc);
  deadline = uipc_deadline(o);
  for (;;) {
    if (connect(o->fd, (struct sockaddr *)&ss, len) == 0) break;
    err = errno;
    uipc_nbresolve(o); /* a wrapped socket: is it non-blocking? */
    if (err == EINTR || (err == EINPROGRESS && !o->usernb)) {
      socklen_t el = sizeof err;
      int soerr = 0;
      err = uipc_waitfd(o->fd, POLLOUT, deadline);
      if (err == ETIMEDOUT) return uipc_timeout(L);
      if (err) return uipc_fail(L, "connect", err);
      if (getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0) soerr = errno;
      if (soerr) return uipc_fail(L, "connect", soerr);
      break;
    }
    if (err == EAGAIN && !o->usernb && o->family == AF_UNIX) {
      /* a unix listener's backlog is full: retry until the deadline */
      struct timespec ms = {0, 1000000};
      if (deadline >= 0 && uipc_now() >= deadline) return uipc_timeout(L);
      nanosleep(&ms, NULL);
      continue;
    }
    return uipc_fail(L, "connect", err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_send(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int flags = uipc_checkflags(L, 3, uipc_msgflags, "flag"), err = 0;
  double deadline = -1;
  ssize_t r = uipc_writesome(o, s, n, flags, &deadline, &err);
  return uipc_pushwrite(L, "send", r, err);
}

static int sock_recv(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n = uipc_checksize(L, 2, 65536, "maxlen");
  return uipc_pushrecv(L, o, n, uipc_checkflags(L, 3, uipc_msgflags, "flag"), 1);
}

static int sock_recvfrom(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n = uipc_checksize(L, 2, 65536, "maxlen");
  return uipc_pushrecv(L, o, n, uipc_checkflags(L, 3, uipc_msgflags, "flag"), 2);
}

static int sock_sendto(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = uipc_toaddr(L, 3, o->family, o->type, &ss, &len, 0);
  int flags = uipc_checkflags(L, 4, uipc_msgflags, "flag"), err;
  double deadline = -1;
  if (rc) return uipc_addrfail(L, "sendto", rc);
  for (;;) {
    ssize_t r = sendto(o->fd, s, n, flags | MSG_NOSIGNAL, (struct sockaddr *)&ss, len);
    if (r >= 0) {
      lua_pushinteger(L, (lua_Integer)r);
      return 1;
    }
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR) err = uipc_block(o, err, POLLOUT, &deadline);
    if (err) return uipc_pushwrite(L, "sendto", -1, err);
  }
}

static int sock_shutdown(lua_State *L) {
  static const uipc_Const hows[] = {{"r", SHUT_RD}, {"w", SHUT_WR}, {"rw", SHUT_RDWR},
                                    {"read", SHUT_RD}, {"write", SHUT_WR}, {"both", SHUT_RDWR},
                                    {NULL, 0}};
  uipc_Fd *o = uipc_checksock(L, 1);
  int how = lua_isnoneornil(L, 2) ? SHUT_RDWR : uipc_checkname(L, 2, hows, "shutdown mode");
  return uipc_boolresult(L, shutdown(o->fd, how), "shutdown");
}

static int nameof(lua_State *L, int peer) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(o->fd, (struct sockaddr *)&ss, &len)
               : getsockname(o->fd, (struct sockaddr *)&ss, &len);
  if (r < 0) {
    int err = errno;
    return uipc_fail(L, peer ? "getpeername" : "getsockname", err);
  }
  if (len == 0) { /* unnamed unix sockets may report nothing at all */
    ss.ss_family = (sa_family_t)o->family;
    len = sizeof(sa_family_t);
  }
  uipc_pushaddr(L, (struct sockaddr *)&ss, len);
  return 1;
}

static int sock_getsockname(lua_State *L) { return nameof(L, 0); }
static int sock_getpeername(lua_State *L) { return nameof(L, 1); }

/* ---- options --------------------------------------------------------- */

enum { OPT_BOOL, OPT_INT, OPT_LINGER, OPT_ERROR, OPT_TYPE };

typedef struct {
  const char *name;
  int level, opt, kind, readonly;
} sockopt;

static const sockopt options[] = {
  {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, OPT_BOOL, 0},
#ifdef SO_REUSEPORT
  {"reuseport", SOL_SOCKET, SO_REUSEPORT, OPT_BOOL, 0},
#endif
  {"keepalive", SOL_SOCKET, SO_KEEPALIVE, OPT_BOOL, 0},
  {"nodelay", IPPROTO_TCP, TCP_NODELAY, OPT_BOOL, 0},
  {"oobinline", SOL_SOCKET, SO_OOBINLINE, OPT_BOOL, 0},
  {"rcvbuf", SOL_SOCKET, SO_RCVBUF, OPT_INT, 0},
  {"sndbuf", SOL_SOCKET, SO_SNDBUF, OPT_INT, 0},
#ifdef SO_PASSCRED
  {"passcred", SOL_SOCKET, SO_PASSCRED, OPT_BOOL, 0},
#endif
  {"linger", SOL_SOCKET, SO_LINGER, OPT_LINGER, 0},
  {"broadcast", SOL_SOCKET, SO_BROADCAST, OPT_BOOL, 0},
  {"ipv6only", IPPROTO_IPV6, IPV6_V6ONLY, OPT_BOOL, 0},
  {"error", SOL_SOCKET, SO_ERROR, OPT_ERROR, 1},
  {"type", SOL_SOCKET, SO_TYPE, OPT_TYPE, 1},
  {"acceptconn", SOL_SOCKET, SO_ACCEPTCONN, OPT_BOOL, 1},
  {NULL, 0, 0, 0, 0}
};

static const sockopt *checkopt(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  const sockopt *p;
  for (p = options; p->name; p++)
    if (strcmp(p->name, name) == 0) return p;
  uipc_argerror(L, idx, "unknown socket option '%s'", name);
  return NULL;
}

static int sock_setoption(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  const sockopt *p = checkopt(L, 2);
  int v = 0;
  struct linger lg;
  void *val = &v;
  socklen_t len = sizeof v;
  if (p->readonly) return uipc_argerror(L, 2, "socket option '%s' is read-only", p->name);
  switch (p->kind) {
    case OPT_BOOL:
      if (!lua_isboolean(L, 3))
        return uipc_argerror(L, 3, "option '%s' takes a boolean, got %s", p->name, luaL_typename(L, 3));
      v = lua_toboolean(L, 3);
      break;
    case OPT_INT: {
      lua_Integer i;
      if (!lua_isinteger(L, 3))
        return uipc_argerror(L, 3, "option '%s' takes an integer, got %s", p->name, luaL_typename(L, 3));
      i = lua_tointeger(L, 3);
      if (i < 0 || i > 0x7fffffff)
        return uipc_argerror(L, 3, "option '%s' must not be negative", p->name);
      v = (int)i;
      break;
    }
    case OPT_LINGER:
      memset(&lg, 0, sizeof lg);
      if (lua_isnumber(L, 3)) {
        lua_Integer i = lua_tointeger(L, 3);
        if (!lua_isinteger(L, 3) || i < 0 || i > 0x7fffffff)
          return uipc_argerror(L, 3, "linger takes whole seconds >= 0 or false");
        lg.l_onoff = 1;
        lg.l_linger = (int)i;
      } else if (!lua_isnoneornil(L, 3) && !(lua_isboolean(L, 3) && !lua_toboolean(L, 3)))
        return uipc_argerror(L, 3, "linger takes whole seconds >= 0 or false");
      val = &lg;
      len = sizeof lg;
      break;
  }
  return uipc_boolresult(L, setsockopt(o->fd, p->level, p->opt, val, len), "setsockopt");
}

static int sock_getoption(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  const sockopt *p = checkopt(L, 2);
  int v = 0, err;
  struct linger lg;
  void *val = p->kind == OPT_LINGER ? (void *)&lg : (void *)&v;
  socklen_t len = p->kind == OPT_LINGER ? sizeof lg : sizeof v;
  if (getsockopt(o->fd, p->level, p->opt, val, &len) < 0) {
    err = errno;
    return uipc_fail(L, "getsockopt", err);
  }
  switch (p->kind) {
    case OPT_BOOL: lua_pushboolean(L, v); return 1;
    case OPT_INT: lua_pushinteger(L, v); return 1;
    case OPT_LINGER:
      if (lg.l_onoff)
        lua_pushinteger(L, lg.l_linger);
      else
        lua_pushboolean(L, 0);
      return 1;
    case OPT_TYPE: lua_pushstring(L, uipc_typename(v) ? uipc_typename(v) : "?"); return 1;
    default: /* OPT_ERROR: the pending error, 0 for none, and its message */
      lua_pushinteger(L, v);
      if (!v) return 1;
      lua_pushstring(L, strerror(v));
      return 2;
  }
}

/* ---- module helpers for the Lua layer -------------------------------- */

static int ipc_unlink(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  if (unlink(path) < 0) {
    int err = errno;
    lua_pushfstring(L, "unlink %s", path);
    return uipc_fail(L, lua_tostring(L, -1), err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int ipc_chmod(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  lua_Integer mode = luaL_checkinteger(L, 2);
  if (mode < 0 || mode > 07777) return luaL_argerror(L, 2, "mode must be 0 to 07777");
  if (chmod(path, (mode_t)mode) < 0) {
    int err = errno;
    lua_pushfstring(L, "chmod %s", path);
    return uipc_fail(L, lua_tostring(L, -1), err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg sockmethods[] = {
  {"bind", sock_bind},
  {"listen", sock_listen},
  {"accept", sock_accept},
  {"connect", sock_connect},
  {"send", sock_send},
  {"recv", sock_recv},
  {"sendto", sock_sendto},
  {"recvfrom", sock_recvfrom},
  {"shutdown", sock_shutdown},
  {"getsockname", sock_getsockname},
  {"getpeername", sock_getpeername},
  {"setoption", sock_setoption},
  {"getoption", sock_getoption},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"socketpair", ipc_socketpair},
  {"socket", ipc_socket},
  {"unlink", ipc_unlink},
  {"chmod", ipc_chmod},
  {NULL, NULL}
};

void uipc_open_socket(lua_State *L) {
  uipc_addmethods(L, NULL, sockmethods);
  luaL_setfuncs(L, funcs, 0);
}
