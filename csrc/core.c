/*
 * unixipc core: the module table. Each file registers its own functions
 * through its uipc_open_* (private.h lists which file defines what).
 */
#include "private.h"

#define UNIXIPC_VERSION "unixipc 0.3"

__attribute__((visibility("default"))) int luaopen_unixipc_core(lua_State *L) {
  lua_newtable(L);
  uipc_open_constants(L);
  uipc_open_wait(L);
  uipc_open_descriptor(L);
  uipc_open_address(L);
  uipc_open_socket(L);
  uipc_open_poll(L);
  uipc_open_message(L);
  uipc_open_process(L);
  uipc_open_signal(L);
  uipc_open_lock(L);
  uipc_open_codec(L);
  uipc_open_systemd(L);
  uipc_open_exec(L);
  uipc_open_pidfd(L);
  uipc_open_eventfd(L);
  uipc_open_memfd(L);
  lua_pushliteral(L, UNIXIPC_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
