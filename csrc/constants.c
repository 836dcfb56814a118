/*
 * The name tables, one per family, each written once: the POSIX name
 * becomes a module constant (ipc.MSG_PEEK), the short name is what
 * arguments take ("peek"), and check.c's parsers accept both (see
 * uipc_Name in private.h). Also errno names (ipc.errno) and the
 * resolver's codes (ipc.EAI_*). Signal names live in signal.c.
 */
#include "private.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <stdio.h>
#include <unistd.h>

#define END {NULL, NULL, 0}

const uipc_Family uipc_afamilies = {"address family", (const uipc_Name[]){
  {"AF_UNIX", "unix", AF_UNIX}, {"AF_INET", "inet", AF_INET}, {"AF_INET6", "inet6", AF_INET6},
  {"AF_UNSPEC", "unspec", AF_UNSPEC}, {"AF_LOCAL", "local", AF_LOCAL}, END}};

const uipc_Family uipc_socktypes = {"socket type", (const uipc_Name[]){
  {"SOCK_STREAM", "stream", SOCK_STREAM}, {"SOCK_DGRAM", "dgram", SOCK_DGRAM},
  {"SOCK_SEQPACKET", "seqpacket", SOCK_SEQPACKET}, {"SOCK_RAW", "raw", SOCK_RAW},
  {"SOCK_NONBLOCK", NULL, SOCK_NONBLOCK}, {"SOCK_CLOEXEC", NULL, SOCK_CLOEXEC}, END}};

const uipc_Family uipc_msgflags = {"flag", (const uipc_Name[]){
  {"MSG_OOB", "oob", MSG_OOB}, {"MSG_PEEK", "peek", MSG_PEEK},
  {"MSG_DONTROUTE", "dontroute", MSG_DONTROUTE}, {"MSG_DONTWAIT", "dontwait", MSG_DONTWAIT},
  {"MSG_WAITALL", "waitall", MSG_WAITALL}, {"MSG_TRUNC", "trunc", MSG_TRUNC},
  {"MSG_CTRUNC", "ctrunc", MSG_CTRUNC}, {"MSG_EOR", "eor", MSG_EOR},
  {"MSG_NOSIGNAL", "nosignal", MSG_NOSIGNAL},
#ifdef MSG_MORE
  {"MSG_MORE", "more", MSG_MORE},
#endif
#ifdef MSG_CMSG_CLOEXEC
  {"MSG_CMSG_CLOEXEC", "cmsg_cloexec", MSG_CMSG_CLOEXEC},
#endif
#ifdef MSG_ERRQUEUE
  {"MSG_ERRQUEUE", "errqueue", MSG_ERRQUEUE},
#endif
  END}};

const uipc_Family uipc_waitflags = {"wait option", (const uipc_Name[]){
  {"WNOHANG", "nohang", WNOHANG}, {"WUNTRACED", "untraced", WUNTRACED},
  {"WCONTINUED", "continued", WCONTINUED}, END}};

const uipc_Family uipc_lockops = {"lock mode", (const uipc_Name[]){
  {"LOCK_SH", "sh", LOCK_SH}, {"LOCK_EX", "ex", LOCK_EX}, {"LOCK_NB", "nb", LOCK_NB},
  {"LOCK_UN", "un", LOCK_UN}, END}};

const uipc_Family uipc_locktypes = {"lock type", (const uipc_Name[]){
  {"F_WRLCK", "write", F_WRLCK}, {"F_RDLCK", "read", F_RDLCK}, {"F_UNLCK", NULL, F_UNLCK}, END}};

const uipc_Family uipc_whences = {"whence", (const uipc_Name[]){
  {"SEEK_SET", "set", SEEK_SET}, {"SEEK_CUR", "cur", SEEK_CUR}, {"SEEK_END", "end", SEEK_END},
  END}};

const uipc_Family uipc_shuthows = {"shutdown mode", (const uipc_Name[]){
  {"SHUT_RD", "r", SHUT_RD}, {"SHUT_WR", "w", SHUT_WR}, {"SHUT_RDWR", "rw", SHUT_RDWR},
  {NULL, "read", SHUT_RD}, {NULL, "write", SHUT_WR}, {NULL, "both", SHUT_RDWR}, END}};

/* constants only: levels and options, poll bits, open(2) and fcntl(2) */
#define C(n) {#n, NULL, n}
static const uipc_Family others = {"constant", (const uipc_Name[]){
  C(SOL_SOCKET), C(SCM_RIGHTS),
#ifdef SCM_CREDENTIALS
  C(SCM_CREDENTIALS),
#endif
  C(SO_REUSEADDR), C(SO_KEEPALIVE), C(SO_OOBINLINE), C(SO_RCVBUF), C(SO_SNDBUF),
  C(SO_LINGER), C(SO_BROADCAST), C(SO_ERROR), C(SO_TYPE),
#ifdef SO_REUSEPORT
  C(SO_REUSEPORT),
#endif
#ifdef SO_PASSCRED
  C(SO_PASSCRED), C(SO_PEERCRED),
#endif
  C(IPPROTO_TCP), C(IPPROTO_UDP), C(IPPROTO_IP), C(IPPROTO_IPV6), C(TCP_NODELAY),
  C(IPV6_V6ONLY),
  C(POLLIN), C(POLLOUT), C(POLLPRI), C(POLLERR), C(POLLHUP), C(POLLNVAL),
  C(O_RDONLY), C(O_WRONLY), C(O_RDWR), C(O_CREAT), C(O_EXCL), C(O_TRUNC), C(O_APPEND),
  C(O_NONBLOCK), C(O_CLOEXEC), C(O_ASYNC),
  C(F_GETFD), C(F_SETFD), C(F_GETFL), C(F_SETFL), C(F_SETOWN), C(F_GETOWN), C(F_GETLK),
  C(F_SETLK), C(F_SETLKW),
#ifdef F_OFD_SETLK
  C(F_OFD_GETLK), C(F_OFD_SETLK), C(F_OFD_SETLKW),
#endif
  C(FD_CLOEXEC), END}};

/* the resolver's codes: negative on glibc and musl, so never an errno */
#define EAICODE(n) {#n, NULL, (n) < 0 ? (n) : -(n)}
static const uipc_Family eaicodes = {"resolver error", (const uipc_Name[]){
  EAICODE(EAI_NONAME), EAICODE(EAI_AGAIN), EAICODE(EAI_FAIL), EAICODE(EAI_FAMILY),
  EAICODE(EAI_SERVICE), EAICODE(EAI_SOCKTYPE), EAICODE(EAI_MEMORY), EAICODE(EAI_BADFLAGS),
  EAICODE(EAI_OVERFLOW),
  /* never a third value (its errno is reported instead); kept for code that compares */
  EAICODE(EAI_SYSTEM),
  END}};

/* errnames.inc is written by csrc/errnames.sh from <errno.h> */
static const uipc_Family errnames = {"errno", (const uipc_Name[]){
#include "errnames.inc"
  END}};

static const uipc_Family *const families[] = {
  &uipc_afamilies, &uipc_socktypes, &uipc_msgflags, &uipc_waitflags, &uipc_lockops,
  &uipc_locktypes, &uipc_whences, &uipc_shuthows, &others, &eaicodes, NULL};

void uipc_setconsts(lua_State *L, const uipc_Family *fam) {
  const uipc_Name *c;
  for (c = fam->names; c->posix || c->name; c++)
    if (c->posix) {
      lua_pushinteger(L, c->value);
      lua_setfield(L, -2, c->posix);
    }
}

void uipc_newbimap(lua_State *L, const uipc_Family *fam, int posix) {
  const uipc_Name *c;
  lua_newtable(L);
  for (c = fam->names; c->posix || c->name; c++) {
    const char *name = posix ? c->posix : c->name;
    if (!name) continue;
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, name);
    if (lua_rawgeti(L, -1, c->value) == LUA_TNIL) {
      lua_pushstring(L, name);
      lua_rawseti(L, -3, c->value);
    }
    lua_pop(L, 1);
  }
}

/* strerror(code) -> the message, as in the failures' second value: an
   errno, or a resolver code (negative, ipc.EAI_*) */
static int ipc_strerror(lua_State *L) {
  int code = (int)uipc_checkint(L, 1, -0x7fffffff, 0x7fffffff, "errno");
  lua_pushstring(L, code < 0 ? gai_strerror(code) : strerror(code));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"strerror", ipc_strerror},
  {NULL, NULL}
};

void uipc_open_constants(lua_State *L) {
  const uipc_Family *const *f;
  for (f = families; *f; f++) uipc_setconsts(L, *f);
  uipc_newbimap(L, &errnames, 1);
  lua_setfield(L, -2, "errno");
  luaL_setfuncs(L, funcs, 0);
}
