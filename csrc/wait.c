/*
 * Where every call waits. A call that would block either blocks in
 * poll(2) here, or -- inside a task of a scheduler -- hands the wait to
 * that scheduler and runs again once the descriptor is ready or the
 * deadline has passed. The C core never decides anything else about
 * waiting; the read and write loops every domain uses are built on it.
 *
 * The hand-off. A scheduler (lua/unixipc/loop.lua, lua/unixipc/cqueues.lua)
 * installs one waiter function with core._setwaiter(fn). A call that must
 * wait while the running coroutine can yield calls it, through lua_callk,
 * as fn(fd, events, deadline): fd -1 for a plain sleep, events "r", "w",
 * "rw" or "p", deadline on ipc.monotime()'s clock or nil. The waiter
 * answers false at once when the coroutine is none of its tasks (the call
 * then polls as usual), or yields the task and returns true once woken.
 * The C frames are gone by then: the call's continuation restores its
 * arguments and its uipc_Wait (deadline, progress), kept on the Lua stack
 * under the waiter, and runs the call's body from the start. A body is
 * therefore written to be re-entered: everything it did before waiting is
 * either undone by the failed system call or recorded in w->done.
 */
#include "private.h"

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char WAITERKEY; /* registry: the scheduler's waiter, when one is installed */

double uipc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int uipc_pollms(double deadline) {
  double left;
  if (deadline < 0) return -1;
  left = deadline - uipc_now();
  if (left <= 0) return 0;
  if (left > 86400) return 86400 * 1000; /* a day at a time: the caller loops */
  return (int)ceil(left * 1000);
}

void uipc_nap(double secs) {
  struct timespec ts;
  if (secs > 86400) secs = 86400; /* the caller loops */
  ts.tv_sec = (time_t)secs;
  ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL); /* EINTR: the caller computes what is left */
}

/* ---- the scheduler hand-off ---------------------------------------- */

int uipc_haswaiter(lua_State *L) {
  int t = lua_rawgetp(L, LUA_REGISTRYINDEX, &WAITERKEY);
  lua_pop(L, 1);
  return t == LUA_TFUNCTION;
}

/* an io file at idx that has been closed */
static int fileclosed(lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  return p && p->closef == NULL;
}

/*
 * The continuation of a call suspended in uipc_wait: under the waiter's
 * answer lie the call's state (nargs, deadline, done, aux). If the call's object
 * was closed while it waited (by another task), the call fails as the
 * system would on a closed descriptor; otherwise its body runs again.
 */
static int resumek(lua_State *L, int status, lua_KContext ctx) {
  const uipc_Op *op = (const uipc_Op *)ctx;
  uipc_Fd *o;
  uipc_Wait w;
  (void)status;
  w.op = op;
  w.nargs = (int)lua_tointeger(L, -5);
  w.deadline = lua_tonumber(L, -4);
  w.done = lua_tointeger(L, -3);
  w.aux = lua_tointeger(L, -2);
  w.resumed = 1;
  lua_settop(L, w.nargs);
  if (op->closed ? op->closed(L)
                 : ((o = uipc_toobj(L, 1)) != NULL && o->fd < 0) || fileclosed(L, 1))
    return uipc_fail(L, op->name, EBADF);
  return op->body(L, &w);
}

static const char *evnames[] = {"", "r", "w", "rw", "p", "rp", "wp", "rwp"};

/* hand the wait (until `until`, -1 for ever) to the scheduler: returns only
   when it did not take it (1: it waited itself, retry; 0: not a task, poll) */
static int handoff(lua_State *L, uipc_Wait *w, int fd, short events, double until) {
  int took;
  luaL_checkstack(L, 8, NULL);
  lua_pushinteger(L, w->nargs);
  lua_pushnumber(L, w->deadline);
  lua_pushinteger(L, w->done);
  lua_pushinteger(L, w->aux);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &WAITERKEY);
  lua_pushinteger(L, fd);
  lua_pushstring(L, evnames[((events & POLLIN) ? 1 : 0) | ((events & POLLOUT) ? 2 : 0) |
                            ((events & POLLPRI) ? 4 : 0)]);
  if (until >= 0)
    lua_pushnumber(L, until);
  else
    lua_pushnil(L);
  lua_callk(L, 3, 1, (lua_KContext)w->op, resumek);
  took = lua_toboolean(L, -1);
  lua_pop(L, 5);
  return took;
}

/* poll(2) on one descriptor (or sleep, fd < 0) until ready or deadline */
static int pollwait(int fd, short events, double deadline) {
  struct pollfd p;
  if (fd < 0) {
    for (;;) {
      double left = deadline - uipc_now();
      if (deadline < 0) left = 86400;
      if (left <= 0) return ETIMEDOUT;
      uipc_nap(left);
    }
  }
  p.fd = fd;
  p.events = events;
  for (;;) {
    int r = poll(&p, 1, uipc_pollms(deadline));
    if (r > 0) return 0;
    if (r == 0 && uipc_now() >= deadline) return ETIMEDOUT;
    if (r < 0 && errno != EINTR) return errno;
  }
}

int uipc_waituntil(lua_State *L, uipc_Wait *w, int fd, short events, double until) {
  if (until >= 0 && uipc_now() >= until) return ETIMEDOUT;
  if (uipc_intask(L) && handoff(L, w, fd, events, until)) return 0;
  return pollwait(fd, events, until);
}

int uipc_wait(lua_State *L, uipc_Wait *w, int fd, short events) {
  return uipc_waituntil(L, w, fd, events, w->deadline);
}

void uipc_pause(lua_State *L, uipc_Wait *w, double secs) {
  if (uipc_intask(L) && handoff(L, w, -1, 0, uipc_now() + secs)) return;
  uipc_nap(secs);
}

int uipc_block(lua_State *L, uipc_Wait *w, uipc_Fd *o, int err, short events) {
  if (err == EINTR) return 0;
  if (err != EAGAIN && err != EWOULDBLOCK) return err;
  uipc_nbresolve(o);
  if (o->usernb) return err;
  if (o->timeout >= 0 && w->deadline < 0) w->deadline = uipc_now() + o->timeout;
  return uipc_wait(L, w, o->fd, events);
}

int uipc_waitfail(lua_State *L, const char *op, int err) {
  if (err == ETIMEDOUT) return uipc_timeout(L);
  return uipc_fail(L, op, err);
}

/* core._setwaiter(fn | nil) -> the previous waiter: install the
   scheduler's waiter (a second scheduler chains to the first) */
static int ipc_setwaiter(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &WAITERKEY);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &WAITERKEY);
  return 1;
}

/* ---- time ------------------------------------------------------------- */

/* monotime() -> seconds from CLOCK_MONOTONIC, for deadlines in Lua */
static int ipc_monotime(lua_State *L) {
  lua_pushnumber(L, uipc_now());
  return 1;
}

/* sleep(seconds): the time is slept whatever signals arrive; in a task,
   the other tasks run meanwhile */
static int sleep_body(lua_State *L, uipc_Wait *w) {
  if (!w->resumed) {
    double t = uipc_optseconds(L, 1, "seconds");
    if (t < 0) return uipc_argerror(L, 1, "number of seconds expected, got no value");
    w->deadline = uipc_now() + t;
  }
  while (uipc_wait(L, w, -1, 0) == 0) {
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const uipc_Op sleep_op = {"sleep", sleep_body, NULL};

static int ipc_sleep(lua_State *L) {
  return uipc_run(L, &sleep_op);
}

/* ---- reads and writes ----------------------------------------------------- */

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

/* a wrapped non-socket: is it a pipe or FIFO (writes must not raise SIGPIPE)? */
static void fiforesolve(uipc_Fd *o) {
  struct stat st;
  if (!o->fifounknown || o->fd < 0) return;
  o->fifounknown = 0;
  o->isfifo = (unsigned char)(fstat(o->fd, &st) == 0 && S_ISFIFO(st.st_mode));
}

ssize_t uipc_rawwrite(uipc_Fd *o, const char *buf, size_t n, int flags) {
  if (o->issock) return send(o->fd, buf, n, flags | MSG_NOSIGNAL);
  if (o->fifounknown) fiforesolve(o);
  if (o->isfifo) return nosigpipe_write(o->fd, buf, n);
  return write(o->fd, buf, n);
}

/* the non-socket half of uipc_callflags (see private.h) */
void uipc_tasknb(uipc_Fd *o) {
  uipc_nbresolve(o);
  if (!o->onb) uipc_setnb(o, 1);
}

ssize_t uipc_writesome(lua_State *L, uipc_Wait *w, uipc_Fd *o, const char *buf, size_t n,
                       int flags, int *perr) {
  int extra = uipc_callflags(L, o, 1);
  for (;;) {
    ssize_t r = uipc_rawwrite(o, buf, n, flags | extra);
    int err;
    if (r >= 0) return r;
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR) err = uipc_block(L, w, o, err, POLLOUT);
    if ((*perr = err) != 0) return -1;
  }
}

int uipc_pushwrite(lua_State *L, const char *op, ssize_t r, int err) {
  if (r >= 0) {
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
  }
  return uipc_waitfail(L, op, err);
}

int uipc_writeall(lua_State *L, uipc_Wait *w, uipc_Fd *o, const char *s, size_t n, int flags,
                  const char *op) {
  int err = 0, nret;
  while ((size_t)w->done < n) {
    ssize_t r = uipc_writesome(L, w, o, s + w->done, n - (size_t)w->done, flags, &err);
    if (r < 0) {
      nret = uipc_pushwrite(L, op, r, err);
      lua_pushinteger(L, w->done);
      return nret + 1;
    }
    w->done += r;
  }
  lua_pushboolean(L, 1);
  return 1;
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

/*
 * read(2) / recv / recvfrom into a new string. Up to 64 KiB lands in a
 * stack buffer, so a call allocates nothing but its result.
 */
#define STACKBUF 65536
int uipc_pushrecv(lua_State *L, uipc_Wait *w, uipc_Fd *o, size_t n, int flags, int how) {
  static const char *const ops[] = {"read", "recv", "recvfrom"};
  char stackbuf[STACKBUF];
  struct sockaddr_storage ss;
  socklen_t slen = 0;
  luaL_Buffer b;
  char *p = stackbuf;
  ssize_t r;
  int extra;
  if (n == 0 && how < 2) { /* nothing asked, nothing read: a zero-length recv may block */
    lua_pushliteral(L, "");
    return 1;
  }
  extra = uipc_callflags(L, o, how > 0);
  if (n > STACKBUF) p = luaL_buffinitsize(L, &b, n);
  for (;;) {
    int err;
    slen = sizeof ss;
    if (how == 0)
      r = read(o->fd, p, n);
    else if (how == 1)
      r = recv(o->fd, p, n, flags | extra);
    else
      r = recvfrom(o->fd, p, n, flags | extra, (struct sockaddr *)&ss, &slen);
    if (r >= 0) break;
    err = errno;
    if (!(flags & MSG_DONTWAIT) || err == EINTR)
      err = uipc_block(L, w, o, err, (flags & MSG_OOB) ? POLLPRI : POLLIN);
    if (err) return uipc_waitfail(L, ops[how], err);
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

static const luaL_Reg funcs[] = {
  {"sleep", ipc_sleep},
  {"monotime", ipc_monotime},
  {"_setwaiter", ipc_setwaiter},
  {NULL, NULL}
};

void uipc_open_wait(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
