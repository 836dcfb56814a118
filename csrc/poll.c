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

/* a key that is a unixipc object or an io file, closed */
static int keyclosed(lua_State *L, int idx) {
  uipc_Fd *o = uipc_toobj(L, idx);
  luaL_Stream *p;
  if (o) return o->fd < 0;
  p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  return p && p->closef == NULL;
}

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

/* what pollwait polls: a pollfd array of ours (ipc.poll), or a poll set's,
   read afresh after anything that can run Lua (the set may change or be
   closed by a finalizer, or by another task) */
typedef struct PollSet PollSet;
typedef struct Polled {
  struct pollfd *fds;
  nfds_t n;
  PollSet *ps;
} Polled;

static int refresh(Polled *pd);

static short epolled(short ev) {
  return (short)(((ev & POLLIN) ? EPOLLIN : 0) | ((ev & POLLOUT) ? EPOLLOUT : 0) |
                 ((ev & POLLPRI) ? EPOLLPRI : 0));
}

/* the longest one hand-off of a set lasts: epoll forgets a key closed
   meanwhile without a word, so the set is polled again at least this often */
#define SETSLICE 1.0

/*
 * Inside a task: the scheduler is handed one descriptor that stands for the
 * whole set, an epoll instance holding every entry (readable as soon as
 * one of them is ready); the call polls again afterwards with a zero
 * timeout. The epoll descriptor is owned by a to-be-closed object, so it
 * is closed however the wait ends. A descriptor epoll refuses (a regular
 * file: poll(2) answers for it at once) is left out; with none left the
 * call just sleeps. 0 (poll again) or an errno.
 */
static int setwait(lua_State *L, uipc_Wait *w, Polled *pd) {
  uipc_Fd *ep = uipc_newfd(L, 0); /* may run finalizers: the set is read after */
  int idx = lua_gettop(L), err = 0, added = 0;
  double until = uipc_now() + SETSLICE;
  nfds_t i;
  lua_toclose(L, idx);
  if ((ep->fd = epoll_create1(EPOLL_CLOEXEC)) < 0) return errno;
  if ((err = refresh(pd)) != 0) return err;
  for (i = 0; i < pd->n && !err; i++) {
    struct pollfd *f = &pd->fds[i];
    struct epoll_event ev;
    if (f->fd < 0) continue;
    memset(&ev, 0, sizeof ev);
    ev.events = (uint32_t)epolled(f->events);
    if (epoll_ctl(ep->fd, EPOLL_CTL_ADD, f->fd, &ev) == 0) {
      added++;
      continue;
    }
    if (errno == EEXIST) { /* the same descriptor twice: wait for both interests */
      nfds_t k;
      for (k = 0; k < i; k++)
        if (pd->fds[k].fd == f->fd) ev.events |= (uint32_t)epolled(pd->fds[k].events);
      if (epoll_ctl(ep->fd, EPOLL_CTL_MOD, f->fd, &ev) == 0) continue;
    }
    if (errno != EPERM && errno != EBADF) err = errno; /* EPERM: a file; EBADF: poll(2) says n */
  }
  if (!err) {
    if (w->deadline >= 0 && w->deadline < until) until = w->deadline;
    err = uipc_waituntil(L, w, added ? ep->fd : -1, POLLIN, until);
  }
  lua_closeslot(L, idx);
  return err == ETIMEDOUT ? 0 : err;
}

/* poll(2) until it answers or w's deadline passes (timeout 0: at once),
   EINTR retried with the time left: r >= 0, or -1 with *perr. A wait
   longer than a poll(2) call takes goes on in steps (uipc_pollms); inside
   a task it goes to the scheduler (setwait). */
static int pollwait(lua_State *L, uipc_Wait *w, Polled *pd, double timeout, int *perr) {
  int task;
  if (!w->resumed) w->deadline = timeout > 0 ? uipc_now() + timeout : -1;
  task = timeout != 0 && uipc_intask(L);
  for (;;) {
    int r;
    if ((*perr = refresh(pd)) != 0) return -1;
    r = poll(pd->fds, pd->n, timeout == 0 || task ? 0 : uipc_pollms(w->deadline));
    if (r > 0 || (r == 0 && (timeout == 0 || (w->deadline >= 0 && uipc_now() >= w->deadline))))
      return r;
    if (r < 0 && errno != EINTR) {
      *perr = errno;
      return -1;
    }
    if (r == 0 && task && (*perr = setwait(L, w, pd)) != 0) return -1;
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
    if (w->resumed && keyclosed(L, k)) { /* closed by another task while this one waited */
      fds[i].fd = -1;
      fds[i].events = POLLNVAL; /* marks it: reported "n" below, at once */
      fds[i].revents = 0;
      timeout = 0;
      continue;
    }
    fds[i].fd = uipc_tofd(L, k, 1, -1, NULL);
    if (ev == NULL || ev != lastev) {
      lastbits = checkeventsarg(L, k + 1, 1);
      lastev = ev;
    }
    fds[i].events = lastbits;
    fds[i].revents = 0;
  }
  {
    Polled pd = {fds, (nfds_t)n, NULL};
    if ((r = pollwait(L, w, &pd, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
  }
  if (w->resumed)
    for (i = 0; i < n; i++)
      if (fds[i].fd < 0 && fds[i].events == POLLNVAL) {
        fds[i].revents = POLLNVAL;
        r++;
      }
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

static const uipc_Op poll_op = {"poll", poll_body, NULL};
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
struct PollSet {
  const uipc_Class *cls; /* &psetclass */
  struct pollfd *fds;
  PollEnt *ents;
  int n, cap, ndead;
  int closed;
};

/* a poll set's arrays as they are now; EBADF once it is closed */
static int refresh(Polled *pd) {
  if (!pd->ps) return 0;
  if (pd->ps->closed) return EBADF;
  pd->fds = pd->ps->fds;
  pd->n = (nfds_t)pd->ps->n;
  return 0;
}

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
  fd = uipc_tofd(L, 2, 2, -1, &ref);
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
  {
    Polled pd = {NULL, 0, ps};
    if ((r = pollwait(L, w, &pd, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
  }
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

static int pset_closed(lua_State *L) {
  PollSet *ps = topset(L, 1);
  return ps && ps->closed;
}

static const uipc_Op pset_wait_op = {"poll", pset_wait_body, pset_closed};
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
