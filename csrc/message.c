/* message domain: filled by its issue */
#include "private.h"

void uipc_open_message(lua_State *L) {
  (void)L;
}
