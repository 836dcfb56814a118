#!/usr/bin/env bash
# make bench -> bash bench/run.sh [loop ...]
# Builds the module and the C baselines (bench/bin/, git-ignored), makes sure
# the peers are there when it can, then runs bench/run.lua. See bench/README.md.
set -e
cd "$(dirname "$0")/.."
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;"

make --no-print-directory all >/dev/null
mkdir -p bench/bin
${CC:-cc} -O2 -Wall -Wextra -o bench/bin/loops bench/loops.c

# the Lua peers (Debian's lua-socket and lua-cqueues): install when root
need=""
lua5.4 -e 'require "socket"' >/dev/null 2>&1 || need="$need lua-socket"
lua5.4 -e 'require "cqueues"' >/dev/null 2>&1 || need="$need lua-cqueues"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq $need || { apt-get update -qq && apt-get install -y -qq $need; }; } \
      >/dev/null 2>&1 || echo "bench: could not install$need; those columns show n/a"
  else
    echo "bench: missing$need (as root: apt-get install$need); those columns show n/a"
  fi
fi

BENCH_PYTHON=$(command -v python3 || true)
BENCH_WRK=$(command -v wrk || true)
BENCH_TASKSET=$(command -v taskset || true)
BENCH_TIMEOUTCMD=$(command -v timeout || true)
[ -n "$BENCH_PYTHON" ] || echo "bench: no python3; the Python column is skipped"
[ -n "$BENCH_WRK" ] || echo "bench: no wrk (apt-get install wrk); the HTTP loops are skipped"
export BENCH_PYTHON BENCH_WRK BENCH_TASKSET BENCH_TIMEOUTCMD
exec lua5.4 bench/run.lua "$@"
