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

/* the options of socket() and socketpair() at idx: {nonblock =, timeout =} */
static const uipc_Opt sockoptnames[] = {UIPC_OPT("nonblock"), UIPC_OPT("timeout"), {NULL, 0}};

typedef struct {
  int nonblock;   /* the user's non-blocking mode */
  double timeout; /* seconds, < 0 none */
} NewOpts;

static void newopts(lua_State *L, int idx, NewOpts *n) {
  int base = lua_gettop(L) + 1;
  uipc_options(L, idx, idx, sockoptnames, base);
  n->nonblock = uipc_optbool(L, base, idx, "nonblock", 0);
  n->timeout = uipc_secondsarg(L, base + 1, idx, "option 'timeout'");
  lua_settop(L, base - 1);
}

/* SOCK_NONBLOCK for a socket made with these options */
static int nbflag(const NewOpts *n) {
  return n->nonblock || n->timeout >= 0 ? SOCK_NONBLOCK : 0;
}

void uipc_initsock(uipc_Fd *o, int fd, int family, int type, int nonblock, double timeout) {
  o->fd = fd;
  o->family = family;
  o->type = type;
  o->timeout = timeout;
  o->onb = (unsigned char)(nonblock || timeout >= 0);
  o->usernb = (unsigned char)(nonblock != 0);
}

/* socketpair([type [, opts]]) */
static int ipc_socketpair(lua_State *L) {
  int type = lua_isnoneornil(L, 1) ? SOCK_STREAM : uipc_checkname(L, 1, &uipc_socktypes);
  NewOpts n;
  uipc_Fd *a, *b;
  int sv[2];
  newopts(L, 2, &n);
  a = uipc_newfd(L, 1);
  b = uipc_newfd(L, 1);
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | nbflag(&n), 0, sv) < 0)
    return uipc_failerrno(L, "socketpair");
  uipc_initsock(a, sv[0], AF_UNIX, type, n.nonblock, n.timeout);
  uipc_initsock(b, sv[1], AF_UNIX, type, n.nonblock, n.timeout);
  return 2;
}

/* socket(family [, type [, opts]]) */
static int ipc_socket(lua_State *L) {
  int family = uipc_checkname(L, 1, &uipc_afamilies);
  int type = lua_isnoneornil(L, 2) ? SOCK_STREAM : uipc_checkname(L, 2, &uipc_socktypes), fd;
  NewOpts n;
  uipc_Fd *o;
  if (family == AF_UNSPEC) return uipc_argerror(L, 1, "address family must be unix, inet or inet6");
  newopts(L, 3, &n);
  o = uipc_newfd(L, 1);
  fd = socket(family, type | SOCK_CLOEXEC | nbflag(&n), 0);
  if (fd < 0) return uipc_failerrno(L, "socket");
  uipc_initsock(o, fd, family, type, n.nonblock, n.timeout);
  return 1;
}

static int sock_bind(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = uipc_toaddr(L, 2, 2, o->family, o->type, &ss, &len, 1);
  if (rc) return uipc_addrfail(L, "bind", rc);
  return uipc_boolresult(L, bind(o->fd, (struct sockaddr *)&ss, len), "bind");
}

static int sock_listen(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  int backlog = (int)uipc_optint(L, 2, SOMAXCONN, 0, 0x7fffffff, "backlog");
  return uipc_boolresult(L, listen(o->fd, backlog), "listen");
}

/* inside a task, a blocking object gets O_NONBLOCK for calls that take no
   MSG_DONTWAIT (see wait.c); returns whether we are in one */
static int taskmode(lua_State *L, uipc_Fd *o) {
  if (!uipc_intask(L)) return 0;
  uipc_nbresolve(o);
  if (!o->onb) uipc_setnb(o, 1);
  return 1;
}

/* accept() -> conn, addr. The new socket is blocking whatever the listener
   is (in a task too: its calls pass MSG_DONTWAIT there). */
static int accept_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1), *c;
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, err;
  taskmode(L, o); /* the listener: accept4 takes no MSG_DONTWAIT */
  c = uipc_newfd(L, 1);
  for (;;) {
    len = sizeof ss;
    fd = accept4(o->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd >= 0) break;
    if ((err = uipc_block(L, w, o, errno, POLLIN)) != 0) return uipc_waitfail(L, "accept", err);
  }
  uipc_initsock(c, fd, o->family, o->type, 0, -1);
  uipc_pushaddr(L, (struct sockaddr *)&ss, len);
  return 2;
}

/*
 * connect(addr). Blocking: waits (EINTR leaves the connection in progress,
 * so we wait for it rather than call connect again). Timed (and in a
 * task): EINPROGRESS, then wait for writability and read SO_ERROR.
 * Non-blocking: returns the EINPROGRESS failure; poll for "w" then
 * getoption("error"). A unix listener whose backlog is full answers a
 * non-blocking connect with EAGAIN, and there is nothing to wait for: a
 * timed or non-blocking socket returns that EAGAIN (ipc.connect retries
 * it until its timeout); a blocking one in a task naps and tries again, as
 * the kernel would have blocked it. w->done is 1 once the connection is in
 * progress.
 */
static int connect_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1);
  int err;
  if (w->done == 0) {
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = uipc_toaddr(L, 2, 2, o->family, o->type, &ss, &len, 0), task;
    double nap = 0.001;
    if (rc) return uipc_addrfail(L, "connect", rc);
    task = taskmode(L, o);
    if (o->timeout >= 0 && !w->resumed) w->deadline = uipc_now() + o->timeout;
    for (;;) {
      if (connect(o->fd, (struct sockaddr *)&ss, len) == 0) {
        lua_pushboolean(L, 1);
        return 1;
      }
      err = errno;
      uipc_nbresolve(o); /* a wrapped socket: is it non-blocking? */
      /* Linux gives up a unix connect a signal interrupts: try again */
      if (err == EINTR && o->family == AF_UNIX) continue;
      if (err == EINTR || (err == EINPROGRESS && !o->usernb)) break;
      if (err == EAGAIN && task && !o->usernb && o->timeout < 0) {
        uipc_pause(L, w, nap);
        if ((nap *= 2) > 0.01) nap = 0.01;
        continue;
      }
      return uipc_fail(L, "connect", err);
    }
    w->done = 1;
  }
  for (;;) { /* in progress: done once writable (asked first, as after a hand-off it is) */
    struct pollfd p;
    p.fd = o->fd;
    p.events = POLLOUT;
    if (poll(&p, 1, 0) > 0) break;
    if ((err = uipc_wait(L, w, o->fd, POLLOUT)) != 0) return uipc_waitfail(L, "connect", err);
  }
  {
    int soerr = 0;
    socklen_t el = sizeof soerr;
    struct sockaddr_storage ss;
    if (getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0) soerr = errno;
    if (soerr) return uipc_fail(L, "connect", soerr);
    /* writable with no error yet not connected: the interrupted call never
       started a connection (nothing goes on in the background); again */
    el = sizeof ss;
    if (getpeername(o->fd, (struct sockaddr *)&ss, &el) < 0 && errno == ENOTCONN) {
      w->done = 0;
      return connect_body(L, w);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int send_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int flags = uipc_checkflags(L, 3, &uipc_msgflags), err = 0;
  ssize_t r = uipc_writesome(L, w, o, s, n, flags, &err);
  return uipc_pushwrite(L, "send", r, err);
}

static int recv_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n = uipc_checksize(L, 2, 65536, "maxlen");
  return uipc_pushrecv(L, w, o, n, uipc_checkflags(L, 3, &uipc_msgflags), 1);
}

static int recvfrom_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n = uipc_checksize(L, 2, 65536, "maxlen");
  return uipc_pushrecv(L, w, o, n, uipc_checkflags(L, 3, &uipc_msgflags), 2);
}

static int sendto_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checksock(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  struct sockaddr_storage ss;
  socklen_t len;
  int flags = uipc_checkflags(L, 4, &uipc_msgflags), extra, err; /* before: errno of EAI_SYSTEM */
  int rc = uipc_toaddr(L, 3, 3, o->family, o->type, &ss, &len, 0);
  if (rc) return uipc_addrfail(L, "sendto", rc);
  extra = uipc_callflags(L, o, 1);
  for (;;) {
    ssize_t r = sendto(o->fd, s, n, flags | extra | MSG_NOSIGNAL, (struct sockaddr *)&ss, len);
    if (r >= 0) {
      lua_pushinteger(L, (lua_Integer)r);
      return 1;
    }
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR) err = uipc_block(L, w, o, err, POLLOUT);
    if (err) return uipc_pushwrite(L, "sendto", -1, err);
  }
}

static const uipc_Op accept_op = {"accept", accept_body, NULL}, connect_op = {"connect", connect_body, NULL},
                     send_op = {"send", send_body, NULL}, recv_op = {"recv", recv_body, NULL},
                     recvfrom_op = {"recvfrom", recvfrom_body, NULL}, sendto_op = {"sendto", sendto_body, NULL};
static int sock_accept(lua_State *L) { return uipc_run(L, &accept_op); }
static int sock_connect(lua_State *L) { return uipc_run(L, &connect_op); }
static int sock_send(lua_State *L) { return uipc_run(L, &send_op); }
static int sock_recv(lua_State *L) { return uipc_run(L, &recv_op); }
static int sock_recvfrom(lua_State *L) { return uipc_run(L, &recvfrom_op); }
static int sock_sendto(lua_State *L) { return uipc_run(L, &sendto_op); }

static int sock_shutdown(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  int how = lua_isnoneornil(L, 2) ? SHUT_RDWR : uipc_checkname(L, 2, &uipc_shuthows);
  return uipc_boolresult(L, shutdown(o->fd, how), "shutdown");
}

static int nameof(lua_State *L, int peer) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(o->fd, (struct sockaddr *)&ss, &len)
               : getsockname(o->fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return uipc_failerrno(L, peer ? "getpeername" : "getsockname");
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
#ifdef __linux__
  {"passpidfd", SOL_SOCKET, 76 /* SO_PASSPIDFD, Linux 6.5 */, OPT_BOOL, 0},
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
    case OPT_INT:
      v = (int)uipc_checkint(L, 3, 0, 0x7fffffff, p->name);
      break;
    case OPT_LINGER:
      memset(&lg, 0, sizeof lg);
      if (lua_type(L, 3) == LUA_TNUMBER) {
        lg.l_onoff = 1;
        lg.l_linger = (int)uipc_checkint(L, 3, 0, 0x7fffffff, "linger");
      } else if (!lua_isnoneornil(L, 3) && !(lua_isboolean(L, 3) && !lua_toboolean(L, 3)))
        return uipc_argerror(L, 3, "linger takes whole seconds or false, got %s", luaL_typename(L, 3));
      val = &lg;
      len = sizeof lg;
      break;
  }
  return uipc_boolresult(L, setsockopt(o->fd, p->level, p->opt, val, len), "setsockopt");
}

static int sock_getoption(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  const sockopt *p = checkopt(L, 2);
  int v = 0;
  struct linger lg;
  void *val = p->kind == OPT_LINGER ? (void *)&lg : (void *)&v;
  socklen_t len = p->kind == OPT_LINGER ? sizeof lg : sizeof v;
  if (getsockopt(o->fd, p->level, p->opt, val, &len) < 0) return uipc_failerrno(L, "getsockopt");
  switch (p->kind) {
    case OPT_BOOL: lua_pushboolean(L, v); return 1;
    case OPT_INT: lua_pushinteger(L, v); return 1;
    case OPT_LINGER:
      if (lg.l_onoff)
        lua_pushinteger(L, lg.l_linger);
      else
        lua_pushboolean(L, 0);
      return 1;
    case OPT_TYPE: lua_pushstring(L, uipc_nameof(&uipc_socktypes, v) ? uipc_nameof(&uipc_socktypes, v) : "?"); return 1;
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
  return uipc_pathresult(L, unlink(path), "unlink", path);
}

static int ipc_chmod(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  mode_t mode = (mode_t)uipc_checkint(L, 2, 0, 07777, "mode");
  return uipc_pathresult(L, chmod(path, mode), "chmod", path);
}

/* _filetype(path) -> "socket" | "file" | "directory" | "other" (lstat), or
   nil, msg, errno: what listen{unlink = true} may remove */
static int ipc_filetype(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  struct stat st;
  if (lstat(path, &st) < 0) {
    int err = errno;
    return uipc_failon(L, "lstat", path, err);
  }
  lua_pushstring(L, S_ISSOCK(st.st_mode) ? "socket" : S_ISREG(st.st_mode) ? "file"
                    : S_ISDIR(st.st_mode) ? "directory" : "other");
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
  {"_filetype", ipc_filetype},
  {NULL, NULL}
};

void uipc_open_socket(lua_State *L) {
  uipc_addmethods(L, NULL, sockmethods);
  luaL_setfuncs(L, funcs, 0);
}
