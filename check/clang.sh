#!/usr/bin/env bash
# make clang: the module built by clang with -Wall -Wextra -Werror (the
# Makefile's warnings) next to gcc's, in build/clang, then loaded once.
set -u
cd "$(dirname "$0")/.."
. check/lib.sh
have clang || skip clang "clang is not installed (apt-get install clang)"
BUILD=build/clang
rm -rf "$BUILD/obj" # every file again, so warnings show on every run
out=$(make --no-print-directory BUILD="$BUILD" CC=clang CFLAGS="-O2 -g" all 2>&1) || {
  echo "$out"; fail clang "the clang build failed (warnings are errors)"; }
n=$(ls csrc/*.c | wc -l)
LUA_PATH="lua/?.lua;;" LUA_CPATH="$BUILD/?.so;;" lua5.4 -e 'local ipc = require "unixipc"
  local a, b = assert(ipc.socketpair()); a:send("x"); assert(b:recv(1) == "x"); a:close(); b:close()' ||
  fail clang "the clang-built module does not load"
echo "clang: $n files, 0 warnings under -Wall -Wextra -Werror ($(clang --version | head -n 1))"
