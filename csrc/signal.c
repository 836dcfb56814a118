/* signal domain: filled by its issue */
#include "private.h"

void uipc_open_signal(lua_State *L) {
  (void)L;
}

int uipc_sigsaved(sigset_t *mask) {
  (void)mask;
  return 0;
}
