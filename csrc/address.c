/*
 * Addresses: strings and tables in, tables out.
 *   "/path", "./x.sock" (any string with "/")  -> unix path
 *   "@name"                                     -> Linux abstract, exact length
 *   "host:port", "[v6]:port", "*:port"          -> inet / inet6
 *   {family="unix", path=} {family="unix", abstract=} {family="inet"|"inet6", host=, port=}
 * Abstract names keep every byte, NULs included, in both directions: the
 * length passed to the kernel is offsetof(sun_path) + 1 + #name, never 108.
 */
#include "private.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#define SUN_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

static const uipc_Const families[] = {
  {"unix", AF_UNIX}, {"inet", AF_INET}, {"inet6", AF_INET6}, {"local", AF_UNIX},
  {"unspec", AF_UNSPEC}, {NULL, 0}
};

static const uipc_Const socktypes[] = {
  {"stream", SOCK_STREAM}, {"dgram", SOCK_DGRAM}, {"seqpacket", SOCK_SEQPACKET},
  {"raw", SOCK_RAW}, {NULL, 0}
};

static int unixaddr(lua_State *L, int idx, int family, const char *s, size_t n, int abstract,
                    struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_un *su = (struct sockaddr_un *)ss;
  if (family != AF_UNIX && family != AF_UNSPEC)
    uipc_argerror(L, idx, "unix address '%s' for an %s socket", s, family == AF_INET ? "inet" : "inet6");
  memset(su, 0, sizeof *su);
  su->sun_family = AF_UNIX;
  if (abstract) {
    if (n + 1 > SUN_MAX)
      uipc_argerror(L, idx, "abstract name too long for sun_path: %d bytes, max %d", (int)n, (int)SUN_MAX - 1);
    memcpy(su->sun_path + 1, s, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  } else {
    if (n == 0) uipc_argerror(L, idx, "empty unix path");
    if (memchr(s, '\0', n)) uipc_argerror(L, idx, "unix path contains a NUL byte");
    if (n + 1 > SUN_MAX)
      uipc_argerror(L, idx, "path too long for sun_path: %d bytes, max %d", (int)n, (int)SUN_MAX - 1);
    memcpy(su->sun_path, s, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

/* resolve host (NULL for the wildcard) and port into the first address of family */
static int inetaddr(const char *host, const char *port, int family, int socktype, int passive,
                    struct sockaddr_storage *ss, socklen_t *len) {
  struct addrinfo hints, *res = NULL;
  int rc;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family == AF_UNIX ? AF_UNSPEC : family;
  hints.ai_socktype = socktype == SOCK_SEQPACKET ? 0 : socktype;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  if (host && (*host == '\0' || strcmp(host, "*") == 0)) host = NULL;
  do rc = getaddrinfo(host, port, &hints, &res);
  while (rc == EAI_SYSTEM && errno == EINTR);
  if (rc != 0) return rc;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static void checkport(lua_State *L, int idx, const char *port, const char *s) {
  if (!port || !*port) uipc_argerror(L, idx, "address '%s' has no port", s);
}

/*
 * Fill ss/len from the address at idx for a socket of the given family
 * (AF_UNSPEC: any). Misuse raises; a name that does not resolve returns
 * its getaddrinfo error code (non-zero) for uipc_addrfail.
 */
int uipc_toaddr(lua_State *L, int idx, int family, int socktype, struct sockaddr_storage *ss,
                socklen_t *len, int passive) {
  char host[256];
  const char *port;
  size_t n;
  const char *s;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    int fam, rc;
    lua_getfield(L, idx, "family");
    if (lua_isnil(L, -1)) uipc_argerror(L, idx, "address table has no family");
    fam = uipc_checkname(L, -1, families, "address family");
    lua_pop(L, 1);
    if (fam == AF_UNIX) {
      int abstract;
      lua_getfield(L, idx, "path");
      abstract = lua_isnil(L, -1);
      if (abstract) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "abstract");
      }
      if (lua_type(L, -1) != LUA_TSTRING)
        uipc_argerror(L, idx, "unix address table needs a string path or abstract");
      s = lua_tolstring(L, -1, &n);
      rc = unixaddr(L, idx, family, s, n, abstract, ss, len);
      lua_pop(L, 1);
      return rc;
    }
    if (family != AF_UNSPEC && family != fam)
      uipc_argerror(L, idx, "%s address for a socket of another family", fam == AF_INET ? "inet" : "inet6");
    lua_getfield(L, idx, "host");
    lua_getfield(L, idx, "port");
    if (!lua_isnil(L, -2) && lua_type(L, -2) != LUA_TSTRING)
      uipc_argerror(L, idx, "address host must be a string");
    if (lua_type(L, -1) != LUA_TNUMBER && lua_type(L, -1) != LUA_TSTRING)
      uipc_argerror(L, idx, "address table needs a port");
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Integer p = lua_tointeger(L, -1);
      if (!lua_isinteger(L, -1) || p < 0 || p > 65535)
        uipc_argerror(L, idx, "port must be 0 to 65535");
    }
    port = lua_tostring(L, -1);
    rc = inetaddr(lua_tostring(L, -2), port, fam, socktype, passive, ss, len);
    lua_pop(L, 2);
    return rc;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    uipc_argerror(L, idx, "address expected: string or table, got %s", luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &n);
  if (n > 0 && s[0] == '@') return unixaddr(L, idx, family, s + 1, n - 1, 1, ss, len);
  if (memchr(s, '/', n)) return unixaddr(L, idx, family, s, n, 0, ss, len);
  if (n > 0 && s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
      uipc_argerror(L, idx, "invalid address '%s': expected [v6addr]:port", s);
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    port = end + 2;
    checkport(L, idx, port, s);
    if (family == AF_UNIX) uipc_argerror(L, idx, "inet6 address for a unix socket");
    return inetaddr(host, port, family == AF_UNSPEC ? AF_INET6 : family, socktype, passive, ss, len);
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
      uipc_argerror(L, idx, "invalid address '%s': expected a path with '/', '@name', 'host:port' or '[v6addr]:port'", s);
    if (memchr(s, ':', (size_t)(colon - s)))
      uipc_argerror(L, idx, "invalid address '%s': write IPv6 as [addr]:port", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = colon + 1;
    checkport(L, idx, port, s);
    if (family == AF_UNIX) uipc_argerror(L, idx, "inet address '%s' for a unix socket", s);
    return inetaddr(host, port, family, socktype, passive, ss, len);
  }
}

/* nil, "op: gai message", code (EAI_SYSTEM reports errno instead) */
int uipc_addrfail(lua_State *L, const char *op, int rc) {
  if (rc == EAI_SYSTEM) return uipc_fail(L, op, errno);
  return uipc_failmsg(L, op, gai_strerror(rc), rc);
}

static void setaddrmt(lua_State *L) {
  luaL_setmetatable(L, UIPC_ADDR_MT);
}

void uipc_pushaddr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char buf[INET6_ADDRSTRLEN];
  if (len == 0) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 3);
  switch (sa->sa_family) {
    case AF_UNIX: {
      const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
      size_t off = offsetof(struct sockaddr_un, sun_path);
      lua_pushliteral(L, "unix");
      lua_setfield(L, -2, "family");
      if (len <= off) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "unnamed");
      } else if (su->sun_path[0] == '\0') {
        lua_pushlstring(L, su->sun_path + 1, len - off - 1);
        lua_setfield(L, -2, "abstract");
      } else {
        size_t max = len - off > SUN_MAX ? SUN_MAX : len - off;
        lua_pushlstring(L, su->sun_path, strnlen(su->sun_path, max));
        lua_setfield(L, -2, "path");
      }
      break;
    }
    case AF_INET: {
      const struct sockaddr_in *si = (const struct sockaddr_in *)sa;
      lua_pushliteral(L, "inet");
      lua_setfield(L, -2, "family");
      lua_pushstring(L, inet_ntop(AF_INET, &si->sin_addr, buf, sizeof buf));
      lua_setfield(L, -2, "host");
      lua_pushinteger(L, ntohs(si->sin_port));
      lua_setfield(L, -2, "port");
      break;
    }
    case AF_INET6: {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
      lua_pushliteral(L, "inet6");
      lua_setfield(L, -2, "family");
      lua_pushstring(L, inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf));
      lua_setfield(L, -2, "host");
      lua_pushinteger(L, ntohs(s6->sin6_port));
      lua_setfield(L, -2, "port");
      if (s6->sin6_scope_id) {
        lua_pushinteger(L, s6->sin6_scope_id);
        lua_setfield(L, -2, "scope");
      }
      break;
    }
    default:
      lua_pushinteger(L, sa->sa_family);
      lua_setfield(L, -2, "family");
  }
  setaddrmt(L);
}

/* tostring(address): the string form that parses back to the same address */
static int addr_tostring(lua_State *L) {
  const char *fam;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "family");
  fam = lua_tostring(L, -1);
  if (fam && strcmp(fam, "unix") == 0) {
    if (lua_getfield(L, 1, "path") == LUA_TSTRING) return 1;
    if (lua_getfield(L, 1, "abstract") == LUA_TSTRING) {
      lua_pushliteral(L, "@");
      lua_insert(L, -2);
      lua_concat(L, 2);
      return 1;
    }
    lua_pushliteral(L, "(unnamed)");
    return 1;
  }
  lua_getfield(L, 1, "host");
  lua_getfield(L, 1, "port");
  if (fam && strcmp(fam, "inet6") == 0)
    lua_pushfstring(L, "[%s]:%s", luaL_optstring(L, -2, "::"), luaL_optstring(L, -1, "0"));
  else
    lua_pushfstring(L, "%s:%s", luaL_optstring(L, -2, "*"), luaL_optstring(L, -1, "0"));
  return 1;
}

/* getaddrinfo(host, service [, {family=, type=, passive=, canonname=, numeric=}]) */
static int ipc_getaddrinfo(lua_State *L) {
  const char *host = luaL_optstring(L, 1, NULL);
  const char *serv;
  struct addrinfo hints, *res = NULL, *ai;
  int rc, i = 1;
  char pbuf[16];
  if (lua_type(L, 2) == LUA_TNUMBER) {
    snprintf(pbuf, sizeof pbuf, "%d", (int)uipc_checkint(L, 2, 0, 65535, "port"));
    serv = pbuf;
  } else
    serv = luaL_optstring(L, 2, NULL);
  if (!host && !serv) return uipc_argerror(L, 1, "host or service required");
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "family") != LUA_TNIL) hints.ai_family = uipc_checkname(L, -1, families, "family");
    if (lua_getfield(L, 3, "type") != LUA_TNIL) hints.ai_socktype = uipc_checkname(L, -1, socktypes, "socket type");
    if (lua_getfield(L, 3, "passive"), lua_toboolean(L, -1)) hints.ai_flags |= AI_PASSIVE;
    if (lua_getfield(L, 3, "canonname"), lua_toboolean(L, -1)) hints.ai_flags |= AI_CANONNAME;
    if (lua_getfield(L, 3, "numeric"), lua_toboolean(L, -1)) hints.ai_flags |= AI_NUMERICHOST;
    lua_pop(L, 5);
  }
  do rc = getaddrinfo(host, serv, &hints, &res);
  while (rc == EAI_SYSTEM && errno == EINTR);
  if (rc != 0) return uipc_addrfail(L, "getaddrinfo", rc);
  lua_newtable(L);
  for (ai = res; ai; ai = ai->ai_next) {
    const char *tn = uipc_nameof(socktypes, ai->ai_socktype);
    uipc_pushaddr(L, ai->ai_addr, ai->ai_addrlen);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    if (tn) {
      lua_pushstring(L, tn);
      lua_setfield(L, -2, "type");
    }
    lua_pushinteger(L, ai->ai_protocol);
    lua_setfield(L, -2, "protocol");
    if (ai->ai_canonname) {
      lua_pushstring(L, ai->ai_canonname);
      lua_setfield(L, -2, "canonname");
    }
    lua_rawseti(L, -2, i++);
  }
  freeaddrinfo(res);
  return 1;
}

/* getnameinfo(addr [, {numeric = bool, dgram = bool}]) -> host, service */
static int ipc_getnameinfo(lua_State *L) {
  struct sockaddr_storage ss;
  socklen_t len;
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  int flags = 0, rc = uipc_toaddr(L, 1, AF_UNSPEC, SOCK_STREAM, &ss, &len, 0);
  if (rc) return uipc_addrfail(L, "getnameinfo", rc);
  if (ss.ss_family == AF_UNIX) return luaL_argerror(L, 1, "getnameinfo needs an inet or inet6 address");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "numeric"), lua_toboolean(L, -1)) flags |= NI_NUMERICHOST | NI_NUMERICSERV;
    if (lua_getfield(L, 2, "dgram"), lua_toboolean(L, -1)) flags |= NI_DGRAM;
    lua_pop(L, 2);
  }
  do rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv, flags);
  while (rc == EAI_SYSTEM && errno == EINTR);
  if (rc) return uipc_addrfail(L, "getnameinfo", rc);
  lua_pushstring(L, host);
  lua_pushstring(L, serv);
  return 2;
}

/* parse (and resolve) an address into its table form */
static int ipc_address(lua_State *L) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc;
  if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__name") != LUA_TNIL) {
    lua_pop(L, 1);
    lua_settop(L, 1);
    return 1;
  }
  rc = uipc_toaddr(L, 1, AF_UNSPEC, SOCK_STREAM, &ss, &len, 0);
  if (rc) return uipc_addrfail(L, "getaddrinfo", rc);
  uipc_pushaddr(L, (struct sockaddr *)&ss, len);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"getaddrinfo", ipc_getaddrinfo},
  {"getnameinfo", ipc_getnameinfo},
  {"address", ipc_address},
  {NULL, NULL}
};

void uipc_open_address(lua_State *L) {
  luaL_newmetatable(L, UIPC_ADDR_MT);
  lua_pushcfunction(L, addr_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
#define EAI(n) lua_pushinteger(L, n), lua_setfield(L, -2, #n)
  EAI(EAI_NONAME); EAI(EAI_AGAIN); EAI(EAI_FAIL); EAI(EAI_FAMILY); EAI(EAI_SERVICE);
  EAI(EAI_SOCKTYPE); EAI(EAI_SYSTEM); EAI(EAI_MEMORY); EAI(EAI_BADFLAGS);
#undef EAI
}

/* for socket.c */
int uipc_checkfamily(lua_State *L, int idx) { return uipc_checkname(L, idx, families, "address family"); }
int uipc_checktype(lua_State *L, int idx) { return uipc_checkname(L, idx, socktypes, "socket type"); }
const char *uipc_typename(int t) { return uipc_nameof(socktypes, t); }
