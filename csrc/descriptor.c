/*
 * Descriptor objects: the class every unixipc object is built on.
 * Userdata first, descriptor second; one idempotent close behind close(),
 * __close and __gc.
 */
#include "private.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char FDKEY, SOCKKEY; /* registry keys of the two metatables */

const uipc_Class uipc_fdclass = {"unixipc descriptor"};

/* ---- object model ---------------------------------------------------- */

uipc_Fd *uipc_newfd(lua_State *L, int issock) {
  uipc_Fd *o = (uipc_Fd *)lua_newuserdatauv(L, sizeof(uipc_Fd), 0);
  o->cls = &uipc_fdclass;
  o->fd = -1;
  o->issock = (unsigned char)(issock != 0);
  o->isfifo = o->usernb = o->onb = o->nbunknown = o->fifounknown = o->handed = 0;
  o->gen = 0;
  o->family = o->type = 0;
  o->timeout = -1;
  o->events[0] = 'r';
  o->events[1] = o->events[2] = '\0';
  lua_rawgetp(L, LUA_REGISTRYINDEX, issock ? &SOCKKEY : &FDKEY);
  lua_setmetatable(L, -2);
  return o;
}

/* a socket whose family and type we learn from the kernel */
void uipc_initsock(uipc_Fd *o, int fd) {
  socklen_t len = sizeof(int);
  o->fd = fd;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &o->family, &len) < 0) o->family = AF_UNSPEC;
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &o->type, &len) < 0) o->type = 0;
}

/*
 * Wrap a descriptor the caller already holds (received, inherited). It may
 * raise a memory error before taking ownership: callers that must not leak
 * keep fd in a guard until this returns.
 */
/* (re)initialise o for descriptor fd as a freshly wrapped object: class
   (socket or not) from the kernel, blocking mode, flags read on first need */
static int initwrapped(uipc_Fd *o, int fd) {
  /* getsockopt(SO_TYPE) tells a socket, and its type, in one call that
     costs half an fstat (and a non-socket fails it faster still) */
  int type = 0, issock;
  socklen_t len = sizeof type;
  issock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
  o->fd = fd;
  o->issock = (unsigned char)issock;
  o->isfifo = o->usernb = o->onb = 0;
  o->family = 0;
  o->type = type;
  o->timeout = -1;
  if (issock) {
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &o->family, &len) < 0) o->family = AF_UNSPEC;
  }
  o->fifounknown = (unsigned char)!issock; /* a pipe? asked on the first write (or tostring) */
  /* it may already be non-blocking: uipc_nbresolve records that on first need */
  o->nbunknown = 1;
  return issock;
}

/*
 * Wrap a descriptor the caller already holds (received, inherited). It may
 * raise a memory error before taking ownership: callers that must not leak
 * keep fd in a guard until this returns.
 */
int uipc_wrapfd(lua_State *L, int fd) {
  uipc_Fd *o = uipc_newfd(L, 0);
  if (initwrapped(o, fd)) { /* a socket: switch class (no allocation) */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SOCKKEY);
    lua_setmetatable(L, -2);
  }
  return 1;
}

/* the object at idx now stands for another file (dup2 onto it): refresh it,
   class included, as if newly wrapped; allocates nothing */
void uipc_rewrap(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  idx = lua_absindex(L, idx);
  if (!o || o->fd < 0) return;
  o->gen++; /* locks taken through it were on the old file (csrc/lock.c) */
  lua_rawgetp(L, LUA_REGISTRYINDEX, initwrapped(o, o->fd) ? &SOCKKEY : &FDKEY);
  lua_setmetatable(L, idx);
}

/* a wrapped non-socket: is it a pipe or FIFO (writes must not raise SIGPIPE)? */
static void fiforesolve(uipc_Fd *o) {
  struct stat st;
  if (!o->fifounknown || o->fd < 0) return;
  o->fifounknown = 0;
  o->isfifo = (unsigned char)(fstat(o->fd, &st) == 0 && S_ISFIFO(st.st_mode));
}

/*
 * A wrapped descriptor starts in blocking mode like every new object, even
 * when its sender left O_NONBLOCK on the shared file description: we do not
 * change the sender's flags, we record them (onb) and uipc_block waits out
 * the EAGAIN. Only calls that get EAGAIN/EINPROGRESS, and the blocking-mode
 * setters, need to know, so the flags are read on first need.
 */
void uipc_nbresolve(uipc_Fd *o) {
  int fl;
  if (!o->nbunknown || o->fd < 0) return;
  o->nbunknown = 0;
  fl = fcntl(o->fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) o->onb = 1;
}

uipc_Fd *uipc_toobj(lua_State *L, int idx) {
  return (uipc_Fd *)uipc_toclass(L, idx, &uipc_fdclass, sizeof(uipc_Fd));
}

uipc_Fd *uipc_checkobj(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  if (!o) luaL_typeerror(L, idx, uipc_fdclass.name);
  if (o->fd < 0)
    luaL_error(L, "attempt to use a closed %s", o->issock ? "socket" : "descriptor");
  return o;
}

uipc_Fd *uipc_checksock(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  if (!o || !o->issock) luaL_typeerror(L, idx, "unixipc socket");
  if (o->fd < 0) luaL_error(L, "attempt to use a closed socket");
  return o;
}

/* a unixipc object, a Lua io file, or a non-negative integer */
int uipc_checkfd(lua_State *L, int idx) {
  uipc_Fd *o;
  luaL_Stream *p;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer fd;
    if (!lua_isinteger(L, idx)) luaL_argerror(L, idx, "descriptor must be an integer");
    fd = lua_tointeger(L, idx);
    if (fd < 0 || fd > 0x7fffffff) luaL_argerror(L, idx, "descriptor must not be negative");
    return (int)fd;
  }
  if ((o = uipc_toobj(L, idx)) != NULL) {
    if (o->fd < 0)
      uipc_argerror(L, idx, "attempt to use a closed %s", o->issock ? "socket" : "descriptor");
    return o->fd;
  }
  if ((p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE)) != NULL) {
    if (p->closef == NULL) uipc_argerror(L, idx, "attempt to use a closed file");
    return fileno(p->f);
  }
  uipc_argerror(L, idx, "descriptor expected: unixipc object, io file or integer, got %s", luaL_typename(L, idx));
  return -1;
}

/* 0 or errno; close is never retried (the descriptor is gone on Linux) */
int uipc_closefd(uipc_Fd *o) {
  int fd = o->fd, err = 0;
  if (fd < 0) return 0;
  o->fd = -1;
  if (close(fd) < 0 && errno != EINTR) err = errno;
  return err;
}

int uipc_setnb(uipc_Fd *o, int on) {
  int fl;
  uipc_nbresolve(o);
  if (o->onb == on) return 0;
  fl = fcntl(o->fd, F_GETFL);
  if (fl < 0) return errno;
  if (fcntl(o->fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) < 0) return errno;
  o->onb = (unsigned char)(on != 0);
  return 0;
}

/* deadline for a call starting now, or -1 without timeout */
double uipc_deadline(const uipc_Fd *o) {
  return o->timeout >= 0 ? uipc_now() + o->timeout : -1;
}

int uipc_pollms(double deadline) {
  double left;
  if (deadline < 0) return -1;
  left = deadline - uipc_now();
  if (left <= 0) return 0;
  if (left > 86400) return 86400 * 1000; /* a day at a time: the caller loops */
  return (int)ceil(left * 1000);
}

/*
 * A seqpacket socket returns 0 bytes both for an empty record and at end of
 * stream. It is the end when the peer has shut down its side (POLLRDHUP or
 * POLLHUP); an empty record from a live peer is "". The one case this
 * cannot tell apart: an empty record read after the peer has already shut
 * down reads as the end of stream.
 */
int uipc_seqeof(int fd) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN | POLLRDHUP;
  p.revents = 0;
  if (poll(&p, 1, 0) < 0) return 1;
  return (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

/* wait until fd is ready for events or the deadline passes: 0, ETIMEDOUT or errno */
int uipc_waitfd(int fd, short events, double deadline) {
  struct pollfd p;
  p.fd = fd;
  p.events = events;
  for (;;) {
    int r = poll(&p, 1, uipc_pollms(deadline));
    if (r > 0) return 0;
    if (r == 0 && uipc_now() >= deadline) return ETIMEDOUT;
    if (r < 0 && errno != EINTR) return errno;
  }
}

/* ---- methods --------------------------------------------------------- */

static int fd_close(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  int err;
  if (!o) return luaL_typeerror(L, 1, uipc_fdclass.name);
  err = uipc_closefd(o);
  if (err) return uipc_fail(L, "close", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_gc(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (o) uipc_closefd(o);
  return 0;
}

static const char *familyname(int f) {
  switch (f) {
    case AF_UNIX: return "unix";
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    default: return "?";
  }
}

static const char *typename_(int t) {
  switch (t) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    case SOCK_SEQPACKET: return "seqpacket";
    case SOCK_RAW: return "raw";
    default: return "?";
  }
}

static int fd_tostring(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (!o) return luaL_typeerror(L, 1, uipc_fdclass.name);
  fiforesolve(o);
  if (o->fd < 0)
    lua_pushstring(L, o->issock ? "socket (closed)" : "descriptor (closed)");
  else if (o->issock)
    lua_pushfstring(L, "socket (%s %s, fd %d)", familyname(o->family), typename_(o->type), o->fd);
  else
    lua_pushfstring(L, "descriptor (%sfd %d)", o->isfifo ? "pipe, " : "", o->fd);
  return 1;
}

static int fd_fileno(lua_State *L) {
  lua_pushinteger(L, uipc_checkobj(L, 1)->fd);
  return 1;
}

/* LuaSocket's select protocol: -1 once closed, so select skips it */
static int fd_getfd(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (!o) return luaL_typeerror(L, 1, uipc_fdclass.name);
  lua_pushinteger(L, o->fd);
  return 1;
}

/* cqueues protocol: events([new]) -> "r" | "w" | "rw" */
static int fd_events(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    const char *e = luaL_checkstring(L, 2);
    if (strcmp(e, "r") && strcmp(e, "w") && strcmp(e, "rw"))
      return uipc_argerror(L, 2, "events must be \"r\", \"w\" or \"rw\", got '%s'", e);
    strcpy(o->events, e);
  }
  lua_pushstring(L, o->events);
  return 1;
}

static int fd_timeout_cq(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  if (o->timeout >= 0)
    lua_pushnumber(L, o->timeout);
  else
    lua_pushnil(L);
  return 1;
}

static int fd_settimeout(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  double t = uipc_optseconds(L, 2, "timeout");
  int err;
  uipc_nbresolve(o);
  o->timeout = t;
  if ((err = uipc_setnb(o, o->usernb || t >= 0)) != 0) return uipc_fail(L, "fcntl", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_setnonblocking(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  int on, err;
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  on = lua_toboolean(L, 2);
  uipc_nbresolve(o);
  o->usernb = (unsigned char)on;
  if ((err = uipc_setnb(o, on || o->timeout >= 0)) != 0) return uipc_fail(L, "fcntl", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_setcloexec(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  int on = 1, fl, err;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    on = lua_toboolean(L, 2);
  }
  fl = fcntl(o->fd, F_GETFD);
  if (fl < 0 || fcntl(o->fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC)) < 0) {
    err = errno;
    return uipc_fail(L, "fcntl", err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_dup(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  uipc_Fd *n = uipc_newfd(L, o->issock);
  int fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0), err;
  if (fd < 0) {
    err = errno;
    return uipc_fail(L, "dup", err);
  }
  *n = *o;
  n->fd = fd;
  return 1;
}

/*
 * One blocking step for a call that failed with err: 0 means "try again"
 * (EINTR, or the descriptor became ready); anything else is the error to
 * report, ETIMEDOUT for a timeout.
 */
int uipc_block(uipc_Fd *o, int err, short events, double *deadline) {
  if (err == EINTR) return 0;
  if (err != EAGAIN && err != EWOULDBLOCK) return err;
  uipc_nbresolve(o);
  if (o->usernb) return err;
  if (o->timeout >= 0 && *deadline < 0) *deadline = uipc_now() + o->timeout;
  return uipc_waitfd(o->fd, events, *deadline);
}

/* write(2) to a pipe without SIGPIPE, and without touching the disposition */
static ssize_t nosigpipe_write(int fd, const char *buf, size_t n) {
  sigset_t pipeset, old, pending;
  ssize_t r;
  int err, was;
  sigemptyset(&pipeset);
  sigaddset(&pipeset, SIGPIPE);
  sigpending(&pending);
  was = sigismember(&pending, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipeset, &old);
  r = write(fd, buf, n);
  err = errno;
  if (r < 0 && err == EPIPE && !was) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return r;
}

/* one write of up to n bytes; -1 with errno */
ssize_t uipc_rawwrite(uipc_Fd *o, const char *buf, size_t n, int flags) {
  if (o->issock) return send(o->fd, buf, n, flags | MSG_NOSIGNAL);
  if (o->fifounknown) fiforesolve(o);
  if (o->isfifo) return nosigpipe_write(o->fd, buf, n);
  return write(o->fd, buf, n);
}

/* bytes written, or -1 with *perr (ETIMEDOUT on timeout) */
ssize_t uipc_writesome(uipc_Fd *o, const char *buf, size_t n, int flags, double *deadline,
                       int *perr) {
  for (;;) {
    ssize_t r = uipc_rawwrite(o, buf, n, flags);
    int err;
    if (r >= 0) return r;
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR) err = uipc_block(o, err, POLLOUT, deadline);
    if ((*perr = err) != 0) return -1;
  }
}

int uipc_pushwrite(lua_State *L, const char *op, ssize_t r, int err) {
  if (r >= 0) {
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
  }
  if (err == ETIMEDOUT) return uipc_timeout(L);
  return uipc_fail(L, op, err);
}

static int fd_write(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  double deadline = -1;
  int err = 0;
  ssize_t r = uipc_writesome(o, s, n, 0, &deadline, &err);
  return uipc_pushwrite(L, "write", r, err);
}

/* write everything: true, or nil, msg, errno, bytes_written */
int uipc_writeall(lua_State *L, uipc_Fd *o, const char *s, size_t n, int flags, const char *op) {
  double deadline = -1;
  size_t done = 0;
  int err = 0, nret;
  while (done < n) {
    ssize_t r = uipc_writesome(o, s + done, n - done, flags, &deadline, &err);
    if (r < 0) {
      nret = uipc_pushwrite(L, op, r, err);
      lua_pushinteger(L, (lua_Integer)done);
      return nret + 1;
    }
    done += (size_t)r;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_sendall(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int flags = uipc_checkflags(L, 3, uipc_msgflags, "flag");
  return uipc_writeall(L, o, s, n, flags, o->issock ? "send" : "write");
}

/* max byte count argument: non-negative integer, default def */
size_t uipc_checksize(lua_State *L, int idx, lua_Integer def, const char *what) {
  lua_Integer n;
  if (lua_isnoneornil(L, idx)) return (size_t)def;
  if (!lua_isinteger(L, idx))
    uipc_argerror(L, idx, "%s must be an integer, got %s", what, lua_isnumber(L, idx) ? "a float" : luaL_typename(L, idx));
  n = lua_tointeger(L, idx);
  if (n < 0) uipc_argerror(L, idx, "%s must not be negative", what);
  return (size_t)n;
}

/*
 * read(2) / recv / recvfrom into a new string. Up to 64 KiB lands in a
 * stack buffer, so a call allocates nothing but its result.
 */
#define STACKBUF 65536
int uipc_pushrecv(lua_State *L, uipc_Fd *o, size_t n, int flags, int how) {
  static const char *const ops[] = {"read", "recv", "recvfrom"};
  char stackbuf[STACKBUF];
  struct sockaddr_storage ss;
  socklen_t slen = 0;
  luaL_Buffer b;
  char *p = stackbuf;
  double deadline = -1;
  ssize_t r;
  if (n == 0 && how < 2) { /* nothing asked, nothing read: a zero-length recv may block */
    lua_pushliteral(L, "");
    return 1;
  }
  if (n > STACKBUF) p = luaL_buffinitsize(L, &b, n);
  for (;;) {
    int err;
    slen = sizeof ss;
    if (how == 0)
      r = read(o->fd, p, n);
    else if (how == 1)
      r = recv(o->fd, p, n, flags);
    else
      r = recvfrom(o->fd, p, n, flags, (struct sockaddr *)&ss, &slen);
    if (r >= 0) break;
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR)
      err = uipc_block(o, err, (flags & MSG_OOB) ? POLLPRI : POLLIN, &deadline);
    if (err) return err == ETIMEDOUT ? uipc_timeout(L) : uipc_fail(L, ops[how], err);
  }
  if (r == 0 && (!o->issock || o->type == SOCK_STREAM ||
                 (o->type == SOCK_SEQPACKET && uipc_seqeof(o->fd)))) {
    lua_pushnil(L);
    lua_pushliteral(L, "eof");
    return 2;
  }
  if ((size_t)r > n) r = (ssize_t)n; /* MSG_TRUNC reports the real length */
  if (p == stackbuf)
    lua_pushlstring(L, p, (size_t)r);
  else
    luaL_pushresultsize(&b, (size_t)r);
  if (how == 2) {
    if (slen == 0 && o->family == AF_UNIX) { /* an unbound unix sender */
      ss.ss_family = AF_UNIX;
      slen = sizeof(sa_family_t);
    }
    uipc_pushaddr(L, (struct sockaddr *)&ss, slen);
    return 2;
  }
  return 1;
}

static int fd_read(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  return uipc_pushrecv(L, o, uipc_checksize(L, 2, 65536, "size"), 0, 0);
}

static int fd_seek(lua_State *L) {
  static const uipc_Const whences[] = {{"set", SEEK_SET}, {"cur", SEEK_CUR}, {"end", SEEK_END},
                                       {NULL, 0}};
  uipc_Fd *o = uipc_checkobj(L, 1);
  int whence = lua_isnoneornil(L, 2) ? SEEK_CUR : uipc_checkname(L, 2, whences, "whence");
  lua_Integer off = luaL_optinteger(L, 3, 0);
  off_t r = lseek(o->fd, (off_t)off, whence);
  if (r < 0) {
    int err = errno;
    return uipc_fail(L, "lseek", err);
  }
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* the io library closes the stream; fclose also closes the descriptor */
static int tofile_close(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int res = fclose(p->f);
  return luaL_fileresult(L, res == 0, NULL);
}

static int fd_tofile(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  const char *mode = luaL_optstring(L, 2, "r+");
  const char *m = mode;
  luaL_Stream *p;
  FILE *f;
  int err;
  if (!(*m != '\0' && strchr("rwa", *(m++)) != NULL && (*m != '+' || ((void)(++m), 1)) &&
        strspn(m, "b") == strlen(m)))
    return uipc_argerror(L, 2, "invalid mode '%s'", mode);
  p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL; /* a closed file until fdopen succeeds */
  p->f = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  uipc_nbresolve(o);
  if (o->onb && (err = uipc_setnb(o, 0)) != 0) return uipc_fail(L, "fcntl", err);
  o->usernb = 0;
  o->timeout = -1;
  f = fdopen(o->fd, mode);
  if (!f) {
    err = errno;
    return uipc_fail(L, "fdopen", err);
  }
  p->f = f;
  p->closef = tofile_close;
  o->fd = -1; /* the io file owns it now */
  o->handed = 1;
  return 1;
}

/* ---- module functions ------------------------------------------------ */

static int ipc_pipe(lua_State *L) {
  uipc_Fd *r = uipc_newfd(L, 0), *w = uipc_newfd(L, 0);
  int fds[2], err;
  if (pipe2(fds, O_CLOEXEC) < 0) {
    err = errno;
    return uipc_fail(L, "pipe", err);
  }
  r->fd = fds[0];
  w->fd = fds[1];
  r->isfifo = w->isfifo = 1;
  return 2;
}

/* fopen-style mode -> open(2) flags; "x" adds O_EXCL, "b" is ignored */
static int openflags(lua_State *L, const char *mode) {
  const char *m = mode;
  int fl;
  switch (*m++) {
    case 'r': fl = O_RDONLY; break;
    case 'w': fl = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': fl = O_WRONLY | O_CREAT | O_APPEND; break;
    default: goto bad;
  }
  for (; *m; m++) {
    if (*m == '+')
      fl = (fl & ~(O_RDONLY | O_WRONLY)) | O_RDWR;
    else if (*m == 'x' && mode[0] == 'w')
      fl |= O_EXCL;
    else if (*m != 'b')
      goto bad;
  }
  return fl | O_CLOEXEC;
bad:
  uipc_argerror(L, 2, "invalid mode '%s'", mode);
  return 0;
}

static int ipc_open(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  int flags = openflags(L, luaL_optstring(L, 2, "r"));
  lua_Integer perm = luaL_optinteger(L, 3, 0666);
  uipc_Fd *o;
  int fd, err;
  if (perm < 0 || perm > 07777) return luaL_argerror(L, 3, "permissions must be 0 to 07777");
  o = uipc_newfd(L, 0);
  fd = (int)UIPC_RETRY(open(path, flags, (mode_t)perm));
  if (fd < 0) {
    err = errno;
    lua_pushfstring(L, "open %s", path);
    return uipc_fail(L, lua_tostring(L, -1), err);
  }
  o->fd = fd;
  {
    struct stat st;
    if (fstat(fd, &st) == 0) o->isfifo = (unsigned char)S_ISFIFO(st.st_mode);
  }
  return 1;
}

/* wrap an inherited integer descriptor (ownership passes to the object) */
static int ipc_fdopen(lua_State *L) {
  lua_Integer fd = uipc_checkint(L, 1, 0, INT_MAX, "descriptor");
  if (fcntl((int)fd, F_GETFD) < 0) {
    int err = errno;
    return uipc_fail(L, "fdopen", err);
  }
  return uipc_wrapfd(L, (int)fd);
}

static const luaL_Reg fdmethods[] = {
  {"close", fd_close},
  {"fileno", fd_fileno},
  {"getfd", fd_getfd},
  {"pollfd", fd_fileno},
  {"events", fd_events},
  {"timeout", fd_timeout_cq},
  {"settimeout", fd_settimeout},
  {"setnonblocking", fd_setnonblocking},
  {"setcloexec", fd_setcloexec},
  {"dup", fd_dup},
  {"read", fd_read},
  {"write", fd_write},
  {"sendall", fd_sendall},
  {"seek", fd_seek},
  {"tofile", fd_tofile},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", fd_gc},
  {"__close", fd_gc},
  {"__tostring", fd_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"pipe", ipc_pipe},
  {"open", ipc_open},
  {"fdopen", ipc_fdopen},
  {NULL, NULL}
};

/* register methods on descriptor objects (fdm, also on sockets) and sockets only (sockm) */
void uipc_addmethods(lua_State *L, const luaL_Reg *fdm, const luaL_Reg *sockm) {
  int i;
  for (i = 0; i < 2; i++) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, i ? (void *)&SOCKKEY : (void *)&FDKEY);
    lua_getfield(L, -1, "__index");
    if (fdm) luaL_setfuncs(L, fdm, 0);
    if (sockm && i == 1) luaL_setfuncs(L, sockm, 0);
    lua_pop(L, 2);
  }
}

static void newclass(lua_State *L, void *key, const char *name) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

void uipc_open_descriptor(lua_State *L) {
  int i;
  newclass(L, &FDKEY, UIPC_FD_MT);
  newclass(L, &SOCKKEY, UIPC_SOCKET_MT);
  for (i = 0; i < 2; i++) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, i ? (void *)&SOCKKEY : (void *)&FDKEY);
    luaL_setfuncs(L, metamethods, 0);
    lua_pop(L, 1);
  }
  uipc_addmethods(L, fdmethods, NULL);
  luaL_setfuncs(L, funcs, 0);
  /* expose the method tables so the Lua layer can add methods */
  lua_newtable(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &FDKEY);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "fd");
  lua_pop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SOCKKEY);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "socket");
  lua_pop(L, 1);
  lua_setfield(L, -2, "_methods");
}
