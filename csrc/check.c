/*
 * Errors and argument checks: the one place that decides how a failure
 * and a misuse read. Failures return nil, "op: message", errno; misuse
 * raises "bad argument #N to 'fn' (...)" naming the function the user
 * called, with integer ranges stated, unknown options and flags named.
 */
#include "private.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>

/* ---- failures -------------------------------------------------------- */

int uipc_failmsg(lua_State *L, const char *op, const char *msg, int err) {
  lua_pushnil(L);
  if (op)
    lua_pushfstring(L, "%s: %s", op, msg);
  else
    lua_pushstring(L, msg);
  lua_pushinteger(L, err);
  return 3;
}

int uipc_fail(lua_State *L, const char *op, int err) {
  return uipc_failmsg(L, op, strerror(err), err);
}

int uipc_failerrno(lua_State *L, const char *op) {
  int err = errno;
  return uipc_fail(L, op, err);
}

int uipc_failon(lua_State *L, const char *op, const char *what, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", op, what, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

int uipc_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  lua_pushinteger(L, ETIMEDOUT);
  return 3;
}

int uipc_boolresult(lua_State *L, int r, const char *op) {
  if (r < 0) return uipc_failerrno(L, op);
  lua_pushboolean(L, 1);
  return 1;
}

int uipc_pathresult(lua_State *L, int r, const char *op, const char *path) {
  if (r < 0) {
    int err = errno;
    return uipc_failon(L, op, path, err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- misuse ------------------------------------------------------------ */

int uipc_argerror(lua_State *L, int argn, const char *fmt, ...) {
  va_list ap;
  const char *msg;
  va_start(ap, fmt);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  luaL_argerror(L, argn, msg);
  __builtin_unreachable();
}

/* s[0..n) for a message, a NUL shown as \0 (a C string would stop there) */
const char *uipc_shown(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  size_t i;
  if (!memchr(s, '\0', n)) return lua_pushlstring(L, s, n);
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    if (s[i])
      luaL_addchar(&b, s[i]);
    else
      luaL_addstring(&b, "\\0");
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* what a wrong value was: "a float", "-1", "string" */
static const char *gotwhat(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) return lua_pushfstring(L, "%I", lua_tointeger(L, idx));
  if (lua_type(L, idx) == LUA_TNUMBER) return lua_pushfstring(L, "%f", lua_tonumber(L, idx));
  return luaL_typename(L, idx);
}

lua_Integer uipc_intarg(lua_State *L, int idx, int argn, lua_Integer min, lua_Integer max,
                        const char *what) {
  lua_Integer v;
  if (lua_isinteger(L, idx) && (v = lua_tointeger(L, idx)) >= min && v <= max) return v;
  uipc_argerror(L, argn, "%s must be an integer from %I to %I, got %s", what, min, max,
                gotwhat(L, idx));
  return 0;
}

lua_Integer uipc_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min, lua_Integer max,
                        const char *what) {
  return lua_isnoneornil(L, idx) ? def : uipc_intarg(L, idx, idx, min, max, what);
}

size_t uipc_checksize(lua_State *L, int idx, lua_Integer def, const char *what) {
  lua_Integer n;
  if (lua_isinteger(L, idx) && (n = lua_tointeger(L, idx)) >= 0) return (size_t)n; /* hot */
  if (lua_isnoneornil(L, idx)) return (size_t)def;
  return (size_t)uipc_intarg(L, idx, idx, 0, LUA_MAXINTEGER, what);
}

double uipc_secondsarg(lua_State *L, int idx, int argn, const char *what) {
  double t;
  if (lua_isnoneornil(L, idx)) return -1;
  if (lua_type(L, idx) != LUA_TNUMBER)
    uipc_argerror(L, argn, "%s must be a number of seconds or nil, got %s", what,
                  luaL_typename(L, idx));
  t = lua_tonumber(L, idx);
  if (!(t >= 0)) uipc_argerror(L, argn, "%s must not be negative, got %s", what, gotwhat(L, idx));
  return t;
}

const char *uipc_checkpath(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (strlen(s) != n) uipc_argerror(L, idx, "path contains a NUL byte");
  return s;
}

/* fopen's modes: r w a, then + (read and write), b (ignored), x (with w: O_EXCL) */
int uipc_checkmode(lua_State *L, int idx, const char *def) {
  size_t len = strlen(def);
  const char *mode = lua_isnoneornil(L, idx) ? def : luaL_checklstring(L, idx, &len), *m = mode;
  int fl;
  if (strlen(mode) != len) goto bad;
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
  return fl;
bad:
  uipc_argerror(L, idx, "invalid mode '%s' (expected r, w or a, then + b x)", mode);
  return 0;
}

/* ---- descriptors ------------------------------------------------------- */

/* a foreign object (LuaSocket, cqueues, ...): a table or a userdata with methods */
static int foreign(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) return 1;
  if (t != LUA_TUSERDATA) return 0;
  if (luaL_getmetafield(L, idx, "__index") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

static int fderror(lua_State *L, int argn, int elem, const char *fmt, const char *x) {
  if (elem >= 0) {
    const char *m = lua_pushfstring(L, fmt, x);
    return uipc_argerror(L, argn, "fds[%d]: %s", elem, m);
  }
  return uipc_argerror(L, argn, fmt, x);
}

int uipc_tofd(lua_State *L, int idx, int argn, int elem, uipc_Ref *ref) {
  uipc_Fd *o = uipc_toobj(L, idx);
  luaL_Stream *p;
  lua_Integer fd;
  int isnum;
  if (o) { /* ours, the common case, first */
    if (o->fd < 0) fderror(L, argn, elem, "attempt to use a closed %s", uipc_kindname(o));
    if (ref) ref->kind = UIPC_REF_OBJ, ref->p = o;
    return o->fd;
  }
  if (ref) ref->kind = UIPC_REF_INT, ref->p = NULL;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx) && (fd = lua_tointeger(L, idx)) >= 0 && fd <= INT_MAX) return (int)fd;
    fderror(L, argn, elem, "descriptor must be an integer from 0 to 2147483647, got %s",
            gotwhat(L, idx));
  }
  if ((p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE)) != NULL) {
    if (p->closef == NULL) fderror(L, argn, elem, "attempt to use a closed %s", "file");
    if (ref) ref->kind = UIPC_REF_FILE, ref->p = p;
    return fileno(p->f);
  }
  idx = lua_absindex(L, idx);
  if (!foreign(L, idx))
    fderror(L, argn, elem, "descriptor expected (unixipc object, io file, integer or object "
            "with getfd/fileno), got %s", luaL_typename(L, idx));
  if (lua_getfield(L, idx, "getfd") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, idx, "fileno");
  }
  if (!lua_isfunction(L, -1))
    fderror(L, argn, elem, "descriptor expected (unixipc object, io file, integer or object "
            "with getfd/fileno), got a %s with neither", luaL_typename(L, idx));
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  fd = lua_tointegerx(L, -1, &isnum); /* LuaSocket's getfd answers a float such as 5.0 */
  if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
    fderror(L, argn, elem, "getfd/fileno gave %s, not a descriptor", luaL_typename(L, -1));
  lua_pop(L, 1);
  if (fd < 0 || fd > INT_MAX) fderror(L, argn, elem, "attempt to use a closed %s", "object");
  if (ref) ref->kind = UIPC_REF_FOREIGN;
  return (int)fd;
}

/* ---- option tables ------------------------------------------------------- */

int uipc_options(lua_State *L, int idx, int argn, const uipc_Opt *names, int base) {
  int n = 0, t = lua_type(L, idx), top = lua_gettop(L);
  while (names[n].name) n++;
  if (idx < 0) idx = lua_absindex(L, idx);
  if (base + n + 3 > LUA_MINSTACK) luaL_checkstack(L, base + n + 3 - top, NULL);
  if (base + n - 1 > top) lua_settop(L, base + n - 1);
  if (t == LUA_TNIL || t == LUA_TNONE) return 0;
  if (t != LUA_TTABLE)
    uipc_argerror(L, argn, "options must be a table, got %s", luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t len;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
    const uipc_Opt *f = names;
    if (k)
      while (f->name && !(f->len == len && memcmp(k, f->name, len) == 0)) f++;
    if (!k || !f->name) {
      if (k) uipc_argerror(L, argn, "unknown option '%s'", k);
      uipc_argerror(L, argn, "option names must be strings, got %s", luaL_typename(L, -2));
    }
    lua_replace(L, base + (int)(f - names));
  }
  return 1;
}

int uipc_optbool(lua_State *L, int idx, int argn, const char *what, int def) {
  if (lua_isnil(L, idx)) return def;
  if (!lua_isboolean(L, idx))
    uipc_argerror(L, argn, "option '%s' must be a boolean, got %s", what, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* ---- names and flags ----------------------------------------------------- */

/* s[0..n) (no NUL inside) equals name, ignoring case. The first bytes are
   compared first with the ASCII case bit masked off, which settles most
   entries of a table (it never rejects a match; strncasecmp decides) */
static inline int sameword(const char *s, size_t n, const char *name) {
  return name && ((s[0] ^ name[0]) & ~0x20) == 0 && strncasecmp(s, name, n) == 0 &&
         name[n] == '\0';
}

/* short names first (what arguments mostly use), then POSIX names: one
   comparison per entry and pass, most of them settled by the first byte */
const uipc_Name *uipc_findname(const uipc_Family *fam, const char *s, size_t n) {
  const uipc_Name *c;
  if (n == 0 || memchr(s, '\0', n)) return NULL;
  for (c = fam->names; c->posix || c->name; c++)
    if (sameword(s, n, c->name)) return c;
  for (c = fam->names; c->posix || c->name; c++)
    if (c->name && sameword(s, n, c->posix)) return c;
  return NULL;
}

const char *uipc_nameof(const uipc_Family *fam, int value) {
  const uipc_Name *c;
  for (c = fam->names; c->posix || c->name; c++)
    if (c->name && c->value == value) return c->name;
  return NULL;
}

int uipc_namearg(lua_State *L, int idx, int argn, const uipc_Family *fam) {
  const uipc_Name *c;
  size_t n;
  const char *s;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer v = lua_tointeger(L, idx);
    for (c = fam->names; c->posix || c->name; c++)
      if (c->name && lua_isinteger(L, idx) && c->value == v) return c->value;
    uipc_argerror(L, argn, "unknown %s %s", fam->what, gotwhat(L, idx));
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    uipc_argerror(L, argn, "%s expected, got %s", fam->what, luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &n);
  if ((c = uipc_findname(fam, s, n)) == NULL)
    uipc_argerror(L, argn, "unknown %s '%s'", fam->what, uipc_shown(L, s, n));
  return c->value;
}

int uipc_flagsarg(lua_State *L, int idx, int argn, const uipc_Family *fam) {
  const char *s, *p, *end;
  size_t len;
  int flags = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
      return 0;
    case LUA_TNUMBER:
      return (int)uipc_intarg(L, idx, argn, INT_MIN, INT_MAX, fam->what);
    case LUA_TSTRING:
      break;
    default:
      uipc_argerror(L, argn, "%s must be names or an integer, got %s", fam->what,
                    luaL_typename(L, idx));
  }
  s = lua_tolstring(L, idx, &len);
  end = s + len;
  for (p = s; p < end;) {
    const uipc_Name *c;
    size_t n;
    while (p < end && (*p == ' ' || *p == ',' || *p == '|')) p++;
    if (p == end) break;
    for (n = 0; p + n < end && p[n] != ' ' && p[n] != ',' && p[n] != '|'; n++) {
    }
    if ((c = uipc_findname(fam, p, n)) == NULL)
      uipc_argerror(L, argn, "unknown %s '%s'", fam->what, uipc_shown(L, p, n));
    flags |= c->value;
    p += n;
  }
  return flags;
}
