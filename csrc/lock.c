/* lock domain: filled by its issue */
#include "private.h"

void uipc_open_lock(lua_State *L) {
  (void)L;
}
