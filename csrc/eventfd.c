/*
 * Counters shared by processes: ipc.eventfd([initval [, {semaphore =,
 * nonblock =}]]) over eventfd(2). e:add(n) adds to the kernel's 64-bit
 * counter; e:take() waits until it is non-zero and takes it all (counter
 * mode) or one (semaphore mode). Readable while the counter is non-zero,
 * so it plugs into poll, pollsets, the loop and cqueues; a descriptor like
 * any other, so it crosses fork and channels.
 *
 * An object is a uipc_Fd of kind eventfd: close, settimeout,
 * setnonblocking, dup and the rest are the descriptor methods. take and
 * add wait the way read and write do (uipc_block): the object's timeout,
 * EAGAIN when non-blocking, the scheduler inside a task.
 */
#include "private.h"

#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const uipc_Opt opts[] = {UIPC_OPT("semaphore"), UIPC_OPT("nonblock"), {NULL, 0}};

/* eventfd([initval [, {semaphore = false, nonblock = false}]]) -> e */
static int ipc_eventfd(lua_State *L) {
  lua_Integer init = uipc_optint(L, 1, 0, 0, 0xffffffffLL, "initval");
  int flags = EFD_CLOEXEC, nb, fd;
  uipc_Fd *o;
  lua_settop(L, 2);
  uipc_options(L, 2, 2, opts, 3);
  if (uipc_optbool(L, 3, 2, "semaphore", 0)) flags |= EFD_SEMAPHORE;
  nb = uipc_optbool(L, 4, 2, "nonblock", 0);
  if (nb) flags |= EFD_NONBLOCK;
  o = uipc_newkindfd(L, UIPC_KIND_EVENTFD);
  fd = eventfd((unsigned)init, flags);
  if (fd < 0) return uipc_failerrno(L, "eventfd");
  o->fd = fd;
  o->usernb = o->onb = (unsigned char)nb;
  return 1;
}

/* e:take() -> n: the whole count (counter mode) or 1 (semaphore mode),
   waiting while the counter is 0. A count above math.maxinteger (only
   reachable by adding twice that much) comes back as a float. */
static int take_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_EVENTFD);
  /* inside a task, EAGAIN rather than a read(2) or write(2) that blocks:
     the object keeps behaving as blocking (uipc_block waits it out) */
  if (uipc_intask(L)) uipc_tasknb(o);
  for (;;) {
    uint64_t v;
    int err;
    ssize_t r = read(o->fd, &v, sizeof v);
    if (r == (ssize_t)sizeof v) {
      if (v > (uint64_t)LUA_MAXINTEGER)
        lua_pushnumber(L, (lua_Number)v);
      else
        lua_pushinteger(L, (lua_Integer)v);
      return 1;
    }
    err = r < 0 ? errno : EIO;
    if ((err = uipc_block(L, w, o, err, POLLIN)) != 0) return uipc_waitfail(L, "read", err);
  }
}

/* e:add([n]) -> true: adds n (default 1) to the counter, waiting if the sum
   would pass the kernel's maximum (2^64 - 2) until a take makes room */
static int add_body(lua_State *L, uipc_Wait *w) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_EVENTFD);
  uint64_t v = (uint64_t)uipc_optint(L, 2, 1, 0, LUA_MAXINTEGER, "n");
  /* inside a task, EAGAIN rather than a read(2) or write(2) that blocks:
     the object keeps behaving as blocking (uipc_block waits it out) */
  if (uipc_intask(L)) uipc_tasknb(o);
  for (;;) {
    int err;
    ssize_t r = write(o->fd, &v, sizeof v);
    if (r == (ssize_t)sizeof v) {
      lua_pushboolean(L, 1);
      return 1;
    }
    err = r < 0 ? errno : EIO;
    if ((err = uipc_block(L, w, o, err, POLLOUT)) != 0) return uipc_waitfail(L, "write", err);
  }
}

static const uipc_Op take_op = {"read", take_body, NULL}, add_op = {"write", add_body, NULL};
static int eventfd_take(lua_State *L) { return uipc_run(L, &take_op); }
static int eventfd_add(lua_State *L) { return uipc_run(L, &add_op); }

static const luaL_Reg methods[] = {
  {"take", eventfd_take},
  {"add", eventfd_add},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"eventfd", ipc_eventfd},
  {NULL, NULL}
};

void uipc_open_eventfd(lua_State *L) {
  uipc_newkind(L, UIPC_KIND_EVENTFD, methods, NULL, 0);
  luaL_setfuncs(L, funcs, 0);
}
