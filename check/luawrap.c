/*
 * lua5.4 with a sanitizer runtime loaded first, for `make asan`: execs the
 * dynamic loader as `ld.so --preload RUNTIME --argv0 ARGV0 LUA args...`.
 * The runtime stays out of the environment, so programs a spec execs (sh,
 * python3, uptime) run as they are, and argv[0] (Lua's arg[-1]) stays what
 * the caller typed, so a script that starts arg[-1] again gets this wrapper.
 * A C program rather than a shell script: a shell may reset signal
 * dispositions (SIGCHLD ignored on entry) that specs check are inherited.
 * Built by check/asan.sh with -DLDSO="..." -DRUNTIME="..." -DLUA="...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char **args = calloc((size_t)argc + 8, sizeof *args);
  int i, n = 0;
  if (!args) return 127;
  args[n++] = (char *)LDSO;
  args[n++] = (char *)"--preload";
  args[n++] = (char *)RUNTIME;
  args[n++] = (char *)"--argv0";
  args[n++] = argv[0];
  args[n++] = (char *)LUA;
  for (i = 1; i < argc; i++) args[n++] = argv[i];
  args[n] = NULL;
  execv(LDSO, args);
  perror("luawrap: exec " LDSO);
  return 127;
}
