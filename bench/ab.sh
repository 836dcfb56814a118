#!/usr/bin/env bash
# A/B two builds of the module on one unixipc loop, alternating runs:
#   bash bench/ab.sh OLD_BUILD_DIR NEW_BUILD_DIR LOOP [ROUNDS] [SECONDS]
# where a build dir holds unixipc/core.so (e.g. a copy of build/ taken
# before a change). Prints each median ops/s and NEW/OLD. One-process loops
# are rated by process CPU time, as in run.lua (BENCH_CLOCK=wall: wall clock).
set -e
cd "$(dirname "$0")/.."
old=$1 new=$2 loop=$3 rounds=${4:-9} secs=${5:-0.3}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;"
a=() b=()
col=4
case "$loop" in bulk | pingpong | fork) col=3 ;; esac
[ "${BENCH_CLOCK:-}" = wall ] && col=3
for ((i = 0; i < rounds; i++)); do
  a+=("$(LUA_CPATH="$old/?.so;;" lua5.4 bench/unixipc.lua "$loop" "$secs" | awk -v c=$col '{printf "%.0f", $2 / $c}')")
  b+=("$(LUA_CPATH="$new/?.so;;" lua5.4 bench/unixipc.lua "$loop" "$secs" | awk -v c=$col '{printf "%.0f", $2 / $c}')")
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ma=$(med "${a[@]}") mb=$(med "${b[@]}")
echo "$loop: old ${a[*]}"
echo "$loop: new ${b[*]}"
awk -v a="$ma" -v b="$mb" -v l="$loop" 'BEGIN {printf "%s: old median %.0f ops/s, new median %.0f ops/s, new/old %.3f\n", l, a, b, b / a}'
