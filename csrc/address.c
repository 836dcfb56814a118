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

/*
 * An address as parsed, before any name is resolved: a unix address is
 * complete (su, ulen); an inet one is a host (NULL for the wildcard), a
 * port and the family it asks for (AF_UNSPEC: either).
 */
typedef struct Parsed {
  int family;
  const char *host, *port;
  char hostbuf[256], portbuf[16];
  struct sockaddr_un su;
  socklen_t ulen;
} Parsed;

static void unixaddr(lua_State *L, int argn, int family, const char *s, size_t n, int abstract,
                     Parsed *pa) {
  struct sockaddr_un *su = &pa->su;
  if (family != AF_UNIX && family != AF_UNSPEC)
    uipc_argerror(L, argn, "unix address '%s' for an %s socket", s, family == AF_INET ? "inet" : "inet6");
  memset(su, 0, sizeof *su);
  su->sun_family = AF_UNIX;
  pa->family = AF_UNIX;
  if (abstract) {
    if (n + 1 > SUN_MAX)
      uipc_argerror(L, argn, "abstract name too long for sun_path: %d bytes, max %d", (int)n, (int)SUN_MAX - 1);
    memcpy(su->sun_path + 1, s, n);
    pa->ulen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  } else {
    if (n == 0) uipc_argerror(L, argn, "empty unix path");
    if (memchr(s, '\0', n)) uipc_argerror(L, argn, "unix path contains a NUL byte");
    if (n + 1 > SUN_MAX)
      uipc_argerror(L, argn, "path too long for sun_path: %d bytes, max %d", (int)n, (int)SUN_MAX - 1);
    memcpy(su->sun_path, s, n);
    pa->ulen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
}

/* host (copied, "" and "*" meaning the wildcard) and port of an inet address */
static void inetparts(lua_State *L, int argn, const char *host, size_t hn, const char *port,
                      const char *s, Parsed *pa) {
  if (hn >= sizeof pa->hostbuf) uipc_argerror(L, argn, "host name too long in '%s'", s);
  if (!port || !*port) uipc_argerror(L, argn, "address '%s' has no port", s);
  memcpy(pa->hostbuf, host, hn);
  pa->hostbuf[hn] = '\0';
  pa->host = (hn == 0 || strcmp(pa->hostbuf, "*") == 0) ? NULL : pa->hostbuf;
  pa->port = port;
}

/* the address at idx for a socket of family (AF_UNSPEC: any); misuse raises */
static void parse(lua_State *L, int idx, int argn, int family, Parsed *pa) {
  size_t n;
  const char *s;
  idx = lua_absindex(L, idx);
  pa->host = pa->port = NULL;
  if (lua_type(L, idx) == LUA_TTABLE) {
    int fam;
    lua_getfield(L, idx, "family");
    if (lua_isnil(L, -1)) uipc_argerror(L, argn, "address table has no family");
    fam = uipc_namearg(L, -1, argn, &uipc_afamilies);
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
        uipc_argerror(L, argn, "unix address table needs a string path or abstract");
      s = lua_tolstring(L, -1, &n);
      unixaddr(L, argn, family, s, n, abstract, pa);
      lua_pop(L, 1);
      return;
    }
    if (fam != AF_INET && fam != AF_INET6)
      uipc_argerror(L, argn, "address family must be unix, inet or inet6");
    if (family != AF_UNSPEC && family != fam)
      uipc_argerror(L, argn, "%s address for a socket of another family", fam == AF_INET ? "inet" : "inet6");
    pa->family = fam;
    lua_getfield(L, idx, "host");
    lua_getfield(L, idx, "port");
    if (!lua_isnil(L, -2) && lua_type(L, -2) != LUA_TSTRING)
      uipc_argerror(L, argn, "address host must be a string");
    if (lua_type(L, -1) == LUA_TNUMBER) {
      snprintf(pa->portbuf, sizeof pa->portbuf, "%d",
               (int)uipc_intarg(L, -1, argn, 0, 65535, "port"));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      const char *p = lua_tolstring(L, -1, &n);
      if (n == 0 || n >= sizeof pa->portbuf || strlen(p) != n)
        uipc_argerror(L, argn, "address port must be a number or a service name");
      memcpy(pa->portbuf, p, n + 1);
    } else
      uipc_argerror(L, argn, "address table needs a port");
    s = lua_isnil(L, -2) ? "" : lua_tolstring(L, -2, &n);
    if (lua_isnil(L, -2)) n = 0;
    if (strlen(s) != n) uipc_argerror(L, argn, "address host contains a NUL byte");
    inetparts(L, argn, s, n, pa->portbuf, s, pa);
    lua_pop(L, 2);
    return;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    uipc_argerror(L, argn, "address expected (string or table), got %s", luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &n);
  if (n > 0 && s[0] == '@') {
    unixaddr(L, argn, family, s + 1, n - 1, 1, pa);
    return;
  }
  if (memchr(s, '/', n)) {
    unixaddr(L, argn, family, s, n, 0, pa);
    return;
  }
  if (memchr(s, '\0', n)) uipc_argerror(L, argn, "address contains a NUL byte");
  if (n > 0 && s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':')
      uipc_argerror(L, argn, "invalid address '%s': expected [v6addr]:port", s);
    if (family == AF_UNIX) uipc_argerror(L, argn, "inet6 address '%s' for a unix socket", s);
    pa->family = family == AF_UNSPEC ? AF_INET6 : family;
    inetparts(L, argn, s + 1, (size_t)(end - s - 1), end + 2, s, pa);
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon)
      uipc_argerror(L, argn, "invalid address '%s': expected a path with '/', '@name', 'host:port' or '[v6addr]:port'", s);
    if (memchr(s, ':', (size_t)(colon - s)))
      uipc_argerror(L, argn, "invalid address '%s': write IPv6 as [addr]:port", s);
    if (family == AF_UNIX) uipc_argerror(L, argn, "inet address '%s' for a unix socket", s);
    pa->family = family;
    inetparts(L, argn, s, (size_t)(colon - s), colon + 1, s, pa);
  }
}

/* getaddrinfo for a parsed inet address: 0 or its code */
static int lookup(const Parsed *pa, int socktype, int passive, struct addrinfo **res) {
  struct addrinfo hints;
  int rc;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = pa->family;
  hints.ai_socktype = socktype == SOCK_SEQPACKET ? 0 : socktype;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  do rc = getaddrinfo(pa->host, pa->port, &hints, res);
  while (rc == EAI_SYSTEM && errno == EINTR);
  return rc;
}

int uipc_toaddr(lua_State *L, int idx, int argn, int family, int socktype,
                struct sockaddr_storage *ss, socklen_t *len, int passive) {
  Parsed pa;
  struct addrinfo *res = NULL;
  int rc;
  parse(L, idx, argn, family, &pa);
  if (pa.family == AF_UNIX) {
    memcpy(ss, &pa.su, pa.ulen);
    *len = pa.ulen;
    return 0;
  }
  if ((rc = lookup(&pa, socktype, passive, &res)) != 0) return rc;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* nil, "op: gai message", code: negative for the resolver (EAI_SYSTEM reports errno) */
int uipc_addrfail(lua_State *L, const char *op, int rc) {
  if (rc == EAI_SYSTEM) return uipc_fail(L, op, errno);
  return uipc_failmsg(L, op, gai_strerror(rc), rc < 0 ? rc : -rc);
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
    if (lua_getfield(L, 1, "path") == LUA_TSTRING) {
      /* a relative path without "/" ("x.sock") or starting with "@" would
         parse as no address or as an abstract name: "./" names the same file */
      size_t n;
      const char *p = lua_tolstring(L, -1, &n);
      if (p[0] == '@' || !memchr(p, '/', n)) {
        lua_pushliteral(L, "./");
        lua_insert(L, -2);
        lua_concat(L, 2);
      }
      return 1;
    }
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

/* push the list of getaddrinfo's results (those with an address family we know) */
static void pushresults(lua_State *L, struct addrinfo *res) {
  struct addrinfo *ai;
  int i = 1;
  lua_newtable(L);
  for (ai = res; ai; ai = ai->ai_next) {
    const char *tn = uipc_nameof(&uipc_socktypes, ai->ai_socktype);
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    uipc_pushaddr(L, ai->ai_addr, ai->ai_addrlen);
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
}

static const uipc_Opt hintnames[] = {UIPC_OPT("family"), UIPC_OPT("type"), UIPC_OPT("passive"),
                                     UIPC_OPT("canonname"), UIPC_OPT("numeric"), {NULL, 0}};

/* getaddrinfo(host, service [, {family=, type=, passive=, canonname=, numeric=}]) */
static int ipc_getaddrinfo(lua_State *L) {
  const char *host, *serv;
  struct addrinfo hints, *res = NULL;
  int rc;
  char pbuf[16];
  host = lua_isnoneornil(L, 1) ? NULL : uipc_checkpath(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    snprintf(pbuf, sizeof pbuf, "%d", (int)uipc_checkint(L, 2, 0, 65535, "port"));
    serv = pbuf;
  } else
    serv = lua_isnoneornil(L, 2) ? NULL : uipc_checkpath(L, 2);
  if (!host && !serv) return uipc_argerror(L, 1, "host or service required");
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  lua_settop(L, 3);
  if (uipc_options(L, 3, 3, hintnames, 4)) {
    if (!lua_isnil(L, 4)) hints.ai_family = uipc_namearg(L, 4, 3, &uipc_afamilies);
    if (!lua_isnil(L, 5)) hints.ai_socktype = uipc_namearg(L, 5, 3, &uipc_socktypes);
    if (uipc_optbool(L, 6, 3, "passive", 0)) hints.ai_flags |= AI_PASSIVE;
    if (uipc_optbool(L, 7, 3, "canonname", 0)) hints.ai_flags |= AI_CANONNAME;
    if (uipc_optbool(L, 8, 3, "numeric", 0)) hints.ai_flags |= AI_NUMERICHOST;
  }
  do rc = getaddrinfo(host, serv, &hints, &res);
  while (rc == EAI_SYSTEM && errno == EINTR);
  if (rc != 0) return uipc_addrfail(L, "getaddrinfo", rc);
  pushresults(L, res);
  freeaddrinfo(res);
  return 1;
}

static const uipc_Opt niopts[] = {UIPC_OPT("numeric"), UIPC_OPT("dgram"), {NULL, 0}};

/* getnameinfo(addr [, {numeric = bool, dgram = bool}]) -> host, service */
static int ipc_getnameinfo(lua_State *L) {
  struct sockaddr_storage ss;
  socklen_t len;
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  int flags = 0, rc;
  lua_settop(L, 2);
  if (uipc_options(L, 2, 2, niopts, 3)) {
    if (uipc_optbool(L, 3, 2, "numeric", 0)) flags |= NI_NUMERICHOST | NI_NUMERICSERV;
    if (uipc_optbool(L, 4, 2, "dgram", 0)) flags |= NI_DGRAM;
  }
  rc = uipc_toaddr(L, 1, 1, AF_UNSPEC, SOCK_STREAM, &ss, &len, 0);
  if (rc) return uipc_addrfail(L, "getnameinfo", rc);
  if (ss.ss_family == AF_UNIX) return uipc_argerror(L, 1, "getnameinfo needs an inet or inet6 address");
  do rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv, flags);
  while (rc == EAI_SYSTEM && errno == EINTR);
  if (rc) return uipc_addrfail(L, "getnameinfo", rc);
  lua_pushstring(L, host);
  lua_pushstring(L, serv);
  return 2;
}

/* address(addr) -> its table form (the first address a name resolves to) */
static int ipc_address(lua_State *L) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc;
  if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__name") != LUA_TNIL) {
    lua_pop(L, 1);
    lua_settop(L, 1);
    return 1;
  }
  rc = uipc_toaddr(L, 1, 1, AF_UNSPEC, SOCK_STREAM, &ss, &len, 0);
  if (rc) return uipc_addrfail(L, "getaddrinfo", rc);
  uipc_pushaddr(L, (struct sockaddr *)&ss, len);
  return 1;
}

/*
 * _resolve(addr, type, passive, op) -> {address, ...}: every address to try
 * for addr (one for unix, all of getaddrinfo's for a name), for listen()
 * and connect() in lua/unixipc/net.lua; a name that does not resolve gives
 * nil, "op: message", code (negative: ipc.EAI_*).
 */
static int ipc_resolve(lua_State *L) {
  Parsed pa;
  struct addrinfo *res = NULL;
  int socktype = uipc_checkname(L, 2, &uipc_socktypes), passive = lua_toboolean(L, 3), rc;
  const char *op = luaL_optstring(L, 4, "getaddrinfo");
  parse(L, 1, 1, AF_UNSPEC, &pa);
  if (pa.family == AF_UNIX) {
    lua_createtable(L, 1, 0);
    uipc_pushaddr(L, (struct sockaddr *)&pa.su, pa.ulen);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  if ((rc = lookup(&pa, socktype, passive, &res)) != 0) return uipc_addrfail(L, op, rc);
  pushresults(L, res);
  freeaddrinfo(res);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"getaddrinfo", ipc_getaddrinfo},
  {"getnameinfo", ipc_getnameinfo},
  {"address", ipc_address},
  {"_resolve", ipc_resolve},
  {NULL, NULL}
};

void uipc_open_address(lua_State *L) {
  luaL_newmetatable(L, UIPC_ADDR_MT);
  lua_pushcfunction(L, addr_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
