/*
 * unixipc — the channel codec: Lua values <-> a frame body (README, Channels).
 *
 * A body is one value: tag byte 0 nil, 1 false, 2 true, 3 integer (<j),
 * 4 float (<d), 5 string (<s4), 6 table (<I4 pair count, then key, value,
 * key, value ...), all little-endian, exactly what string.pack writes for
 * those formats. Tables nest at most 200 deep; metatables are ignored; a
 * subtable met twice is written twice (no sharing); a cycle, a function, a
 * coroutine or a userdata raises and nothing is returned.
 *
 *   core._encode(value [, level]) -> body
 *     raises "bad argument #1 to 'send' (cannot send a function)" and the
 *     like, positioned like error(msg, level) seen from _encode's caller
 *     (default 1; channel's send passes 2, so the error points at its caller)
 *   core._decode(body [, pos]) -> value
 *     one value from body[pos] (default 1) to its very end; a malformed body
 *     raises a message without position ("value cut short", "trailing
 *     bytes", "unknown value tag 9", ...). Counts are checked against the
 *     bytes left before anything is allocated for them, and tables are
 *     preallocated within a budget for the whole body (1 slot per 8 bytes).
 *
 * The encoder writes into its own buffer rather than a luaL_Buffer: the
 * walk keeps tables and keys on the Lua stack between appends, and a
 * luaL_Buffer wants the stack balanced between its operations (its box
 * lives at the top). Ours starts on the C stack and moves to a userdata
 * held at a fixed stack slot when it outgrows it.
 */
#include "private.h"

#include <stdint.h>
#include <string.h>

#define MAXDEPTH 200
#define PATHFAST 32     /* ancestors checked in a C array; deeper ones in a table */
#define ENCINIT 1024    /* bytes of the first buffer, on the C stack */

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STRING, T_TABLE };

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE 1
#else
#define LITTLE 0
#endif

/* ---- encoding ---------------------------------------------------------- */

typedef struct Enc {
  lua_State *L;
  char *p;          /* the buffer: init, or the userdata at boxidx */
  size_t n, cap;
  int boxidx;       /* stack slot kept for the userdata buffer */
  int visited;      /* stack slot of the table of ancestors deeper than PATHFAST (nil until used) */
  int level;        /* error position, as error()'s level seen from _encode's caller */
  const void *path[PATHFAST];
  char init[ENCINIT];
} Enc;

static void encfail(Enc *e, const char *msg) {
  lua_State *L = e->L;
  if (e->level > 0) luaL_where(L, e->level);
  else lua_pushliteral(L, "");
  lua_pushfstring(L, "bad argument #1 to 'send' (%s)", msg);
  lua_concat(L, 2);
  lua_error(L);
}

static char *grow(Enc *e, size_t need) {
  size_t cap = e->cap;
  char *p;
  if (need > (size_t)-1 / 2 - e->n) encfail(e, "value too big to encode");
  while (cap - e->n < need) cap *= 2;
  p = (char *)lua_newuserdatauv(e->L, cap, 0);
  memcpy(p, e->p, e->n);
  lua_replace(e->L, e->boxidx); /* the old box, if any, becomes garbage */
  e->p = p;
  e->cap = cap;
  return p + e->n;
}

/* room for need more bytes, returns where they go */
static inline char *room(Enc *e, size_t need) {
  if (e->cap - e->n < need) return grow(e, need);
  return e->p + e->n;
}

static inline void put32(char *d, uint32_t v) {
  d[0] = (char)(v & 0xff);
  d[1] = (char)((v >> 8) & 0xff);
  d[2] = (char)((v >> 16) & 0xff);
  d[3] = (char)((v >> 24) & 0xff);
}

/* n bytes between memory order and little-endian, either way (the same
   copy: on a big-endian machine both directions reverse) */
static inline void lecopy(void *dst, const void *src, size_t n) {
#if LITTLE
  memcpy(dst, src, n);
#else
  const char *s = (const char *)src;
  char *d = (char *)dst;
  size_t i;
  for (i = 0; i < n; i++) d[i] = s[n - 1 - i];
#endif
}

static void encvalue(Enc *e, int idx, int depth);

static void enctable(Enc *e, int idx, int depth) {
  lua_State *L = e->L;
  const void *me = lua_topointer(L, idx);
  size_t at;
  uint32_t count = 0;
  int i, lim = depth < PATHFAST ? depth : PATHFAST;
  char *d;
  for (i = 0; i < lim; i++)
    if (e->path[i] == me) encfail(e, "cannot send a table that contains itself (cycle)");
  if (depth > PATHFAST && lua_type(L, e->visited) == LUA_TTABLE) {
    int seen = lua_rawgetp(L, e->visited, me) != LUA_TNIL;
    lua_pop(L, 1);
    if (seen) encfail(e, "cannot send a table that contains itself (cycle)");
  }
  if (depth >= MAXDEPTH) {
    char msg[64];
    snprintf(msg, sizeof msg, "tables nested deeper than %d", MAXDEPTH);
    encfail(e, msg);
  }
  luaL_checkstack(L, 6, "tables nested too deeply");
  if (depth < PATHFAST) {
    e->path[depth] = me;
  } else {
    if (lua_type(L, e->visited) != LUA_TTABLE) {
      lua_newtable(L);
      lua_replace(L, e->visited);
    }
    lua_pushboolean(L, 1);
    lua_rawsetp(L, e->visited, me);
  }
  d = room(e, 5);
  d[0] = T_TABLE;
  at = e->n + 1; /* the count, filled in after the pairs */
  e->n += 5;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    encvalue(e, top - 1, depth + 1);
    encvalue(e, top, depth + 1);
    lua_pop(L, 1);
    count++;
  }
  put32(e->p + at, count);
  if (depth >= PATHFAST) {
    lua_pushnil(L);
    lua_rawsetp(L, e->visited, me);
  }
}

static void encvalue(Enc *e, int idx, int depth) {
  lua_State *L = e->L;
  int t = lua_type(L, idx);
  char *d;
  switch (t) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len > 0xffffffffu) encfail(e, "string longer than 4 GiB");
    d = room(e, len + 5);
    d[0] = T_STRING;
    put32(d + 1, (uint32_t)len);
    memcpy(d + 5, s, len);
    e->n += len + 5;
    return;
  }
  case LUA_TNUMBER:
    d = room(e, 9);
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      d[0] = T_INT;
      lecopy(d + 1, &v, sizeof v);
      e->n += 1 + sizeof v;
    } else {
      lua_Number v = lua_tonumber(L, idx);
      double x = (double)v;
      d[0] = T_FLOAT;
      lecopy(d + 1, &x, sizeof x);
      e->n += 1 + sizeof x;
    }
    return;
  case LUA_TBOOLEAN:
    d = room(e, 1);
    d[0] = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
    e->n++;
    return;
  case LUA_TNIL:
    d = room(e, 1);
    d[0] = T_NIL;
    e->n++;
    return;
  case LUA_TTABLE:
    enctable(e, idx, depth);
    return;
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "cannot send a %s", lua_typename(L, t));
    encfail(e, msg);
  }
  }
}

/* _encode(value [, level]) -> body */
static int codec_encode(lua_State *L) {
  Enc e;
  lua_Integer level = luaL_optinteger(L, 2, 1);
  luaL_checkany(L, 1);
  e.L = L;
  e.p = e.init;
  e.n = 0;
  e.cap = sizeof e.init;
  /* error() levels count from _encode's caller; luaL_where's from _encode */
  e.level = level > 0 && level < 1000 ? (int)level : 0;
  lua_settop(L, 1);
  lua_pushnil(L); /* 2: the buffer box */
  lua_pushnil(L); /* 3: the deep ancestors */
  e.boxidx = 2;
  e.visited = 3;
  encvalue(&e, 1, 0);
  lua_pushlstring(L, e.p, e.n);
  return 1;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct Dec {
  lua_State *L;
  const unsigned char *p, *end;
  size_t budget; /* table slots still to preallocate, for the whole body */
} Dec;

static int decfail(lua_State *L, const char *msg) {
  lua_pushstring(L, msg);
  return lua_error(L);
}

static inline uint32_t get32(const unsigned char *s) {
  return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
}

static inline int gettag(Dec *d) {
  if (d->p >= d->end) decfail(d->L, "value cut short");
  return *d->p++;
}

static inline lua_Integer getint(Dec *d) {
  lua_Integer v;
  if ((size_t)(d->end - d->p) < sizeof v) decfail(d->L, "value cut short");
  lecopy(&v, d->p, sizeof v);
  d->p += sizeof v;
  return v;
}

static void decvalue(Dec *d, int tag, int depth);

static void dectable(Dec *d, int depth) {
  lua_State *L = d->L;
  uint32_t count, i;
  size_t pre;
  int t;
  if (depth >= MAXDEPTH) decfail(L, "tables nested too deeply");
  if (d->end - d->p < 4) decfail(L, "value cut short");
  count = get32(d->p);
  d->p += 4;
  /* every pair takes at least two bytes */
  if ((uint64_t)count * 2 > (uint64_t)(d->end - d->p)) decfail(L, "table count beyond the frame");
  if (!lua_checkstack(L, 6)) decfail(L, "tables nested too deeply");
  /* made with its final size, within a budget for the whole body: nested
     tables all claiming the bytes left cannot multiply the allocation (past
     the budget a table grows with the pairs that really come) */
  pre = count < d->budget ? count : d->budget;
  d->budget -= pre;
  if (pre > 0 && *d->p == T_INT) lua_createtable(L, (int)pre, 0);
  else lua_createtable(L, 0, (int)pre);
  t = lua_gettop(L);
  for (i = 0; i < count; i++) {
    int tag = gettag(d);
    if (tag == T_INT) { /* integer key: no key on the stack */
      lua_Integer k = getint(d);
      decvalue(d, gettag(d), depth + 1);
      if (lua_isnil(L, -1)) decfail(L, "invalid table entry");
      if (lua_rawgeti(L, t, k) != LUA_TNIL) decfail(L, "invalid table entry");
      lua_pop(L, 1);
      lua_rawseti(L, t, k);
      continue;
    }
    decvalue(d, tag, depth + 1);
    if (lua_isnil(L, -1) || (tag == T_FLOAT && lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      decfail(L, "invalid table key");
    decvalue(d, gettag(d), depth + 1);
    if (lua_isnil(L, -1)) decfail(L, "invalid table entry");
    lua_pushvalue(L, -2);
    if (lua_rawget(L, t) != LUA_TNIL) decfail(L, "invalid table entry");
    lua_pop(L, 1);
    lua_rawset(L, t);
  }
}

static void decvalue(Dec *d, int tag, int depth) {
  lua_State *L = d->L;
  switch (tag) {
  case T_NIL: lua_pushnil(L); return;
  case T_FALSE: lua_pushboolean(L, 0); return;
  case T_TRUE: lua_pushboolean(L, 1); return;
  case T_INT: lua_pushinteger(L, getint(d)); return;
  case T_FLOAT: {
    double x;
    if (d->end - d->p < 8) decfail(L, "value cut short");
    lecopy(&x, d->p, sizeof x);
    d->p += sizeof x;
    lua_pushnumber(L, (lua_Number)x);
    return;
  }
  case T_STRING: {
    uint32_t len;
    if (d->end - d->p < 4) decfail(L, "value cut short");
    len = get32(d->p);
    d->p += 4;
    if ((uint64_t)len > (uint64_t)(d->end - d->p)) decfail(L, "value cut short");
    lua_pushlstring(L, (const char *)d->p, len);
    d->p += len;
    return;
  }
  case T_TABLE: dectable(d, depth); return;
  default: {
    char msg[40];
    snprintf(msg, sizeof msg, "unknown value tag %d", tag);
    decfail(L, msg);
  }
  }
}

/* _decode(body [, pos]) -> value */
static int codec_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer pos = luaL_optinteger(L, 2, 1);
  Dec d;
  luaL_argcheck(L, pos >= 1 && (lua_Unsigned)pos <= (lua_Unsigned)len + 1, 2, "position out of the string");
  d.L = L;
  d.p = (const unsigned char *)s + (pos - 1);
  d.end = (const unsigned char *)s + len;
  d.budget = (size_t)(d.end - d.p) / 8 + 16; /* a pair of distinct keys takes 6 bytes or more */
  lua_settop(L, 1); /* keeps the body alive under the walk */
  decvalue(&d, gettag(&d), 0);
  if (d.p != d.end) decfail(L, "trailing bytes");
  return 1;
}

static const luaL_Reg codecfuncs[] = {
  {"_encode", codec_encode},
  {"_decode", codec_decode},
  {NULL, NULL},
};

void uipc_open_codec(lua_State *L) {
  luaL_setfuncs(L, codecfuncs, 0);
}
