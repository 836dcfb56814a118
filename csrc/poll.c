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

#define STACKFDS 64

/* a foreign object (LuaSocket, cqueues, ...) that answers getfd() or fileno() */
static int foreign(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) return 1;
  if (t != LUA_TUSERDATA) return 0;
  if (luaL_getmetafield(L, idx, "__index") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

/* what owns a key's descriptor, so a pollset can tell when it was closed */
enum { REF_NONE, REF_OBJ, REF_FILE };

/* descriptor of a poll key (errors name argument argn): ours (checked
   first: the common case), an integer, an io file, or a foreign object; the
   messages are uipc_checkfd's. *kind and *ref say what owns it (may be NULL). */
static inline __attribute__((always_inline)) int keyfdref(lua_State *L, int idx, int argn,
                                                         int *kind, void **ref) {
  uipc_Fd *o = uipc_toobj(L, idx);
  luaL_Stream *p;
  lua_Integer fd;
  if (o) {
    if (o->fd < 0) uipc_argerror(L, argn, "attempt to use a closed %s", o->issock ? "socket" : "descriptor");
    if (kind) *kind = REF_OBJ, *ref = o;
    return o->fd;
  }
  if (kind) *kind = REF_NONE, *ref = NULL;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (!lua_isinteger(L, idx)) uipc_argerror(L, argn, "descriptor must be an integer");
    fd = lua_tointeger(L, idx);
    if (fd < 0 || fd > INT_MAX) uipc_argerror(L, argn, "descriptor must not be negative");
    return (int)fd;
  }
  if ((p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE)) != NULL) {
    if (p->closef == NULL) uipc_argerror(L, argn, "attempt to use a closed file");
    if (kind) *kind = REF_FILE, *ref = p;
    return fileno(p->f);
  }
  idx = lua_absindex(L, idx);
  if (!foreign(L, idx))
    uipc_argerror(L, argn, "descriptor expected: unixipc object, io file, integer or object with "
                  "getfd/fileno, got %s", luaL_typename(L, idx));
  if (lua_getfield(L, idx, "getfd") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, idx, "fileno");
  }
  if (!lua_isfunction(L, -1))
    uipc_argerror(L, argn, "poll key has no getfd or fileno method");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  {
    int isnum; /* LuaSocket's getfd answers a float such as 5.0 */
    fd = lua_tointegerx(L, -1, &isnum);
    if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
      uipc_argerror(L, argn, "poll key's getfd/fileno gave %s, not a descriptor",
                    luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  if (fd < 0 || fd > INT_MAX) uipc_argerror(L, argn, "poll key is closed");
  return (int)fd;
}

static int keyfd(lua_State *L, int idx) {
  return keyfdref(L, idx, 1, NULL, NULL);
}

static short checkeventsarg(lua_State *L, int idx, int argn) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
  short ev = 0;
  if (!*s)
    uipc_argerror(L, argn, "poll events must be \"r\", \"w\" or \"rw\", got %s", luaL_typename(L, idx));
  for (; *s; s++) {
    switch (*s) {
      case 'r': ev |= POLLIN; break;
      case 'w': ev |= POLLOUT; break;
      case 'p': ev |= POLLPRI; break;
      default: uipc_argerror(L, argn, "unknown poll event '%c'", *s);
    }
  }
  return ev;
}

static short checkevents(lua_State *L, int idx) {
  return checkeventsarg(L, idx, 1);
}

/* poll(2) until it answers, EINTR retried with the time left: r >= 0, or
   -1 with *perr. Timeout 0 reads no clock; a wait longer than a poll(2)
   call takes goes on in steps (uipc_pollms), math.huge for ever. */
static int pollwait(struct pollfd *fds, nfds_t n, double timeout, int *perr) {
  double deadline = timeout > 0 ? uipc_now() + timeout : -1;
  for (;;) {
    int r = poll(fds, n, timeout == 0 ? 0 : uipc_pollms(deadline));
    if (r > 0 || (r == 0 && (timeout == 0 || uipc_now() >= deadline))) return r;
    if (r < 0 && errno != EINTR) {
      *perr = errno;
      return -1;
    }
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
static int ipc_poll(lua_State *L) {
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
    fds[i].fd = keyfd(L, k);
    if (ev == NULL || ev != lastev) {
      lastbits = checkevents(L, k + 1);
      lastev = ev;
    }
    fds[i].events = lastbits;
    fds[i].revents = 0;
  }
  if ((r = pollwait(fds, (nfds_t)n, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
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
  unsigned char kind;  /* REF_* */
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
  int kind, fd, i, err;
  void *ref;
  short ev;
  luaL_checkany(L, 2);
  lua_settop(L, 3);
  fd = keyfdref(L, 2, 2, &kind, &ref);
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
  ps->ents[i].ref = ref;
  ps->ents[i].kind = (unsigned char)kind;
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
  if (e->kind == REF_OBJ) return ((const uipc_Fd *)e->ref)->fd != ps->fds[i].fd;
  if (e->kind == REF_FILE) return ((const luaL_Stream *)e->ref)->closef == NULL;
  return 0;
}

/* wait([timeout]) -> {[key] = events} for the ready keys, {} on timeout */
static int pset_wait(lua_State *L) {
  PollSet *ps = checkset(L);
  double timeout = uipc_optseconds(L, 2, "timeout");
  int i, r, err = 0;
  if (ps->ndead > 0) timeout = 0; /* they are ready: "n" */
  if ((r = pollwait(ps->fds, (nfds_t)ps->n, timeout, &err)) < 0) return uipc_fail(L, "poll", err);
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
    if (!ps->ents[i].dead && ps->ents[i].kind != REF_NONE && gone(ps, i)) {
      bury(ps, i); /* whatever now holds the number is not this key */
      re = POLLNVAL;
    }
    lua_rawgeti(L, 2, i + 1);
    lua_pushlstring(L, buf, letters(re, buf));
    lua_rawset(L, 3);
  }
  return 1;
}

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
