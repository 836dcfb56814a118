/*
 * Memory that processes share, as a file: ipc.memfd(name [, {seal = true}])
 * over memfd_create(2). It reads, writes, seeks and polls like any
 * descriptor (the descriptor methods), grows with m:truncate(n), and with
 * seal = true accepts seals (fcntl F_ADD_SEALS): once "write", "grow" and
 * "shrink" are on it, whoever receives it can trust its size and content
 * without trusting the sender. Channels send big values this way (see
 * lua/unixipc/channel.lua): _sealedmemfd and _memfdbody are their halves.
 *
 * An object is a uipc_Fd of kind memfd.
 */
#include "private.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020 /* Linux 6.3 */
#endif

static const uipc_Family seals = {"seal", (const uipc_Name[]){
  {"F_SEAL_SEAL", "seal", F_SEAL_SEAL}, {"F_SEAL_SHRINK", "shrink", F_SEAL_SHRINK},
  {"F_SEAL_GROW", "grow", F_SEAL_GROW}, {"F_SEAL_WRITE", "write", F_SEAL_WRITE},
  {"F_SEAL_FUTURE_WRITE", "future_write", F_SEAL_FUTURE_WRITE},
  {"F_SEAL_EXEC", "exec", F_SEAL_EXEC}, {NULL, NULL, 0}}};

/* what a channel needs on a memfd before it trusts its size and content */
#define TRUSTED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static const uipc_Opt opts[] = {UIPC_OPT("seal"), {NULL, 0}};

/* memfd(name [, {seal = false}]) -> m: close-on-exec; seal = true allows
   seals (MFD_ALLOW_SEALING), else the file carries "seal" from the start */
static int ipc_memfd(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  unsigned flags = MFD_CLOEXEC;
  uipc_Fd *o;
  int fd;
  if (strlen(name) != n) return uipc_argerror(L, 1, "name contains a NUL byte");
  if (n > 249) return uipc_argerror(L, 1, "name must be at most 249 bytes, got %d", (int)n);
  lua_settop(L, 2);
  uipc_options(L, 2, 2, opts, 3);
  if (uipc_optbool(L, 3, 2, "seal", 0)) flags |= MFD_ALLOW_SEALING;
  o = uipc_newkindfd(L, UIPC_KIND_MEMFD);
  fd = memfd_create(name, flags);
  if (fd < 0) return uipc_failerrno(L, "memfd_create");
  o->fd = fd;
  return 1;
}

/* m:seal(name, ...) -> true: each argument a seal name ("write", "grow",
   "shrink", "seal", "future_write", "exec"), names joined by "|", or
   a number (ipc.F_SEAL_WRITE | ...) */
static int memfd_seal(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_MEMFD);
  int i, n = lua_gettop(L), set = 0;
  if (n < 2) return uipc_argerror(L, 2, "seal name expected, got no value");
  for (i = 2; i <= n; i++) set |= uipc_checkflags(L, i, &seals);
  return uipc_boolresult(L, fcntl(o->fd, F_ADD_SEALS, set), "fcntl");
}

/* m:seals() -> {"seal", "shrink", ...}: the seals on the file, in the order
   seal, shrink, grow, write, future_write, exec */
static int memfd_seals(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_MEMFD);
  const uipc_Name *c;
  int set = fcntl(o->fd, F_GET_SEALS), k = 0;
  if (set < 0) return uipc_failerrno(L, "fcntl");
  lua_createtable(L, 4, 0);
  for (c = seals.names; c->name; c++)
    if (set & c->value) {
      lua_pushstring(L, c->name);
      lua_rawseti(L, -2, ++k);
    }
  return 1;
}

/* m:truncate(size) -> true: ftruncate(2), growing with zeros or shrinking */
static int memfd_truncate(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_MEMFD);
  lua_Integer n = uipc_checkint(L, 2, 0, LUA_MAXINTEGER, "size");
  return uipc_boolresult(L, (int)UIPC_RETRY(ftruncate(o->fd, (off_t)n)), "ftruncate");
}

/* m:size() -> bytes */
static int memfd_size(lua_State *L) {
  uipc_Fd *o = uipc_checkkind(L, 1, UIPC_KIND_MEMFD);
  struct stat st;
  if (fstat(o->fd, &st) < 0) return uipc_failerrno(L, "fstat");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  return 1;
}

/* ---- the channel's halves ---------------------------------------------- */

/*
 * _sealedmemfd(s, ...) -> m: a memfd holding the strings one after the
 * other, sealed against writing, growing and shrinking (and further
 * sealing), its offset at 0.
 */
static int ipc_sealedmemfd(lua_State *L) {
  int n = lua_gettop(L), i, fd, niov = 0;
  struct iovec iov[8];
  uipc_Fd *o;
  size_t total = 0;
  off_t off = 0;
  if (n < 1 || n > 8) return luaL_error(L, "_sealedmemfd: 1 to 8 strings");
  for (i = 1; i <= n; i++) {
    iov[niov].iov_base = (void *)luaL_checklstring(L, i, &iov[niov].iov_len);
    total += iov[niov].iov_len;
    niov++;
  }
  o = uipc_newkindfd(L, UIPC_KIND_MEMFD);
  fd = memfd_create("unixipc-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return uipc_failerrno(L, "memfd_create");
  o->fd = fd;
  /* the whole size first: one allocation of the file's pages range, and a
     file short of memory fails here rather than half written */
  if (total > 0 && UIPC_RETRY(fallocate(fd, 0, 0, (off_t)total)) < 0 && errno != EOPNOTSUPP)
    return uipc_failerrno(L, "fallocate");
  i = 0;
  while (i < niov) {
    ssize_t r = pwritev(fd, iov + i, niov - i, off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return uipc_failerrno(L, "write");
    }
    off += r;
    while (i < niov && (size_t)r >= iov[i].iov_len) r -= (ssize_t)iov[i++].iov_len;
    if (i < niov) {
      iov[i].iov_base = (char *)iov[i].iov_base + r;
      iov[i].iov_len -= (size_t)r;
    }
  }
  if (fcntl(fd, F_ADD_SEALS, TRUSTED | F_SEAL_SEAL) < 0) return uipc_failerrno(L, "fcntl");
  return 1;
}

/*
 * _memfdbody(m, len) -> body | value, true | nil, msg, errno. The frame
 * says its body is m's len bytes. m is trusted only once it carries the
 * write, grow and shrink seals and is exactly len bytes long: then neither
 * its size nor its bytes can change under the reader. The content is read
 * through a private mapping straight into the Lua string. A body that is
 * one string (tag 5, its length filling the body) comes back as that
 * string, with true, sparing the decoder a copy of it.
 */
typedef struct {
  void *p;
  size_t n;
} Mapping;

static char MAPMT; /* registry: the mapping guard's metatable */

/* a mapping's guard: unmapped when its slot closes, or by the collector
   if a memory error unwinds the call first */
static int mapping_close(lua_State *L) {
  Mapping *m = (Mapping *)lua_touserdata(L, 1);
  if (m && m->p) {
    munmap(m->p, m->n);
    m->p = NULL;
  }
  return 0;
}

static int ipc_memfdbody(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1); /* received: a plain descriptor, checked below */
  lua_Integer len = uipc_checkint(L, 2, 0, UINT32_MAX, "len");
  struct stat st;
  const unsigned char *p;
  Mapping *guard;
  void *map;
  int set = fcntl(o->fd, F_GET_SEALS);
  if (set < 0) return uipc_failmsg(L, NULL, "frame's memfd is not a memfd", EPROTO);
  if ((set & TRUSTED) != TRUSTED)
    return uipc_failmsg(L, NULL, "frame's memfd is not sealed against writes", EPROTO);
  if (fstat(o->fd, &st) < 0) return uipc_failerrno(L, "fstat");
  if (!S_ISREG(st.st_mode))
    return uipc_failmsg(L, NULL, "frame's memfd is not a memfd", EPROTO);
  if (st.st_size != (off_t)len)
    return uipc_failmsg(L, NULL, "frame's memfd size differs from its header", EPROTO);
  if (len == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_settop(L, 2);
  guard = (Mapping *)lua_newuserdatauv(L, sizeof(Mapping), 0); /* 3 */
  guard->p = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MAPMT);
  lua_setmetatable(L, 3);
  map = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, o->fd, 0);
  if (map == MAP_FAILED) return uipc_failerrno(L, "mmap");
  guard->p = map;
  guard->n = (size_t)len;
  lua_toclose(L, 3);
  p = (const unsigned char *)map;
  if (len >= 5 && p[0] == 5 &&
      ((uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24) ==
          (uint32_t)(len - 5)) {
    lua_pushlstring(L, (const char *)p + 5, (size_t)len - 5);
    lua_pushboolean(L, 1);
  } else {
    lua_pushlstring(L, (const char *)p, (size_t)len);
    lua_pushnil(L);
  }
  lua_closeslot(L, 3);
  return 2;
}

static const luaL_Reg methods[] = {
  {"seal", memfd_seal},
  {"seals", memfd_seals},
  {"truncate", memfd_truncate},
  {"size", memfd_size},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"memfd", ipc_memfd},
  {"_sealedmemfd", ipc_sealedmemfd},
  {"_memfdbody", ipc_memfdbody},
  {NULL, NULL}
};

void uipc_open_memfd(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, mapping_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, mapping_close);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MAPMT);
  uipc_newkind(L, UIPC_KIND_MEMFD, methods, NULL, 0);
  uipc_setconsts(L, &seals);
  luaL_setfuncs(L, funcs, 0);
}
