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
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define STACKFDS 64

/* the events a key waits for: letters r (in), w (out), p (urgent) */
static short checkeventsarg(lua_State *L, int idx, int argn) {
  size_t n;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
  short ev = 0;
  if (s && n > 0 && strspn(s, "rwp") == n) {
    for (; *s; s++) ev |= *s == 'r' ? POLLIN : *s == 'w' ? POLLOUT : POLLPRI;
    return ev;
  }
  if (s) uipc_argerror(L, argn, "poll events must be letters r, w and p (\"r\", \"w\", \"rw\"), got '%s'",
                      uipc_shown(L, s, n));
  uipc_argerror(L, argn, "poll events must be letters r, w and p (\"r\", \"w\", \"rw\"), got %s",
                luaL_typename(L, idx));
  return 0;
}

/*
 * Inside a task: the scheduler is handed one descriptor that stands for the
 * whole set, an epoll instance holding every entry (readable as soon as
 * one of them is ready); the call runs again afterwards and polls with a
 * zero timeout. The epoll descriptor is owned by a to-be-closed object, so
 * it is closed however the wait ends. 0 (try again) or an errno.
 */
static int setwait(lua_State *L, uipc_Wait *w, struct pollfd *fds, nfds_t n) {
  uipc_Fd *ep = uipc_newfd(L, 0);
  int idx = lua_gettop(L), err = 0;
  nfds_t i;
  lua_toclose(L, idx);
  if ((ep->fd = epoll_create1(EPOLL_CLOEXEC)) < 0) return errno;
  for (i = 0; i < n && !err; i++) {
    struct epoll_event ev;
    if (fds[i].fd < 0) continue;
    memset(&ev, 0, sizeof ev);
    ev.events = ((fds[i].events & POLLIN) ? EPOLLIN : 0) | ((fds[i].events & POLLOUT) ? EPOLLOUT : 0) |
                ((fds[i].events & POLLPRI) ? EPOLLPRI : 0);
    if (epoll_ctl(ep->fd, EPOLL_CTL_ADD, fds[i].fd, &ev) == 0) continue;
    if (errno == EEXIST) { /* the same descriptor twice: wait for both interests */
      nfds_t k;
      for (k = 0; k < i; k++)
        if (fds[k].fd == fds[i].fd) ev.events |= (fds[k].events & POLLIN ? EPOLLIN : 0) |
                                                 (fds[k].events & POLLOUT ? EPOLLOUT : 0) |
                                                 (fds[k].events & POLLPRI ? EPOLLPRI : 0);
      if (epoll_ctl(ep->fd, EPOLL_CTL_MOD, fds[i].fd, &ev) == 0) continue;
    }
    if (errno == EPERM) break; /* a regular file: always ready, poll again */
    if (errno != EBADF) err = errno; /* a closed number: poll(2) reports it */
    else break;
  }
  if (!err && i == n) err = uipc_wait(L, w, ep->fd, POLLIN);
  lua_closeslot(L, idx);
  return err == ETIMEDOUT ? 0 : err;
}

/* poll(2) until it answers or w's deadline passes (timeout 0: at once),
   EINTR retried with the time left: r >= 0, or -1 with *perr. A wait
   longer than a poll(2) call takes goes on in steps (uipc_pollms); inside
   a task it goes to the scheduler (setwait). */
static int pollwait(lua_State *L, uipc_Wait *w, struct pollfd *fds, nfds_t n, double timeout,
                    int *perr) {
  int task;
  if (!w->resumed) w->deadline = timeout > 0 ? uipc_now() + timeout : -1;
  task = timeout != 0 && uipc_intask(L);
  for (;;) {
    int r = poll(fds, n, timeout == 0 || task ? 0 : uipc_pollms(w->deadline));
    if (r > 0 || (r == 0 && (timeout == 0 || (w->deadline >= 0 && uipc_now() >= w->deadline))))
      return r;
    if (r < 0 && errno != EINTR) {
      *perr = errno;
      return -1;
    }
    if (r == 0 && task && (*perr = setwait(L, w, fds, n)) != 0) return -1;
  }
}

/* result letters for revents into buf (at least 7 bytes): the length */
static size_t letters(short re, char *buf) {
  size_t k = 0;
  if (re & POLLIN) buf[k++] = 'r';
  if (re & POLLPRI) buf[k++] = 'p';
  if (re & POLLOUT) buf[k++] = 'w';
  if (re & POLLERR) buf[k++] = 'e';
  if (re & POLLHUP) buf[k++] = 'h';
  if (re & POLLNVAL) buf[k++] = 'n';
  return k;
}

/*
 * One walk over the set copies each key and value onto the Lua stack; the
 * pollfd array is built from there, and the ready keys are found by index
 * afterwards. A set too large for the Lua stack (about 500,000 keys, more
 * than poll(2) takes under any usual RLIMIT_NOFILE) fails with EINVAL.
 */
static int poll_body(lua_State *L, uipc_Wait *w) {
  struct pollfd stackfds[STACKFDS], *fds = stackfds;
  double timeout = uipc_optseconds(L, 2, "timeout");
  const char *lastev = NULL;
  short lastbits = 0;
  int n = 0, i, r, res, err = 0;
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
    fds[i].fd = uipc_tofd(L, k, 1, 0, NULL);
    if (ev == NULL || ev != lastev) {
      lastbits = checkeventsarg(L, k + 1, 1);
      lastev = ev;
    }
    fds[i].events = lastbits;
    fds[i].revents = 0;
  }
  if ((r = pollwait(L, w, fds, (nfds_t)n, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
  lua_createtable(L, 0, r);
  res = lua_gettop(L);
  for (i = 0; r > 0; i++, r--) { /* r entries have revents set */
    char buf[8];
    while (i < n && fds[i].revents == 0) i++;
    if (i >= n) break;
    lua_pushvalue(L, base + 2 * i);
    lua_pushlstring(L, buf, letters(fds[i].revents, buf));
    lua_rawset(L, res);
  }
  return 1;
}

static const uipc_Op poll_op = {"poll", poll_body};
static int ipc_poll(lua_State *L) { return uipc_run(L, &poll_op); }

/* ---- pollset: a registered set, like Python's select.poll ------------ */

/*
 * The pollfd array lives in C and is handed to poll(2) as it is; entry i
 * belongs to the key at keys[i + 1]. Two user values: 1 maps key -> index
 * (1-based), 2 is the list index -> key, so add and remove are O(1)
 * (remove moves the last entry into the hole) and wait() touches Lua only
 * for the ready keys.
 *
 * A key that is a unixipc object or an io file is checked for being closed
 * when poll(2) reports its number (only the ready ones: no walk per call).
 * poll(2) only knows the number, which the next open may reuse; a closed
 * key is reported "n", never as the readiness of whatever now holds its
 * number, and from then on "n" on every wait() (which then does not block)
 * until removed. A closed key whose number is free is reported at once
 * (poll(2) says POLLNVAL); one whose number was reused shows up when that
 * descriptor is ready. Integers and foreign objects are numbers read at
 * add(): they report whatever holds the number.
 */
#define PSET_MT "unixipc.pollset"
#define UV_INDEX 1
#define UV_KEYS 2

typedef struct {
  void *ref;           /* uipc_Fd * or luaL_Stream * (kept alive as a key), or NULL */
  unsigned char kind;  /* UIPC_REF_* */
  unsigned char dead;  /* its owner was closed: reported "n", polled as -1 */
} PollEnt;

/* two arrays of n entries (cap allocated): what poll(2) takes, and the owners */
typedef struct {
  const uipc_Class *cls; /* &psetclass */
  struct pollfd *fds;
  PollEnt *ents;
  int n, cap, ndead;
  int closed;
} PollSet;

static const uipc_Class psetclass = {"unixipc pollset"};

/* the pollset metatable, the upvalue of pollset() */
#define PSET_META lua_upvalueindex(1)

static PollSet *topset(lua_State *L, int idx) {
  return (PollSet *)uipc_toclass(L, idx, &psetclass, sizeof(PollSet));
}

static PollSet *checkset(lua_State *L) {
  PollSet *ps = topset(L, 1);
  if (!ps) luaL_typeerror(L, 1, psetclass.name);
  if (ps->closed) luaL_error(L, "attempt to use a closed pollset");
  return ps;
}

static void freeset(PollSet *ps) {
  free(ps->fds);
  free(ps->ents);
  ps->fds = NULL;
  ps->ents = NULL;
  ps->n = ps->cap = ps->ndead = 0;
}

/* room for one more entry: 0 or ENOMEM */
static int grow(PollSet *ps) {
  int cap;
  struct pollfd *f;
  PollEnt *e;
  if (ps->n < ps->cap) return 0;
  if (ps->cap > INT_MAX / 2) return ENOMEM;
  cap = ps->cap ? ps->cap * 2 : 16;
  f = (struct pollfd *)realloc(ps->fds, (size_t)cap * sizeof *f);
  if (!f) return ENOMEM;
  ps->fds = f;
  e = (PollEnt *)realloc(ps->ents, (size_t)cap * sizeof *e);
  if (!e) return ENOMEM;
  ps->ents = e;
  ps->cap = cap;
  return 0;
}

/* pollset() -> an empty set */
static int ipc_pollset(lua_State *L) {
  PollSet *ps = (PollSet *)lua_newuserdatauv(L, sizeof(PollSet), 2);
  ps->cls = &psetclass;
  ps->fds = NULL;
  ps->ents = NULL;
  ps->n = ps->cap = ps->ndead = 0;
  ps->closed = 0;
  lua_pushvalue(L, PSET_META);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_INDEX);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_KEYS);
  return 1;
}

/*
 * Index of the key at idx (index map at imap, key list at keys), or -1. An
 * entry is believed only if the list agrees: a memory error in the middle
 * of an add can leave the map ahead of the set. No allocation here.
 */
static int findkey(lua_State *L, PollSet *ps, int imap, int keys, int idx) {
  lua_Integer i;
  int same;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, imap) != LUA_TNUMBER) {
    lua_pop(L, 1);
    return -1;
  }
  i = lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  if (i < 0 || i >= ps->n) return -1;
  lua_rawgeti(L, keys, i + 1);
  same = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  return same ? (int)i : -1;
}

/*
 * add(key, events) -> true: register key, or change what it waits for.
 *
 * Lua code can run in the middle (a foreign key's getfd, finalizers during
 * the allocations of a new key's table entries) and may even use this set:
 * the C arrays are touched only after the last call that can run Lua, and
 * through the set's current state.
 */
static int pset_add(lua_State *L) {
  PollSet *ps = checkset(L);
  int fd, i, err;
  uipc_Ref ref;
  short ev;
  luaL_checkany(L, 2);
  lua_settop(L, 3);
  fd = uipc_tofd(L, 2, 2, 0, &ref);
  ev = checkeventsarg(L, 3, 3);
  lua_getiuservalue(L, 1, UV_INDEX); /* 4 */
  lua_getiuservalue(L, 1, UV_KEYS);  /* 5 */
  if (ps->closed || !lua_istable(L, 4)) return luaL_error(L, "attempt to use a closed pollset");
  if ((i = findkey(L, ps, 4, 5, 2)) >= 0) {
    if (ps->ents[i].dead) ps->ndead--;
  } else {
    lua_pushvalue(L, 2);
    lua_rawseti(L, 5, ps->n + 1);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, ps->n + 1);
    lua_rawset(L, 4);
    if (ps->closed) return luaL_error(L, "attempt to use a closed pollset");
    if ((err = grow(ps)) != 0) return uipc_fail(L, "pollset", err);
    i = ps->n++;
  }
  ps->fds[i].fd = fd;
  ps->fds[i].events = ev;
  ps->fds[i].revents = 0;
  ps->ents[i].ref = ref.p;
  ps->ents[i].kind = (unsigned char)ref.kind;
  ps->ents[i].dead = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* remove(key) -> true, or false when it was not registered */
static int pset_remove(lua_State *L) {
  PollSet *ps = checkset(L);
  int i, last;
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, UV_INDEX); /* 3 */
  lua_getiuservalue(L, 1, UV_KEYS);  /* 4 */
  if (lua_isnil(L, 2) || (i = findkey(L, ps, 3, 4, 2)) < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* from here on, only stores into existing entries: no allocation, no Lua code */
  last = ps->n - 1;
  if (ps->ents[i].dead) ps->ndead--;
  if (i != last) { /* the last entry fills the hole */
    ps->fds[i] = ps->fds[last];
    ps->ents[i] = ps->ents[last];
    lua_rawgeti(L, 4, last + 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 4, i + 1);
    lua_pushinteger(L, i + 1);
    lua_rawset(L, 3);
  }
  lua_pushnil(L);
  lua_rawseti(L, 4, last + 1);
  lua_pushvalue(L, 2);
  lua_pushnil(L);
  lua_rawset(L, 3);
  ps->n--;
  lua_pushboolean(L, 1);
  return 1;
}

/* entry i's owner was closed: poll(2) skips the negative number, wait() says "n" */
static void bury(PollSet *ps, int i) {
  ps->ents[i].dead = 1;
  ps->fds[i].fd = -1;
  ps->ndead++;
}

/* entry i (alive) belongs to an object or file closed since add() */
static int gone(const PollSet *ps, int i) {
  const PollEnt *e = &ps->ents[i];
  if (e->kind == UIPC_REF_OBJ) return ((const uipc_Fd *)e->ref)->fd != ps->fds[i].fd;
  if (e->kind == UIPC_REF_FILE) return ((const luaL_Stream *)e->ref)->closef == NULL;
  return 0;
}

/* wait([timeout]) -> {[key] = events} for the ready keys, {} on timeout */
static int pset_wait_body(lua_State *L, uipc_Wait *w) {
  PollSet *ps = checkset(L);
  double timeout = uipc_optseconds(L, 2, "timeout");
  int i, r, err = 0;
  if (ps->ndead > 0) timeout = 0; /* they are ready: "n" */
  if ((r = pollwait(L, w, ps->fds, (nfds_t)ps->n, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
  if (ps->ndead > 0)
    for (i = 0; i < ps->n; i++)
      if (ps->ents[i].dead) {
        ps->fds[i].revents = POLLNVAL;
        r++;
      }
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_KEYS); /* 2 */
  lua_createtable(L, 0, r);
  /*
   * r entries have revents set. The allocations below may run finalizers
   * that use this set: its arrays and count are read afresh each time.
   */
  for (i = 0; r > 0; i++, r--) {
    const struct pollfd *fds = ps->fds;
    int n = ps->n;
    char buf[8];
    short re;
    while (i < n && fds[i].revents == 0) i++;
    if (i >= n) break;
    re = fds[i].revents;
    if (!ps->ents[i].dead && (ps->ents[i].kind == UIPC_REF_OBJ || ps->ents[i].kind == UIPC_REF_FILE) && gone(ps, i)) {
      bury(ps, i); /* whatever now holds the number is not this key */
      re = POLLNVAL;
    }
    lua_rawgeti(L, 2, i + 1);
    lua_pushlstring(L, buf, letters(re, buf));
    lua_rawset(L, 3);
  }
  return 1;
}

static const uipc_Op pset_wait_op = {"poll", pset_wait_body};
static int pset_wait(lua_State *L) { return uipc_run(L, &pset_wait_op); }

static int pset_count(lua_State *L) {
  lua_pushinteger(L, checkset(L)->n);
  return 1;
}

/* close(): forget every key; again: true */
static int pset_close(lua_State *L) {
  PollSet *ps = topset(L, 1);
  if (!ps) return luaL_typeerror(L, 1, psetclass.name);
  if (!ps->closed) {
    ps->closed = 1;
    freeset(ps);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, UV_INDEX);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, UV_KEYS);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int pset_gc(lua_State *L) {
  PollSet *ps = topset(L, 1);
  if (ps) {
    ps->closed = 1;
    freeset(ps);
  }
  return 0;
}

static int pset_tostring(lua_State *L) {
  PollSet *ps = topset(L, 1);
  if (!ps) return luaL_typeerror(L, 1, psetclass.name);
  if (ps->closed)
    lua_pushliteral(L, "pollset (closed)");
  else
    lua_pushfstring(L, "pollset (%d descriptor%s)", ps->n, ps->n == 1 ? "" : "s");
  return 1;
}

static const luaL_Reg psetmethods[] = {
  {"add", pset_add},
  {"remove", pset_remove},
  {"wait", pset_wait},
  {"count", pset_count},
  {"close", pset_close},
  {NULL, NULL}
};

static const luaL_Reg psetmeta[] = {
  {"__len", pset_count},
  {"__close", pset_close},
  {"__gc", pset_gc},
  {"__tostring", pset_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"poll", ipc_poll},
  {NULL, NULL}
};

static const luaL_Reg psetfuncs[] = {
  {"pollset", ipc_pollset},
  {NULL, NULL}
};

void uipc_open_poll(lua_State *L) {
  int mod = lua_gettop(L), mt;
  luaL_setfuncs(L, funcs, 0);
  luaL_newmetatable(L, PSET_MT);
  mt = lua_gettop(L);
  luaL_setfuncs(L, psetmeta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, psetmethods, 0);
  lua_setfield(L, mt, "__index");
  lua_pushvalue(L, mod);
  lua_pushvalue(L, mt);
  luaL_setfuncs(L, psetfuncs, 1);
  lua_settop(L, mod);
}
