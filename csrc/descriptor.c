/*
 * Descriptor objects: the class every unixipc object is built on.
 * Userdata first, descriptor second; one idempotent close behind close(),
 * __close and __gc.
 */
#include "private.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char FDKEY, SOCKKEY; /* registry keys of the two metatables */
static char KINDKEYS[UIPC_NKINDS]; /* registry keys of the kinds' metatables (0 is FDKEY's) */
static int kinduv[UIPC_NKINDS];    /* user values of each kind's objects */

const uipc_Class uipc_fdclass = {"unixipc descriptor"};
const char *const uipc_kindnames[UIPC_NKINDS] = {"descriptor", "pidfd", "eventfd", "memfd"};

/* ---- object model ---------------------------------------------------- */

/* a new object's state: closed, blocking, no timeout */
static void initfd(uipc_Fd *o, int issock, int kind) {
  o->cls = &uipc_fdclass;
  o->fd = -1;
  o->issock = (unsigned char)(issock != 0);
  o->isfifo = o->usernb = o->onb = o->nbunknown = o->fifounknown = o->handed = 0;
  o->kind = (unsigned char)kind;
  o->gen = 0;
  o->family = o->type = 0;
  o->timeout = -1;
  o->events[0] = 'r';
  o->events[1] = o->events[2] = '\0';
  o->bound = NULL;
}

uipc_Fd *uipc_newfd(lua_State *L, int issock) {
  uipc_Fd *o = (uipc_Fd *)lua_newuserdatauv(L, sizeof(uipc_Fd), 0);
  initfd(o, issock, UIPC_KIND_FD);
  lua_rawgetp(L, LUA_REGISTRYINDEX, issock ? &SOCKKEY : &FDKEY);
  lua_setmetatable(L, -2);
  return o;
}

/*
 * The path a listening socket was bound to by listen(): unlinked when the
 * socket closes, only in the process that bound it and only while the path
 * still names the socket file it made (same device and inode).
 */
struct uipc_Bound {
  pid_t pid;
  dev_t dev;
  ino_t ino;
  char path[];
};

/* forget the bound path; unlink it when this is the binding process's close */
static void unbind(uipc_Fd *o, int unlinkit) {
  struct uipc_Bound *b = o->bound;
  struct stat st;
  if (!b) return;
  o->bound = NULL;
  if (unlinkit && b->pid == getpid() && lstat(b->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_dev == b->dev && st.st_ino == b->ino)
    unlink(b->path);
  free(b);
}

/* core._bound(sock, path): the socket was just bound to path (a socket
   file): it unlinks path when it closes, in this process only.
   core._bound(sock, false): forget the path, which now outlives the socket
   (a server handing its listener over to the program that replaces it) */
static int ipc_bound(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  const char *path;
  struct uipc_Bound *b;
  struct stat st;
  if (lua_isboolean(L, 2) && !lua_toboolean(L, 2)) {
    unbind(o, 0);
    lua_pushboolean(L, 1);
    return 1;
  }
  path = uipc_checkpath(L, 2);
  if (lstat(path, &st) < 0) return uipc_failerrno(L, "lstat");
  b = (struct uipc_Bound *)malloc(sizeof *b + strlen(path) + 1);
  if (!b) return luaL_error(L, "not enough memory");
  b->pid = getpid();
  b->dev = st.st_dev;
  b->ino = st.st_ino;
  strcpy(b->path, path);
  unbind(o, 0);
  o->bound = b;
  lua_pushboolean(L, 1);
  return 1;
}

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
  o->kind = UIPC_KIND_FD;
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
  unbind(o, 0); /* the file it was bound for is not this one */
  o->gen++; /* locks taken through it were on the old file (csrc/lock.c) */
  lua_rawgetp(L, LUA_REGISTRYINDEX, initwrapped(o, o->fd) ? &SOCKKEY : &FDKEY);
  lua_setmetatable(L, idx);
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

uipc_Fd *uipc_checkobj(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  if (!o) luaL_typeerror(L, idx, uipc_fdclass.name);
  if (o->fd < 0) luaL_error(L, "attempt to use a closed %s", uipc_kindname(o));
  return o;
}

uipc_Fd *uipc_checksock(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  if (!o || !o->issock) luaL_typeerror(L, idx, "unixipc socket");
  if (o->fd < 0) luaL_error(L, "attempt to use a closed socket");
  return o;
}

/* 0 or errno; close is never retried (the descriptor is gone on Linux) */
int uipc_closefd(uipc_Fd *o) {
  int fd = o->fd, err = 0;
  if (fd < 0) return 0;
  o->fd = -1;
  if (o->bound) unbind(o, 1);
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

/* ---- kinds ------------------------------------------------------------ */

uipc_Fd *uipc_newkindfd(lua_State *L, int kind) {
  uipc_Fd *o = (uipc_Fd *)lua_newuserdatauv(L, sizeof(uipc_Fd), kinduv[kind]);
  initfd(o, 0, kind);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KINDKEYS[kind]);
  lua_setmetatable(L, -2);
  return o;
}

uipc_Fd *uipc_checkkind(lua_State *L, int idx, int kind) {
  uipc_Fd *o = uipc_toobj(L, idx);
  if (!o || o->kind != kind) {
    const char *want = lua_pushfstring(L, "unixipc %s", uipc_kindnames[kind]);
    luaL_typeerror(L, idx, want);
  }
  if (o->fd < 0) luaL_error(L, "attempt to use a closed %s", uipc_kindnames[kind]);
  return o;
}

void uipc_setkind(lua_State *L, int idx, int kind) {
  uipc_Fd *o = uipc_toobj(L, idx);
  idx = lua_absindex(L, idx);
  if (!o || o->issock) return;
  o->kind = (unsigned char)kind;
  lua_rawgetp(L, LUA_REGISTRYINDEX, kind ? (void *)&KINDKEYS[kind] : (void *)&FDKEY);
  lua_setmetatable(L, idx);
}

/* what the kernel says fd is: an anonymous inode names its kind in its
   /proc link ("anon_inode:[eventfd]"); a memfd is a regular file that
   answers F_GET_SEALS and is named "/memfd:..." */
int uipc_probekind(int fd) {
  struct stat st;
  char path[64], target[32];
  ssize_t n;
  if (fstat(fd, &st) < 0) return UIPC_KIND_FD;
  if ((st.st_mode & S_IFMT) != 0 && !(S_ISREG(st.st_mode) && fcntl(fd, F_GET_SEALS) >= 0))
    return UIPC_KIND_FD;
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  n = readlink(path, target, sizeof target - 1);
  if (n < 0) return UIPC_KIND_FD;
  target[n] = '\0';
  if (S_ISREG(st.st_mode)) return strncmp(target, "/memfd:", 7) == 0 ? UIPC_KIND_MEMFD : UIPC_KIND_FD;
  if (strcmp(target, "anon_inode:[eventfd]") == 0) return UIPC_KIND_EVENTFD;
  if (strcmp(target, "anon_inode:[pidfd]") == 0 || strncmp(target, "pidfd:", 6) == 0)
    return UIPC_KIND_PIDFD;
  return UIPC_KIND_FD;
}

/* retype(obj) -> obj, kind: a descriptor object gets the class the kernel
   says it is ("eventfd", "memfd", "pidfd"; "descriptor" or "socket"
   otherwise) -- for descriptors received with recvmsg, which are wrapped
   without asking (a probe per descriptor would cost the hot path) */
static int ipc_retype(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  if (!o->issock && o->kind == UIPC_KIND_FD) uipc_setkind(L, 1, uipc_probekind(o->fd));
  lua_settop(L, 1);
  lua_pushstring(L, uipc_kindname(o));
  return 2;
}

static int fd_gc(lua_State *L);
static int fd_tostring(lua_State *L);

void uipc_newkind(lua_State *L, int kind, const luaL_Reg *methods, lua_CFunction tostring,
                  int nuv) {
  const char *name = lua_pushfstring(L, "unixipc.%s", uipc_kindnames[kind]);
  luaL_newmetatable(L, name);
  lua_remove(L, -2);
  lua_pushcfunction(L, fd_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, fd_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring ? tostring : fd_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  /* the descriptor methods behind the kind's own, found through __index,
     so methods added to descriptors later are there too */
  lua_createtable(L, 0, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &FDKEY);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "__index");
  lua_pop(L, 1);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "__index");
  kinduv[kind] = nuv;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &KINDKEYS[kind]);
  /* the method table for the Lua layer: _methods.<kind> */
  lua_getfield(L, -1, "_methods");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KINDKEYS[kind]);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, uipc_kindnames[kind]);
  lua_pop(L, 2);
}

/* ---- methods --------------------------------------------------------- */

static int fd_close(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  int err;
  if (!o) return luaL_typeerror(L, 1, uipc_fdclass.name);
  if (o->fd < 0) { /* handed to tofile, or closed: nothing to do, but let go of the path */
    unbind(o, 0);
    lua_pushboolean(L, 1);
    return 1;
  }
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

/* a short name, or "?" */
static const char *nameor(const uipc_Family *fam, int v) {
  const char *n = uipc_nameof(fam, v);
  return n ? n : "?";
}

static int fd_tostring(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (!o) return luaL_typeerror(L, 1, uipc_fdclass.name);
  if (o->fifounknown && o->fd >= 0) {
    struct stat st;
    o->fifounknown = 0;
    o->isfifo = (unsigned char)(fstat(o->fd, &st) == 0 && S_ISFIFO(st.st_mode));
  }
  if (o->fd < 0)
    lua_pushfstring(L, "%s (closed)", uipc_kindname(o));
  else if (o->issock)
    lua_pushfstring(L, "socket (%s %s, fd %d)", nameor(&uipc_afamilies, o->family),
                    nameor(&uipc_socktypes, o->type), o->fd);
  else
    lua_pushfstring(L, "%s (%sfd %d)", uipc_kindnames[o->kind], o->isfifo ? "pipe, " : "", o->fd);
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
  int on = 1, fl;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    on = lua_toboolean(L, 2);
  }
  fl = fcntl(o->fd, F_GETFD);
  if (fl < 0 || fcntl(o->fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC)) < 0)
    return uipc_failerrno(L, "fcntl");
  lua_pushboolean(L, 1);
  return 1;
}

static int fd_dup(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  uipc_Fd *n = o->kind ? uipc_newkindfd(L, o->kind) : uipc_newfd(L, o->issock);
  int fd, i;
  for (i = 1; i <= kinduv[o->kind]; i++) { /* a kind's user values (a pidfd's pid) */
    lua_getiuservalue(L, 1, i);
    lua_setiuservalue(L, -2, i);
  }
  fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return uipc_failerrno(L, "dup");
  *n = *o;
  n->fd = fd;
  n->bound = NULL; /* the path goes with the original */
  return 1;
}

static int write_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int err = 0;
  ssize_t r = uipc_writesome(L, w, o, s, n, 0, &err);
  return uipc_pushwrite(L, "write", r, err);
}

static int sendall_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int flags = uipc_checkflags(L, 3, &uipc_msgflags);
  return uipc_writeall(L, w, o, s, n, flags, o->issock ? "send" : "write");
}

static int read_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  return uipc_pushrecv(L, w, o, uipc_checksize(L, 2, 65536, "size"), 0, 0);
}

static const uipc_Op write_op = {"write", write_body, NULL}, sendall_op = {"send", sendall_body, NULL},
                     read_op = {"read", read_body, NULL};
static int fd_write(lua_State *L) { return uipc_run(L, &write_op); }
static int fd_sendall(lua_State *L) { return uipc_run(L, &sendall_op); }
static int fd_read(lua_State *L) { return uipc_run(L, &read_op); }

static int fd_seek(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  int whence = lua_isnoneornil(L, 2) ? SEEK_CUR : uipc_checkname(L, 2, &uipc_whences);
  lua_Integer off = uipc_optint(L, 3, 0, LUA_MININTEGER, LUA_MAXINTEGER, "offset");
  off_t r = lseek(o->fd, (off_t)off, whence);
  if (r < 0) return uipc_failerrno(L, "lseek");
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
  luaL_Stream *p;
  FILE *f;
  int err;
  uipc_checkmode(L, 2, "r+");
  p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL; /* a closed file until fdopen succeeds */
  p->f = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  uipc_nbresolve(o);
  if (o->onb && (err = uipc_setnb(o, 0)) != 0) return uipc_fail(L, "fcntl", err);
  o->usernb = 0;
  o->timeout = -1;
  f = fdopen(o->fd, mode);
  if (!f) return uipc_failerrno(L, "fdopen");
  p->f = f;
  p->closef = tofile_close;
  o->fd = -1; /* the io file owns it now */
  unbind(o, 0);
  o->handed = 1;
  return 1;
}

/* ---- module functions ------------------------------------------------ */

static int ipc_pipe(lua_State *L) {
  uipc_Fd *r = uipc_newfd(L, 0), *w = uipc_newfd(L, 0);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return uipc_failerrno(L, "pipe");
  r->fd = fds[0];
  w->fd = fds[1];
  r->isfifo = w->isfifo = 1;
  return 2;
}

static int ipc_open(lua_State *L) {
  const char *path = uipc_checkpath(L, 1);
  int flags = uipc_checkmode(L, 2, "r") | O_CLOEXEC;
  lua_Integer perm = uipc_optint(L, 3, 0666, 0, 07777, "permissions");
  uipc_Fd *o = uipc_newfd(L, 0);
  int fd = (int)UIPC_RETRY(open(path, flags, (mode_t)perm));
  if (fd < 0) {
    int err = errno;
    return uipc_failon(L, "open", path, err);
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
  uipc_Fd *o;
  if (fcntl((int)fd, F_GETFD) < 0) return uipc_failerrno(L, "fdopen");
  uipc_wrapfd(L, (int)fd);
  o = uipc_toobj(L, -1);
  if (!o->issock) uipc_setkind(L, -1, uipc_probekind((int)fd)); /* an inherited eventfd... */
  return 1;
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

/* the directory stream of _openfds, closed by __close even when building
   the table raises (out of memory) */
static int dirbox_close(lua_State *L) {
  DIR **box = (DIR **)lua_touserdata(L, 1);
  if (box && *box) {
    closedir(*box);
    *box = NULL;
  }
  return 0;
}

/* _openfds() -> {[fd] = target}: the spec helper's leak check */
static int ipc_openfds(lua_State *L) {
  DIR **box = (DIR **)lua_newuserdatauv(L, sizeof(DIR *), 0), *d;
  struct dirent *e;
  int dfd;
  *box = NULL;
  if (luaL_newmetatable(L, "unixipc.dirbox")) {
    lua_pushcfunction(L, dirbox_close);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__close");
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  if ((d = *box = opendir("/proc/self/fd")) == NULL) return uipc_failerrno(L, "opendir");
  dfd = dirfd(d);
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    char path[64], target[512];
    ssize_t n;
    int fd;
    if (e->d_name[0] == '.') continue;
    fd = atoi(e->d_name);
    if (fd == dfd) continue;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof target - 1);
    if (n < 0) n = 0;
    lua_pushlstring(L, target, (size_t)n);
    lua_rawseti(L, -2, fd);
  }
  return 1; /* the box's __close closes the directory */
}

/* _fd(value) -> the descriptor number of anything uipc_checkfd takes */
static int ipc_fd(lua_State *L) {
  lua_pushinteger(L, uipc_checkfd(L, 1));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"_fd", ipc_fd},
  {"pipe", ipc_pipe},
  {"open", ipc_open},
  {"fdopen", ipc_fdopen},
  {"_openfds", ipc_openfds},
  {"_bound", ipc_bound},
  {"retype", ipc_retype},
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
