/*
 * One libFuzzer target per driver: fuzz/<DRIVER>.lua returns a function
 * that takes the input bytes and calls into the module through its Lua
 * entry points (the C internals are not called directly, so the targets
 * survive renames in csrc/). Built by check/fuzz.sh:
 *
 *   clang -fsanitize=fuzzer,address,undefined -DDRIVER='"channel"' \
 *         -DROOT='"/path/to/tree"' fuzz/target.c <csrc objects> -llua5.4
 *
 * The module is linked in (luaopen_unixipc_core, the one exported symbol)
 * and preloaded as "unixipc.core"; lua/ provides the Lua layers.
 *
 * What counts as a finding (the process aborts, libFuzzer saves the input):
 *  - a sanitizer report (ASan; UBSan with halt_on_error=1, less the known
 *    bugs held back in check/ubsan.supp);
 *  - a descriptor left open after the input (the lowest free descriptor
 *    moved up once everything the driver made is closed and collected);
 *  - an error whose message starts "FINDING:", which drivers raise when a
 *    call broke its contract (raised where it must return nil, msg, errno,
 *    an address that does not parse back, ...).
 * Any other Lua error is an answer: misuse raises, by contract.
 *
 * Name resolution is made numeric (--wrap=getaddrinfo/getnameinfo): the
 * parsers are what is fuzzed, not the resolver, and a fuzzer must not send
 * DNS queries. "localhost" still goes through /etc/hosts.
 */
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

int luaopen_unixipc_core(lua_State *L);

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __real_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                       char *serv, socklen_t servlen, int flags);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res) {
  struct addrinfo h;
  if (hints) h = *hints;
  else {
    memset(&h, 0, sizeof h);
    h.ai_family = AF_UNSPEC;
  }
  if (node && strcmp(node, "localhost") != 0) h.ai_flags |= AI_NUMERICHOST;
  return __real_getaddrinfo(node, service, &h, res);
}

int __wrap_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                       char *serv, socklen_t servlen, int flags) {
  return __real_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags | NI_NUMERICHOST);
}

static lua_State *L;
static int driver = LUA_NOREF;

static int lowestfree(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) close(fd);
  return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_unixipc_core);
  lua_setfield(L, -2, "unixipc.core");
  lua_pop(L, 1);
  if (luaL_dostring(L, "package.path = '" ROOT "/lua/?.lua;" ROOT "/fuzz/?.lua;' .. package.path") ||
      luaL_loadfile(L, ROOT "/fuzz/" DRIVER ".lua") || lua_pcall(L, 0, 1, 0) ||
      !lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz: cannot load the driver " DRIVER ": %s\n", lua_tostring(L, -1));
    exit(2);
  }
  driver = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd, basefd = lowestfree(); /* libFuzzer may hold files between inputs */
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, driver);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg && strncmp(msg, "FINDING:", 8) == 0) {
      fprintf(stderr, "fuzz " DRIVER ": %s\n", msg);
      abort();
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz " DRIVER ": lua error: %s\n", msg ? msg : "?");
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  if ((fd = lowestfree()) != basefd) {
    fprintf(stderr, "fuzz " DRIVER ": descriptor leaked (lowest free descriptor %d, was %d)\n", fd,
            basefd);
    abort();
  }
  return 0;
}
