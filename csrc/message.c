/*
 * Messages: sendmsg / recvmsg with scatter/gather data, descriptor passing
 * (SCM_RIGHTS), credentials (SCM_CREDENTIALS, SO_PEERCRED), and the peer's
 * process as a pidfd (SCM_PIDFD, SO_PEERPIDFD; Linux 6.5).
 *
 * recvmsg is defensive: every cmsg is walked, every received descriptor is
 * close-on-exec (MSG_CMSG_CLOEXEC) and owned at once -- first by a guard
 * whose __close closes whatever no object owns yet, then by the objects
 * that wrap them. A Lua error while building the result leaks nothing.
 */
#include "private.h"

#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* the kernel's per-message limit (include/net/scm.h), not exported to userspace */
#define SCM_MAX_FD 253
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04 /* SO_PASSPIDFD (Linux 6.5): carries a descriptor too */
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

#define STACKBUF 65536 /* recvmsg data up to this size lands on the C stack */
#define STACKIOV 16    /* sendmsg data lists up to this length need no allocation */

/* room for credentials, a pidfd and a full SCM_RIGHTS message */
#define CTRL_MAX (CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) + \
                  CMSG_SPACE(SCM_MAX_FD * sizeof(int)))
#define STACKIOVR 16   /* recvmsg scatter lists up to this length need no allocation */

typedef union {
  struct cmsghdr align;
  char buf[CTRL_MAX];
} ctrlbuf;

static char GUARDMT;  /* registry: the guards' metatable */

/*
 * Received descriptors nobody owns yet. One guard per Lua state is reused
 * (no allocation on the hot path); busy marks it live, so a recvmsg nested
 * in it (from a finalizer) takes a fresh one.
 */
typedef struct {
  const uipc_Class *cls; /* &guardclass: its __gc can be reached with debug.getupvalue */
  int n, busy;
  int fd[CTRL_MAX / sizeof(int)];
} fdguard;

static const uipc_Class guardclass = {"unixipc descriptor guard"};

static fdguard *toguard(lua_State *L, int idx) {
  return (fdguard *)uipc_toclass(L, idx, &guardclass, sizeof(fdguard));
}

static int guard_close(lua_State *L) {
  fdguard *g = toguard(L, 1);
  int i;
  if (!g) return 0;
  for (i = 0; i < g->n; i++)
    if (g->fd[i] >= 0) close(g->fd[i]);
  g->n = 0;
  g->busy = 0;
  return 0;
}

static fdguard *newguard(lua_State *L) {
  fdguard *g = (fdguard *)lua_newuserdatauv(L, sizeof(fdguard), 0);
  g->cls = &guardclass;
  g->n = g->busy = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &GUARDMT);
  lua_setmetatable(L, -2);
  return g;
}

/*
 * The names of the info fields live in the methods' upvalues: a raw set
 * with an interned key skips the string lookup lua_setfield does on every
 * call.
 */
static const char *const keynames[] = {"truncated", "ctruncated", "flags", "from", "cred", "pid",
                                       "uid", "gid", "pidfd", NULL};
enum { K_TRUNC = 1, K_CTRUNC, K_FLAGS, K_FROM, K_CRED, K_PID, K_UID, K_GID, K_PIDFD, K_GUARD, K_END };

/* push a free guard: the shared one (upvalue K_GUARD), or a fresh one when it is in use */
static fdguard *pushguard(lua_State *L) {
  fdguard *g;
  lua_pushvalue(L, lua_upvalueindex(K_GUARD));
  g = toguard(L, -1); /* ours unless debug.setupvalue replaced it */
  if (g && !g->busy) return g;
  lua_pop(L, 1);
  return newguard(L);
}

/* push the interned key k, for a lua_rawset once its value is pushed */
static void pushkey(lua_State *L, int k) {
  lua_pushvalue(L, lua_upvalueindex(k));
}

/* self: an open socket (uipc_checksock's messages) */
static uipc_Fd *checkself(lua_State *L) {
  uipc_Fd *o = uipc_toobj(L, 1);
  if (!o || !o->issock) luaL_typeerror(L, 1, "unixipc socket");
  if (o->fd < 0) luaL_error(L, "attempt to use a closed socket");
  return o;
}

/* ---- sendmsg ---------------------------------------------------------- */

static lua_Integer credfield(lua_State *L, int t, int idx, const char *k, lua_Integer max,
                             lua_Integer def) {
  lua_Integer v = def;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    const char *what = lua_pushfstring(L, "cred.%s", k);
    v = uipc_intarg(L, -2, t, 0, max, what);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return v;
}

/* sendmsg's options: data 3, fds 4, cred 5, flags 6, to 7 (and 8, the iov box) */
static const uipc_Opt sendopts[] = {UIPC_OPT("data"), UIPC_OPT("fds"), UIPC_OPT("cred"),
                                    UIPC_OPT("flags"), UIPC_OPT("to"), {NULL, 0}};

/*
 * sendmsg{data = str | {str, ...}, fds = {...}, cred = true | {pid=, uid=, gid=},
 *         to = addr, flags = ...} -> bytes sent
 */
static int sendmsg_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = checkself(L);
  struct iovec iovstack[STACKIOV], *iov = iovstack;
  int fds[SCM_MAX_FD];
  unsigned char kinds[SCM_MAX_FD]; /* UIPC_REF_* of each entry */
  ctrlbuf ctrl;
  struct msghdr msg;
  struct ucred uc;
  struct sockaddr_storage ss;
  size_t total = 0, clen = 0;
  lua_Integer nfds = 0, niov = 0, i;
  int flags, hascred = 0, err = 0, extra, foreign = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  memset(&msg, 0, sizeof msg);
  if (lua_gettop(L) > 2) lua_settop(L, 2);
  lua_settop(L, 8); /* 3..7: the options (see sendopts), 8: the iov box */
  uipc_options(L, 2, 2, sendopts, 3);

  /*
   * Everything that can run Lua code (metamethods of the cred and address
   * tables, a foreign descriptor's getfd, finalizers during allocations)
   * comes first: once pointers into the data strings are taken, nothing
   * runs that could drop those strings.
   */
  /* cred at 5 */
  switch (lua_type(L, 5)) {
    case LUA_TNIL: break;
    case LUA_TBOOLEAN:
      if (!lua_toboolean(L, 5)) break;
      hascred = 1;
      uc.pid = getpid();
      uc.uid = getuid();
      uc.gid = getgid();
      break;
    case LUA_TTABLE:
      hascred = 1;
      uc.pid = (pid_t)credfield(L, 2, 5, "pid", INT_MAX, getpid());
      uc.uid = (uid_t)credfield(L, 2, 5, "uid", UINT_MAX, getuid());
      uc.gid = (gid_t)credfield(L, 2, 5, "gid", UINT_MAX, getgid());
      break;
    default:
      return uipc_argerror(L, 2, "cred must be true or a {pid=, uid=, gid=} table, got %s",
                           luaL_typename(L, 5));
  }

  flags = uipc_flagsarg(L, 6, 2, &uipc_msgflags);

  /* to at 7 */
  if (!lua_isnil(L, 7)) {
    int rc;
    socklen_t alen;
    rc = uipc_toaddr(L, 7, 2, o->family, o->type, &ss, &alen, 0);
    if (rc) return uipc_addrfail(L, "sendmsg", rc);
    msg.msg_name = &ss;
    msg.msg_namelen = alen;
  }

  /* fds at 4: a foreign object's getfd runs Lua, so before the data */
  switch (lua_type(L, 4)) {
    case LUA_TNIL: break;
    case LUA_TTABLE:
      nfds = (lua_Integer)lua_rawlen(L, 4);
      if (nfds > SCM_MAX_FD) {
        char m[80];
        snprintf(m, sizeof m, "too many descriptors (%d, at most %d per message)", (int)nfds,
                 SCM_MAX_FD);
        return uipc_failmsg(L, "sendmsg", m, EINVAL);
      }
      for (i = 0; i < nfds; i++) {
        uipc_Ref r;
        lua_rawgeti(L, 4, i + 1);
        fds[i] = uipc_tofd(L, -1, 2, (int)i + 1, &r);
        lua_pop(L, 1);
        kinds[i] = (unsigned char)r.kind;
        if (r.kind == UIPC_REF_FOREIGN) foreign = (int)i + 1;
      }
      /* a foreign getfd ran Lua code, which may have closed an earlier
         entry: its number, taken before, could by now name another file.
         The entries before the last foreign one are read again (objects,
         io files and integers run no Lua) and must give the same number */
      for (i = 0; i < foreign - 1; i++) {
        uipc_Ref r;
        if (kinds[i] == UIPC_REF_FOREIGN) continue;
        lua_rawgeti(L, 4, i + 1);
        if (uipc_tofd(L, -1, 2, (int)i + 1, &r) != fds[i] || r.kind != kinds[i])
          return uipc_argerror(L, 2, "fds[%d] changed while the descriptors were collected",
                               (int)i + 1);
        lua_pop(L, 1);
      }
      break;
    default:
      return uipc_argerror(L, 2, "fds must be a list of descriptors, got %s",
                           luaL_typename(L, 4));
  }


  /* data at 3 (kept on the stack: it anchors the strings) */
  switch (lua_type(L, 3)) {
    case LUA_TNIL: break;
    case LUA_TSTRING:
      niov = 1;
      iov[0].iov_base = (void *)lua_tolstring(L, 3, &iov[0].iov_len);
      total = iov[0].iov_len;
      break;
    case LUA_TTABLE:
      niov = (lua_Integer)lua_rawlen(L, 3);
      if (niov > STACKIOV) {
        iov = (struct iovec *)lua_newuserdatauv(L, (size_t)niov * sizeof *iov, 0);
        lua_replace(L, 8); /* 8 is the iov box */
      }
      /* each string stays on the stack: a finalizer run while the call
         waits could take it out of the table, never off the stack */
      luaL_checkstack(L, (int)niov + 8, "too many data strings");
      for (i = 0; i < niov; i++) {
        if (lua_rawgeti(L, 3, i + 1) != LUA_TSTRING)
          uipc_argerror(L, 2, "data[%d] must be a string, got %s", (int)i + 1,
                        luaL_typename(L, -1));
        iov[i].iov_base = (void *)lua_tolstring(L, -1, &iov[i].iov_len);
        total += iov[i].iov_len;
      }
      break;
    default:
      return uipc_argerror(L, 2, "data must be a string or a list of strings, got %s",
                           luaL_typename(L, 3));
  }

  /*
   * A stream socket has no message boundary to carry ancillary data alone:
   * the kernel sends nothing and drops the descriptors without a word.
   */
  if (total == 0 && (nfds > 0 || hascred) && o->type == SOCK_STREAM)
    return uipc_argerror(L, 2, "a stream socket needs at least one data byte to carry "
                               "descriptors or credentials");

  msg.msg_iov = iov;
  msg.msg_iovlen = (size_t)niov;
  if (hascred || nfds > 0) {
    struct cmsghdr *c;
    clen = (hascred ? CMSG_SPACE(sizeof uc) : 0) +
           (nfds > 0 ? CMSG_SPACE((size_t)nfds * sizeof(int)) : 0);
    memset(ctrl.buf, 0, clen); /* the padding the kernel may read */
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = clen;
    clen = 0;
    c = CMSG_FIRSTHDR(&msg);
    if (hascred) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_CREDENTIALS;
      c->cmsg_len = CMSG_LEN(sizeof uc);
      memcpy(CMSG_DATA(c), &uc, sizeof uc);
      clen += CMSG_SPACE(sizeof uc);
      c = (struct cmsghdr *)(ctrl.buf + clen);
    }
    if (nfds > 0) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
      memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
      clen += CMSG_SPACE((size_t)nfds * sizeof(int));
    }
    msg.msg_controllen = clen;
  }

  extra = uipc_callflags(L, o, 1);
  for (;;) {
    ssize_t r = sendmsg(o->fd, &msg, flags | extra | MSG_NOSIGNAL);
    if (r >= 0) {
      lua_pushinteger(L, (lua_Integer)r);
      return 1;
    }
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR) err = uipc_block(L, w, o, err, POLLOUT);
    if (err) return uipc_pushwrite(L, "sendmsg", -1, err);
  }
}

static const uipc_Op sendmsg_op = {"sendmsg", sendmsg_body, NULL};
static int sock_sendmsg(lua_State *L) { return uipc_run(L, &sendmsg_op); }

/* ---- recvmsg ---------------------------------------------------------- */

/* the recvmsg options: size 3, maxfds 4, flags 5 */
static const uipc_Opt recvopts[] = {UIPC_OPT("size"), UIPC_OPT("maxfds"), UIPC_OPT("flags"),
                                    {NULL, 0}};

/*
 * recvmsg([{size = 65536, maxfds = 253, flags = ...}]) -> data, fds, info
 * info = {truncated =, ctruncated =, flags =, from = addr?, cred = {pid, uid, gid}?,
 *         pidfd = handle? (SCM_PIDFD, with setoption("passpidfd", true))}
 * size may be a list of buffer sizes {n1, n2, ...}: the data is scattered
 * over them (readv's iovecs) and comes back as a list of strings, one per
 * buffer, each holding what the kernel put there ("" past the end).
 */
static int recvmsg_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = checkself(L);
  char stackbuf[STACKBUF], *buf = stackbuf;
  ctrlbuf ctrl;
  struct msghdr msg;
  struct iovec iovstack[STACKIOVR], *iov = iovstack;
  struct sockaddr_storage ss;
  struct ucred uc;
  struct cmsghdr *c;
  fdguard *g;
  size_t size = 65536, maxfds = SCM_MAX_FD, niov = 1, k;
  int flags = 0, hascred = 0, ctrunc, gidx, i, n, extra, scatter = 0, pidfd = -1, pidx = -1;
  ssize_t r;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2) && uipc_options(L, 2, 2, recvopts, 3)) { /* (no walk without options) */
    if (lua_istable(L, 3)) { /* scatter: a list of buffer sizes */
      scatter = 1;
      niov = lua_rawlen(L, 3);
      if (niov < 1 || niov > 1024)
        return uipc_argerror(L, 2, "option 'size' must be a size or a list of 1 to 1024 sizes, got %d sizes",
                             (int)niov);
    } else if (!lua_isnil(L, 3))
      size = (size_t)uipc_intarg(L, 3, 2, 0, LUA_MAXINTEGER, "option 'size'");
    if (!lua_isnil(L, 4)) maxfds = (size_t)uipc_intarg(L, 4, 2, 0, LUA_MAXINTEGER, "option 'maxfds'");
    flags = uipc_flagsarg(L, 5, 2, &uipc_msgflags);
  }
  lua_settop(L, 3); /* 3: the size list, when scattering */
  if (maxfds > SCM_MAX_FD) maxfds = SCM_MAX_FD; /* the kernel never sends more */
  g = pushguard(L);
  gidx = lua_gettop(L);
  if (niov > STACKIOVR) iov = (struct iovec *)lua_newuserdatauv(L, niov * sizeof *iov, 0);
  if (scatter) { /* the sizes, read once into iov: a finalizer cannot change them after */
    size = 0;
    for (k = 0; k < niov; k++) {
      const char *what;
      lua_rawgeti(L, 3, (lua_Integer)k + 1);
      what = lua_pushfstring(L, "option 'size'[%d]", (int)k + 1);
      iov[k].iov_len = (size_t)uipc_intarg(L, -2, 2, 0, 0x7fffffff, what);
      size += iov[k].iov_len;
      lua_pop(L, 2);
    }
  }
  if (size > STACKBUF) buf = (char *)lua_newuserdatauv(L, size, 0);
  if (scatter) {
    char *p = buf;
    for (k = 0; k < niov; k++) {
      iov[k].iov_base = p;
      p += iov[k].iov_len;
    }
  }
  luaL_checkstack(L, 8, NULL); /* nothing below may fail for want of stack */
  extra = uipc_callflags(L, o, 1);

  for (;;) {
    int err;
    memset(&msg, 0, sizeof msg);
    if (!scatter) {
      iov[0].iov_base = buf;
      iov[0].iov_len = size;
    }
    msg.msg_iov = iov;
    msg.msg_iovlen = niov;
    msg.msg_name = &ss;
    msg.msg_namelen = sizeof ss;
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) +
                         (maxfds ? CMSG_SPACE(maxfds * sizeof(int)) : 0);
    r = recvmsg(o->fd, &msg, flags | extra | MSG_CMSG_CLOEXEC);
    if (r >= 0) break;
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR)
      err = uipc_block(L, w, o, err, (flags & MSG_OOB) ? POLLPRI : POLLIN);
    if (err) return uipc_waitfail(L, "recvmsg", err);
  }

  /* collect: no Lua call until every descriptor sits in the guard */
  ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (msg.msg_controllen > 0) {
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_RIGHTS || c->cmsg_type == SCM_PIDFD) {
        size_t k, cnt = c->cmsg_len > CMSG_LEN(0) ? (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
        for (k = 0; k < cnt; k++) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
          if (c->cmsg_type == SCM_RIGHTS && (size_t)g->n < maxfds)
            g->fd[g->n++] = fd;
          else if (c->cmsg_type == SCM_PIDFD && pidfd < 0)
            pidfd = fd; /* the sender's process (info.pidfd) */
          else { /* beyond maxfds (the slack in the buffer) */
            if (c->cmsg_type == SCM_RIGHTS) ctrunc = 1;
            close(fd);
          }
        }
      } else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof uc)) {
        memcpy(&uc, CMSG_DATA(c), sizeof uc);
        hascred = 1;
      }
    }
  }
  n = g->n;
  if (pidfd >= 0) { /* held by the guard too, after the SCM_RIGHTS ones */
    pidx = g->n;
    g->fd[g->n++] = pidfd;
  }
  if (g->n > 0) {
    g->busy = 1;
    lua_toclose(L, gidx);
  }
  if (n == 0 && r == 0 && size > 0 &&
             (o->type == SOCK_STREAM || (o->type == SOCK_SEQPACKET && uipc_seqeof(o->fd)))) {
    /* end of stream: a stream never carries empty messages; a seqpacket
       socket may, so ask whether the peer is gone (with SO_PASSCRED the
       kernel attaches credentials even at EOF, so the control data cannot
       tell) */
    if (pidx >= 0) {
      g->n = 0;
      close(pidfd);
      lua_closeslot(L, gidx);
    }
    lua_pushnil(L);
    lua_pushliteral(L, "eof");
    return 2;
  }

  if ((size_t)r > size) r = (ssize_t)size; /* MSG_TRUNC reports the real length */
  if (scatter) {
    size_t left = (size_t)r;
    lua_createtable(L, (int)niov, 0);
    for (k = 0; k < niov; k++) {
      size_t got = left < iov[k].iov_len ? left : iov[k].iov_len;
      lua_pushlstring(L, (const char *)iov[k].iov_base, got);
      lua_rawseti(L, -2, (lua_Integer)k + 1);
      left -= got;
    }
  } else
    lua_pushlstring(L, buf, (size_t)r);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    uipc_wrapfd(L, g->fd[i]); /* may raise before owning: the guard still holds it */
    g->fd[i] = -1;
    lua_rawseti(L, -2, i + 1);
  }
  lua_createtable(L, 0, 3 + (msg.msg_namelen > 0) + hascred + (pidx >= 0));
  pushkey(L, K_TRUNC);
  lua_pushboolean(L, (msg.msg_flags & MSG_TRUNC) != 0);
  lua_rawset(L, -3);
  pushkey(L, K_CTRUNC);
  lua_pushboolean(L, ctrunc);
  lua_rawset(L, -3);
  pushkey(L, K_FLAGS);
  lua_pushinteger(L, msg.msg_flags & ~MSG_CMSG_CLOEXEC);
  lua_rawset(L, -3);
  if (msg.msg_namelen > 0) {
    pushkey(L, K_FROM);
    uipc_pushaddr(L, (struct sockaddr *)&ss, msg.msg_namelen);
    lua_rawset(L, -3);
  }
  if (hascred) {
    pushkey(L, K_CRED);
    lua_createtable(L, 0, 3);
    pushkey(L, K_PID);
    lua_pushinteger(L, uc.pid);
    lua_rawset(L, -3);
    pushkey(L, K_UID);
    lua_pushinteger(L, uc.uid);
    lua_rawset(L, -3);
    pushkey(L, K_GID);
    lua_pushinteger(L, uc.gid);
    lua_rawset(L, -3);
    lua_rawset(L, -3);
  }
  if (pidx >= 0) {
    uipc_Fd *h;
    pushkey(L, K_PIDFD);
    h = uipc_newpidfd(L, hascred ? uc.pid : 0); /* may raise: the guard holds the pidfd */
    h->fd = g->fd[pidx];
    g->fd[pidx] = -1;
    lua_rawset(L, -3);
  }
  if (g->n > 0) {
    g->n = 0;
    lua_closeslot(L, gidx);
  }
  return 3;
}

static const uipc_Op recvmsg_op = {"recvmsg", recvmsg_body, NULL};
static int sock_recvmsg(lua_State *L) { return uipc_run(L, &recvmsg_op); }

static char CREDMT, CREDSOCKS; /* registry: the peercred tables' metatable; table -> socket */

/*
 * A peercred table's pidfd is made when it is first read: a descriptor is
 * opened only for callers who want one (and must close it). It is
 * SO_PEERPIDFD of the socket the table came from, read while that socket
 * is open: the peer process as of connect/socketpair, which its pid number
 * cannot be mistaken for once reused. nil where the kernel has no
 * SO_PEERPIDFD (before 6.5) or no longer has the process.
 */
static int cred_index(lua_State *L) {
  uipc_Fd *o, *h;
  lua_Integer pid;
  socklen_t len = sizeof(int);
  int fd = -1;
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "pidfd") != 0) return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CREDSOCKS);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  o = uipc_toobj(L, -1);
  if (!o || !o->issock || o->fd < 0) return 0;
  lua_pushliteral(L, "pid");
  lua_rawget(L, 1);
  pid = lua_tointeger(L, -1);
  h = uipc_newpidfd(L, (pid_t)pid);
  if (getsockopt(o->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0 || fd < 0) return 0;
  h->fd = fd; /* the kernel's pidfds are close-on-exec */
  lua_pushliteral(L, "pidfd");
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* peercred() -> {pid=, uid=, gid=, pidfd = handle} of the peer at
   connect/socketpair time (pidfd: see cred_index); nil, "peercred: no peer
   credentials", ENOTCONN without a unix peer */
static int sock_peercred(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  struct ucred uc;
  socklen_t len = sizeof uc;
  if (getsockopt(o->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) return uipc_failerrno(L, "getsockopt");
  /* Linux answers pid 0 for a socket with no unix peer (unconnected, inet) */
  if (uc.pid == 0) return uipc_failmsg(L, "peercred", "no peer credentials", ENOTCONN);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, uc.pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, uc.uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, uc.gid);
  lua_setfield(L, -2, "gid");
  if (o->family == AF_UNIX) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CREDSOCKS);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CREDMT);
    lua_setmetatable(L, -2);
  }
  return 1;
}

static const luaL_Reg sockmethods[] = {
  {"sendmsg", sock_sendmsg},
  {"recvmsg", sock_recvmsg},
  {"peercred", sock_peercred},
  {NULL, NULL}
};

void uipc_open_message(lua_State *L) {
  const char *const *k;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, cred_index);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CREDMT);
  lua_createtable(L, 0, 0); /* weak keys: a table forgotten lets its socket go */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CREDSOCKS);
  /* socket methods, with the keys and the shared guard as upvalues */
  lua_getfield(L, -1, "_methods");
  lua_getfield(L, -1, "socket");
  /* the guards' class first: the shared guard is the last upvalue */
  lua_newtable(L);
  lua_pushcfunction(L, guard_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, guard_close);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &GUARDMT);
  for (k = keynames; *k; k++) lua_pushstring(L, *k);
  newguard(L);
  luaL_setfuncs(L, sockmethods, K_END - 1);
  lua_pop(L, 2);
  lua_pushinteger(L, SCM_MAX_FD);
  lua_setfield(L, -2, "SCM_MAX_FD");
}
