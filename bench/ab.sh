#!/usr/bin/env bash
# A/B two builds of the module on one unixipc loop, alternating runs:
#   bash bench/ab.sh OLD_BUILD_DIR NEW_BUILD_DIR LOOP [ROUNDS] [SECONDS]
# where a build dir holds unixipc/core.so (e.g. a copy of build/ taken
# before a change). Prints each median ops/s and NEW/OLD.
set -e
cd "$(dirname "$0")/.."
old=$1 new=$2 loop=$3 rounds=${4:-9} secs=${5:-0.3}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;"
a=() b=()
for ((i = 0; i < rounds; i++)); do
  a+=("$(LUA_CPATH="$old/?.so;;" lua5.4 bench/unixipc.lua "$loop" "$secs" | awk '{printf "%.0f", $2 / $3}')")
  b+=("$(LUA_CPATH="$new/?.so;;" lua5.4 bench/unixipc.lua "$loop" "$secs" | awk '{printf "%.0f", $2 / $3}')")
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ma=$(med "${a[@]}") mb=$(med "${b[@]}")
echo "$loop: old ${a[*]}"
echo "$loop: new ${b[*]}"
awk -v a="$ma" -v b="$mb" -v l="$loop" 'BEGIN {printf "%s: old median %.0f ops/s, new median %.0f ops/s, new/old %.3f\n", l, a, b, b / a}'
