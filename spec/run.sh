#!/usr/bin/env bash
# Run the busted specs with Lua 5.4 and finish on one line:
#   N passed, N failed[, N skipped]
# (failures and errors both count as failed). Exit non-zero on any.
set -u
cd "$(dirname "$0")/.."
BUSTED=$(command -v busted || echo /usr/bin/busted)
BUILD=${UNIXIPC_BUILD:-build}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;"
export LUA_CPATH="$BUILD/?.so;;"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
lua5.4 "$BUSTED" --cpath="$BUILD/?.so;" -o utfTerminal "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
if [ -z "$summary" ]; then
  echo "busted did not finish (exit $rc)"
  echo "0 passed, 1 failed"
  exit 1
fi
read -r s f e p <<<"$(echo "$summary" | sed -E 's/^([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+).*/\1 \2 \3 \4/')"
failed=$((f + e))
if [ "$p" -gt 0 ]; then
  echo "$s passed, $failed failed, $p skipped"
else
  echo "$s passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
